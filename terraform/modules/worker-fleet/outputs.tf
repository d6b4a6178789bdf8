output "autoscaling_group_name" {
  description = "The worker Auto Scaling group."
  value       = aws_autoscaling_group.workers.name
}

output "role_arn" {
  description = "The workers' instance role."
  value       = aws_iam_role.worker.arn
}

output "workspaces_file_system_id" {
  description = "EFS file system holding every session's workspace."
  value       = aws_efs_file_system.workspaces.id
}

output "security_group_id" {
  description = "The workers' security group (no ingress)."
  value       = aws_security_group.workers.id
}

output "log_group_name" {
  description = "CloudWatch log group of the workers' JSON logs and EMF metric lines."
  value       = aws_cloudwatch_log_group.worker.name
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the fleet: jobs, durations, queue, tokens, cold starts."
  value       = aws_cloudwatch_dashboard.fleet.dashboard_name
}
