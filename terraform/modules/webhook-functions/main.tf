# The webhook functions (docs/architecture.md §2) behind one HTTP API: each function has its own
# role that may write its own logs, send to the job queue, read the one secret and the one config
# parameter, nothing else.
locals {
  functions = {
    telegram-webhook     = ["POST /telegram", "POST /telegram/{account}", "GET /healthz"]
    slack-events         = ["POST /slack/events"]
    whatsapp-webhook     = ["GET /whatsapp", "POST /whatsapp"]
    discord-interactions = ["POST /discord/interactions"]
    bluebubbles-webhook  = ["POST /bluebubbles-webhook"]
    zalo-webhook         = ["POST /zalo"]
    googlechat-webhook   = ["POST /googlechat"]
    msteams-webhook      = ["POST /api/messages"]
    matrix-appservice    = ["PUT /_matrix/app/v1/transactions/{txnId}"]
    hooks-agent          = ["POST /hooks/agent"]
  }
  routes = merge([
    for fn, keys in local.functions : { for key in keys : key => fn }
  ]...)
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_cloudwatch_log_group" "function" {
  # checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 30): these logs carry chat metadata, so a year is a privacy cost; set 365 where compliance asks for it.
  for_each          = local.functions
  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.name_prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }
  statement {
    sid       = "EnqueueJobs"
    actions   = ["sqs:SendMessage"]
    resources = [var.queue_arn]
  }
  statement {
    sid       = "ReadSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.secrets_arn]
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
    for_each = compact([var.secrets_kms_key_arn])
    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
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

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "least-privilege"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.function[each.key].json
}

resource "aws_lambda_function" "function" {
  for_each = local.functions
  # checkov:skip=CKV_AWS_117:The functions call only SQS and Secrets Manager over their public endpoints; a VPC would add NAT or endpoints and cold-start time for no isolation gain.
  # checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway; a failed ack is a 5xx the channel retries, so an async DLQ would never receive anything.
  # checkov:skip=CKV_AWS_272:Code signing needs a signing profile the user owns; the zips are built from source by scripts/build-lambdas.
  function_name                  = "${var.name_prefix}-${each.key}"
  role                           = aws_iam_role.function[each.key].arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = "${var.lambda_zip_dir}/${each.key}/bootstrap.zip"
  source_code_hash               = filebase64sha256("${var.lambda_zip_dir}/${each.key}/bootstrap.zip")
  memory_size                    = var.memory_size
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.environment_kms_key_arn

  environment {
    variables = {
      CLAWGATE_QUEUE_URL        = var.queue_url
      CLAWGATE_SECRETS_ARN      = var.secrets_arn
      CLAWGATE_CONFIG_PARAMETER = var.config_parameter_name
      RUST_LOG                  = lower(var.log_level)
    }
  }

  tracing_config {
    mode = "Active"
  }

  # JSON: the functions already write JSON lines on Lambda; the platform's own records join
  # them, and the level below filters both.
  logging_config {
    log_format            = "JSON"
    application_log_level = upper(var.log_level)
    system_log_level      = "WARN"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy.function]
}

resource "aws_cloudwatch_log_group" "api_access" {
  # checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 30): these logs carry chat metadata, so a year is a privacy cost; set 365 where compliance asks for it.
  name              = "/aws/apigateway/${var.name_prefix}-webhooks"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_apigatewayv2_api" "webhooks" {
  name          = "${var.name_prefix}-webhooks"
  protocol_type = "HTTP"
  description   = "clawgate webhooks: Telegram, Slack Events API, hooks"
  tags          = var.tags
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.webhooks.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId = "$context.requestId"
      routeKey  = "$context.routeKey"
      status    = "$context.status"
      latency   = "$context.integrationLatency"
      ip        = "$context.identity.sourceIp"
    })
  }

  tags = var.tags
}

resource "aws_apigatewayv2_integration" "function" {
  for_each               = local.functions
  api_id                 = aws_apigatewayv2_api.webhooks.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.function[each.key].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = var.timeout_seconds * 1000
}

resource "aws_apigatewayv2_route" "route" {
  for_each = local.routes
  # checkov:skip=CKV_AWS_309:Webhooks authenticate inside the function: Telegram's secret token, Slack's v0 signature, WhatsApp's X-Hub-Signature-256 and verify token, Discord's Ed25519 signature, the BlueBubbles server password, Zalo's X-ZEvent-Signature, Google Chat's and the Bot Framework's signed bearer JWTs, the Matrix homeserver's hs_token, the hooks bearer token, each checked in constant time.
  api_id    = aws_apigatewayv2_api.webhooks.id
  route_key = each.key
  target    = "integrations/${aws_apigatewayv2_integration.function[each.value].id}"
}

resource "aws_lambda_permission" "api" {
  for_each      = local.functions
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function[each.key].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.webhooks.execution_arn}/*/*"
}

# A function that errors loses webhook events (the channel retries, then gives up): alarm on any.
resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = local.functions
  alarm_name          = "${var.name_prefix}-${each.key}-errors"
  alarm_description   = "The clawgate ${each.key} function is failing invocations"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.function[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.errors_alarm_threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}
