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
    condition     = length(aws_lambda_function.function) == 3
    error_message = "one function per binary"
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
