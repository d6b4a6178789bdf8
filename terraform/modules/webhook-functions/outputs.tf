output "api_endpoint" {
  description = "Base URL of the HTTP API."
  value       = aws_apigatewayv2_api.webhooks.api_endpoint
}

output "telegram_webhook_url" {
  description = "URL to register with `clawgate telegram set-webhook --url` (add /<account> for more bots)."
  value       = "${aws_apigatewayv2_api.webhooks.api_endpoint}/telegram"
}

output "slack_events_url" {
  description = "Events API request URL for `clawgate slack manifest --url`."
  value       = "${aws_apigatewayv2_api.webhooks.api_endpoint}/slack/events"
}

output "whatsapp_webhook_url" {
  description = "Callback URL for the Meta app's WhatsApp webhook (GET answers the verify-token handshake)."
  value       = "${aws_apigatewayv2_api.webhooks.api_endpoint}/whatsapp"
}

output "discord_interactions_url" {
  description = "Interactions Endpoint URL for the Discord application."
  value       = "${aws_apigatewayv2_api.webhooks.api_endpoint}/discord/interactions"
}

output "bluebubbles_webhook_url" {
  description = "BlueBubbles webhook URL (add ?password=<server password> when you register it)."
  value       = "${aws_apigatewayv2_api.webhooks.api_endpoint}/bluebubbles-webhook"
}

output "zalo_webhook_url" {
  description = "Webhook URL for the Zalo Official Account's app."
  value       = "${aws_apigatewayv2_api.webhooks.api_endpoint}/zalo"
}

output "googlechat_url" {
  description = "HTTP endpoint URL for the Google Chat app."
  value       = "${aws_apigatewayv2_api.webhooks.api_endpoint}/googlechat"
}

output "msteams_url" {
  description = "Messaging endpoint URL for the Microsoft Teams bot (Azure Bot configuration)."
  value       = "${aws_apigatewayv2_api.webhooks.api_endpoint}/api/messages"
}

output "matrix_appservice_url" {
  description = "The url for the Matrix application service registration (clawgate matrix registration --url)."
  value       = aws_apigatewayv2_api.webhooks.api_endpoint
}

output "hooks_url" {
  description = "URL of POST /hooks/agent."
  value       = "${aws_apigatewayv2_api.webhooks.api_endpoint}/hooks/agent"
}

output "function_names" {
  description = "Function names by binary."
  value       = { for k, f in aws_lambda_function.function : k => f.function_name }
}

output "role_arns" {
  description = "Execution role ARNs by function."
  value       = { for k, r in aws_iam_role.function : k => r.arn }
}

output "scheduler_function_name" {
  description = "The scheduler-tick function, when the module made one (scheduler = true)."
  value       = try(aws_lambda_function.scheduler["scheduler-tick"].function_name, null)
}
