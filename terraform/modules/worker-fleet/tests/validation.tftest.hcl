mock_provider "aws" {
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef0" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

variables {
  vpc_id                = "vpc-0123456789abcdef0"
  subnet_ids            = ["subnet-0123456789abcdef0"]
  queue_name            = "clawgate-jobs.fifo"
  queue_arn             = "arn:aws:sqs:us-east-1:123456789012:clawgate-jobs.fifo"
  queue_url             = "https://sqs.us-east-1.amazonaws.com/123456789012/clawgate-jobs.fifo"
  dead_letter_queue_arn = "arn:aws:sqs:us-east-1:123456789012:clawgate-jobs-dlq.fifo"
  state_table_name      = "clawgate-state"
  state_table_arn       = "arn:aws:dynamodb:us-east-1:123456789012:table/clawgate-state"
  secrets_arn           = "arn:aws:secretsmanager:us-east-1:123456789012:secret:clawgate-AbCdEf"
  config_parameter_name = "/clawgate/config"
  config_parameter_arn  = "arn:aws:ssm:us-east-1:123456789012:parameter/clawgate/config"
  worker_tarball_bucket = "clawgate-releases"
  worker_tarball_key    = "clawgate-worker-arm64.tar.gz"
}

run "defaults_plan" {
  command = plan
  assert {
    condition     = one(aws_launch_template.worker.metadata_options).http_tokens == "required"
    error_message = "instances must require IMDSv2"
  }
  assert {
    condition     = one(aws_autoscaling_policy.backlog.target_tracking_configuration).target_value == 8
    error_message = "the scaling target is the backlog per instance"
  }
  assert {
    condition     = length(aws_efs_backup_policy.workspaces) == 1
    error_message = "workspaces are backed up by default"
  }
}

run "backups_can_be_turned_off" {
  command = plan
  variables {
    workspaces_backup = false
  }
  assert {
    condition     = length(aws_efs_backup_policy.workspaces) == 0
    error_message = "workspaces_backup = false drops the backup policy"
  }
}

run "a_negative_min_size_is_refused" {
  command = plan
  variables {
    min_size = -1
  }
  expect_failures = [var.min_size]
}

run "max_below_min_is_refused" {
  command = plan
  variables {
    min_size = 3
    max_size = 2
  }
  expect_failures = [var.max_size]
}

run "an_unknown_architecture_is_refused" {
  command = plan
  variables {
    architecture = "riscv64"
  }
  expect_failures = [var.architecture]
}
