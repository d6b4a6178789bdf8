output "name" {
  description = "Table name, for `state.table` / CLAWGATE_STATE_TABLE."
  value       = aws_dynamodb_table.state.name
}

output "arn" {
  description = "Table ARN, for IAM policies (the index ARNs are this plus /index/*)."
  value       = aws_dynamodb_table.state.arn
}
