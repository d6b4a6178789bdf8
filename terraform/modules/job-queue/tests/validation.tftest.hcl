# `terraform test` with a mock provider: plans only, no AWS and no network.
mock_provider "aws" {}

run "defaults_plan" {
  command = plan
  assert {
    condition     = aws_sqs_queue.jobs.fifo_queue && aws_sqs_queue.jobs.deduplication_scope == "messageGroup"
    error_message = "the job queue must be FIFO with per-group deduplication"
  }
  assert {
    condition     = aws_sqs_queue.dead_letter.name == "clawgate-jobs-dlq.fifo"
    error_message = "the dead-letter queue is named after the job queue"
  }
}

run "a_name_without_fifo_is_refused" {
  command = plan
  variables {
    name = "clawgate-jobs"
  }
  expect_failures = [var.name]
}

run "a_zero_receive_count_is_refused" {
  command = plan
  variables {
    max_receive_count = 0
  }
  expect_failures = [var.max_receive_count]
}
