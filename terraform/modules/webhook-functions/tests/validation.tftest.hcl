mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

variables {
  lambda_zip_dir = "./tests/fixtures"
  queue_url      = "https://sqs.us-east-1.amazonaws.com/123456789012/clawgate-jobs.fifo"
  queue_arn      = "arn:aws:sqs:us-east-1:123456789012:clawgate-jobs.fifo"
  secrets_arn    = "arn:aws:secretsmanager:us-east-1:123456789012:secret:clawgate-AbCdEf"

  config_parameter_name = "/clawgate/config"
  config_parameter_arn  = "arn:aws:ssm:us-east-1:123456789012:parameter/clawgate/config"
}

run "defaults_plan" {
  command = plan
  assert {
    condition     = length(aws_lambda_function.function) == 10
    error_message = "one function per binary"
  }
  assert {
    condition     = aws_apigatewayv2_route.route["GET /whatsapp"].route_key == "GET /whatsapp" && aws_apigatewayv2_route.route["POST /discord/interactions"].route_key == "POST /discord/interactions"
    error_message = "WhatsApp's handshake and Discord's interactions have their routes"
  }
  assert {
    condition     = aws_lambda_function.function["slack-events"].runtime == "provided.al2023" && aws_lambda_function.function["slack-events"].architectures[0] == "arm64"
    error_message = "provided.al2023 on arm64 by default"
  }
  assert {
    condition     = aws_apigatewayv2_route.route["POST /telegram/{account}"].route_key == "POST /telegram/{account}"
    error_message = "every Telegram account has its route"
  }
  assert {
    condition     = aws_lambda_function.function["telegram-webhook"].environment[0].variables["CLAWGATE_CONFIG_PARAMETER"] == "/clawgate/config"
    error_message = "the functions read the deployment's one config parameter"
  }
  assert {
    condition     = length(aws_lambda_function.scheduler) == 0 && length(aws_cloudwatch_event_rule.tick) == 0
    error_message = "no scheduler unless asked for"
  }
}

run "a_scheduler_without_its_table_is_refused" {
  command = plan
  variables {
    scheduler = true
  }
  expect_failures = [aws_lambda_function.scheduler]
}

run "the_scheduler_ticks_every_minute_with_a_role_of_its_own" {
  command = plan
  variables {
    scheduler        = true
    state_table_name = "clawgate-state"
    state_table_arn  = "arn:aws:dynamodb:us-east-1:123456789012:table/clawgate-state"
  }
  assert {
    condition     = aws_cloudwatch_event_rule.tick["scheduler-tick"].schedule_expression == "rate(1 minute)"
    error_message = "a tick every minute by default"
  }
  assert {
    condition     = aws_lambda_function.scheduler["scheduler-tick"].environment[0].variables["CLAWGATE_STATE_TABLE"] == "clawgate-state"
    error_message = "the tick reads jobs from the state table"
  }
  assert {
    condition     = aws_lambda_function.scheduler["scheduler-tick"].reserved_concurrent_executions == 1
    error_message = "one tick at a time"
  }
  assert {
    condition     = aws_lambda_permission.tick["scheduler-tick"].principal == "events.amazonaws.com"
    error_message = "only the rule invokes the tick"
  }
  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.scheduler["scheduler-tick"].statement :
      s.sid == "ScheduledJobs" && contains(s.resources, "arn:aws:dynamodb:us-east-1:123456789012:table/clawgate-state/index/*")
    ])
    error_message = "the tick's role may query the table's index (what is due)"
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.scheduler["scheduler-tick"].statement :
      !contains(s.actions, "secretsmanager:GetSecretValue")
    ])
    error_message = "the tick needs no channel secrets"
  }
}

run "a_schedule_that_is_not_an_expression_is_refused" {
  command = plan
  variables {
    scheduler        = true
    state_table_name = "clawgate-state"
    state_table_arn  = "arn:aws:dynamodb:us-east-1:123456789012:table/clawgate-state"
    scheduler_rate   = "every minute"
  }
  expect_failures = [var.scheduler_rate]
}

run "an_unknown_architecture_is_refused" {
  command = plan
  variables {
    architecture = "sparc"
  }
  expect_failures = [var.architecture]
}

run "a_timeout_past_api_gateway_is_refused" {
  command = plan
  variables {
    timeout_seconds = 60
  }
  expect_failures = [var.timeout_seconds]
}
