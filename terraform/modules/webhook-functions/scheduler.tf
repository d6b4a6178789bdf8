# The scheduler's tick (docs/architecture.md §2): an EventBridge rule invokes the
# `scheduler-tick` function every minute; each call queues the due runs of scheduled jobs
# (`infra::cron::tick`). Made when `scheduler = true`; the tick reads the jobs in the state
# table (`state_table_name`, `state_table_arn`). A flag, not the ARN's presence: the ARN is
# only known after apply, and what to create must be known at plan time.
locals {
  scheduler = var.scheduler ? { scheduler-tick = true } : {}
  # Placeholders only so a missing table reaches the precondition below with its message.
  table_name = coalesce(var.state_table_name, "unset")
  table_arn  = coalesce(var.state_table_arn, "unset")
}

resource "aws_cloudwatch_log_group" "scheduler" {
  # checkov:skip=CKV_AWS_338:Retention is var.log_retention_days, as for the other functions.
  for_each          = local.scheduler
  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "scheduler" {
  for_each           = local.scheduler
  name               = "${var.name_prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

# What a tick does: read and advance the jobs in the table (and find the owner's last chat
# there), enqueue runs, read the config parameter.
data "aws_iam_policy_document" "scheduler" {
  for_each = local.scheduler

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.scheduler[each.key].arn}:*"]
  }
  statement {
    sid       = "ScheduledJobs"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"]
    resources = [local.table_arn, "${local.table_arn}/index/*"]
  }
  statement {
    sid       = "EnqueueJobs"
    actions   = ["sqs:SendMessage"]
    resources = [var.queue_arn]
  }
  statement {
    sid       = "ReadConfig"
    actions   = ["ssm:GetParameter"]
    resources = [var.config_parameter_arn]
  }
  statement {
    sid       = "Traces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray has no resource-level permissions
  }
  dynamic "statement" {
    for_each = compact([var.queue_kms_key_arn])
    content {
      sid       = "EncryptJobs"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  for_each = local.scheduler
  name     = "least-privilege"
  role     = aws_iam_role.scheduler[each.key].id
  policy   = data.aws_iam_policy_document.scheduler[each.key].json
}

resource "aws_lambda_function" "scheduler" {
  for_each = local.scheduler
  # checkov:skip=CKV_AWS_117:The tick calls only DynamoDB, SQS and SSM over their public endpoints, as the other functions do.
  # checkov:skip=CKV_AWS_116:A failed tick needs no dead-letter queue: the next tick, a minute later, takes the same due jobs (missed slots are caught up).
  # checkov:skip=CKV_AWS_272:Code signing needs a signing profile the user owns; the zips are built from source by scripts/build-lambdas.
  function_name                  = "${var.name_prefix}-${each.key}"
  role                           = aws_iam_role.scheduler[each.key].arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = "${var.lambda_zip_dir}/${each.key}/bootstrap.zip"
  source_code_hash               = filebase64sha256("${var.lambda_zip_dir}/${each.key}/bootstrap.zip")
  memory_size                    = var.memory_size
  timeout                        = 50
  reserved_concurrent_executions = 1
  kms_key_arn                    = var.environment_kms_key_arn

  environment {
    variables = {
      CLAWGATE_QUEUE_URL        = var.queue_url
      CLAWGATE_STATE_TABLE      = local.table_name
      CLAWGATE_CONFIG_PARAMETER = var.config_parameter_name
      RUST_LOG                  = lower(var.log_level)
    }
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    application_log_level = upper(var.log_level)
    system_log_level      = "WARN"
    log_group             = aws_cloudwatch_log_group.scheduler[each.key].name
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy.scheduler]

  lifecycle {
    precondition {
      condition     = var.state_table_name != null && var.state_table_arn != null
      error_message = "scheduler = true needs state_table_name and state_table_arn (module state-table's name and arn)."
    }
  }
}

resource "aws_cloudwatch_event_rule" "tick" {
  for_each            = local.scheduler
  name                = "${var.name_prefix}-${each.key}"
  description         = "Runs the clawgate scheduler's tick."
  schedule_expression = var.scheduler_rate
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "tick" {
  for_each = local.scheduler
  rule     = aws_cloudwatch_event_rule.tick[each.key].name
  arn      = aws_lambda_function.scheduler[each.key].arn
  input    = "{}"
}

resource "aws_lambda_permission" "tick" {
  for_each      = local.scheduler
  statement_id  = "AllowTheTickRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.scheduler[each.key].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.tick[each.key].arn
}

resource "aws_cloudwatch_metric_alarm" "scheduler_errors" {
  for_each            = local.scheduler
  alarm_name          = "${var.name_prefix}-${each.key}-errors"
  alarm_description   = "The scheduler's tick failed: scheduled jobs may run late (the next tick retries)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.scheduler[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 3
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}
