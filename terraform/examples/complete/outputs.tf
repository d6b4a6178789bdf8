output "telegram_webhook_url" {
  description = "Telegram webhook URL."
  value       = module.webhook_functions.telegram_webhook_url
}

output "slack_events_url" {
  description = "Slack Events API request URL."
  value       = module.webhook_functions.slack_events_url
}

output "whatsapp_webhook_url" {
  description = "WhatsApp Cloud API callback URL (the Meta app's webhook)."
  value       = module.webhook_functions.whatsapp_webhook_url
}

output "discord_interactions_url" {
  description = "Discord Interactions Endpoint URL."
  value       = module.webhook_functions.discord_interactions_url
}

output "bluebubbles_webhook_url" {
  description = "BlueBubbles webhook URL (register it with ?password=<server password>)."
  value       = module.webhook_functions.bluebubbles_webhook_url
}

output "zalo_webhook_url" {
  description = "Zalo Official Account webhook URL."
  value       = module.webhook_functions.zalo_webhook_url
}

output "googlechat_url" {
  description = "Google Chat app HTTP endpoint URL."
  value       = module.webhook_functions.googlechat_url
}

output "msteams_url" {
  description = "Microsoft Teams bot messaging endpoint URL."
  value       = module.webhook_functions.msteams_url
}

output "matrix_appservice_url" {
  description = "Matrix application service URL (clawgate matrix registration --url)."
  value       = module.webhook_functions.matrix_appservice_url
}

output "hooks_url" {
  description = "POST /hooks/agent."
  value       = module.webhook_functions.hooks_url
}

output "secret_arn" {
  description = "Put the secrets here (a JSON object of environment-variable names)."
  value       = aws_secretsmanager_secret.clawgate.arn
}

output "register_commands" {
  description = "Run these once the secret holds the bot tokens (with the same values in your local environment)."
  value       = <<-EOT
    clawgate telegram set-webhook --url ${module.webhook_functions.telegram_webhook_url}
    clawgate slack manifest --url ${module.webhook_functions.slack_events_url} > slack-manifest.json
    clawgate whatsapp check --url ${module.webhook_functions.whatsapp_webhook_url}
    clawgate discord register-commands
  EOT
}

output "queue_url" {
  description = "The job queue (CLAWGATE_QUEUE_URL)."
  value       = module.job_queue.url
}

output "state_table" {
  description = "The state table (CLAWGATE_STATE_TABLE)."
  value       = module.state_table.name
}

output "worker_autoscaling_group" {
  description = "The worker fleet's Auto Scaling group."
  value       = module.worker_fleet.autoscaling_group_name
}

output "config_parameter" {
  description = "The SSM parameter holding the config every function and worker reads (CLAWGATE_CONFIG_PARAMETER)."
  value       = aws_ssm_parameter.config.name
}
