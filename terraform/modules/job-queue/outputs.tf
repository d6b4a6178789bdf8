output "url" {
  description = "Job queue URL, for `queue.url` / CLAWGATE_QUEUE_URL."
  value       = aws_sqs_queue.jobs.id
}

output "arn" {
  description = "Job queue ARN, for IAM policies and the scaling metric."
  value       = aws_sqs_queue.jobs.arn
}

output "name" {
  description = "Job queue name (the CloudWatch dimension QueueName)."
  value       = aws_sqs_queue.jobs.name
}

output "dead_letter_url" {
  description = "Dead-letter queue URL."
  value       = aws_sqs_queue.dead_letter.id
}

output "dead_letter_arn" {
  description = "Dead-letter queue ARN."
  value       = aws_sqs_queue.dead_letter.arn
}
