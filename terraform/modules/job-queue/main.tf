# The job queue of docs/architecture.md §3: FIFO, grouped by session key, deduplicated by channel event id.
# High-throughput mode (dedup and throughput limits per message group) because every session
# is its own group.
locals {
  base    = trimsuffix(var.name, ".fifo")
  sse_sqs = var.kms_master_key_id == null
}

resource "aws_sqs_queue" "dead_letter" {
  name                              = "${local.base}-dlq.fifo"
  fifo_queue                        = true
  message_retention_seconds         = 1209600
  sqs_managed_sse_enabled           = local.sse_sqs ? true : null
  kms_master_key_id                 = var.kms_master_key_id
  kms_data_key_reuse_period_seconds = var.kms_master_key_id == null ? null : 300
  tags                              = var.tags
}

resource "aws_sqs_queue" "jobs" {
  name                              = var.name
  fifo_queue                        = true
  content_based_deduplication       = false
  deduplication_scope               = "messageGroup"
  fifo_throughput_limit             = "perMessageGroupId"
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  message_retention_seconds         = 345600
  receive_wait_time_seconds         = 20
  sqs_managed_sse_enabled           = local.sse_sqs ? true : null
  kms_master_key_id                 = var.kms_master_key_id
  kms_data_key_reuse_period_seconds = var.kms_master_key_id == null ? null : 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags
}

# No aws_sqs_queue_redrive_allow_policy: the redrive policy above is what matters, and moto
# cannot read RedriveAllowPolicy, so the module would not apply against the emulator.

# A dead-lettered job is a job nobody answered: alarm on the age of the oldest one.
resource "aws_cloudwatch_metric_alarm" "dead_letter_age" {
  alarm_name          = "${local.base}-dead-letter-age"
  alarm_description   = "clawgate jobs are in the dead-letter queue ${aws_sqs_queue.dead_letter.name}"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.dead_letter.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = var.dlq_age_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}

# Jobs waiting long mean no worker takes them (the fleet is down or cannot keep up).
resource "aws_cloudwatch_metric_alarm" "oldest_job_age" {
  alarm_name          = "${local.base}-oldest-job-age"
  alarm_description   = "clawgate jobs wait in ${aws_sqs_queue.jobs.name}: no worker takes them"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.jobs.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.oldest_job_age_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}
