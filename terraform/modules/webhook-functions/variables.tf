variable "name_prefix" {
  description = "Prefix of every resource name (functions are <prefix>-telegram-webhook, …)."
  type        = string
  default     = "clawgate"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name_prefix))
    error_message = "name_prefix must start with a letter and be 1-31 characters of a-z 0-9 -."
  }
}

variable "lambda_zip_dir" {
  description = "Directory holding <function>/bootstrap.zip for the chosen architecture, as scripts/build-lambdas writes them (target/lambda/arm64 or target/lambda/x86_64)."
  type        = string
}

variable "architecture" {
  description = "Lambda architecture of the zips: arm64 (cheaper per ms) or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "queue_url" {
  description = "URL of the SQS FIFO job queue the functions send to (job-queue module output url)."
  type        = string
}

variable "queue_arn" {
  description = "ARN of the job queue; the functions may only SendMessage to it."
  type        = string
}

variable "queue_kms_key_arn" {
  description = "KMS key of the job queue when it uses one (SendMessage then needs kms:GenerateDataKey); null for SSE-SQS."
  type        = string
  default     = null
}

variable "secrets_arn" {
  description = "Secrets Manager secret whose SecretString is a JSON object with TELEGRAM_WEBHOOK_SECRET, SLACK_SIGNING_SECRET, WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN, BLUEBUBBLES_PASSWORD, ZALO_OA_SECRET_KEY, MATRIX_HS_TOKEN, MATRIX_AS_TOKEN and CLAWGATE_GATEWAY_TOKEN, as the channels in use need (read once per cold start)."
  type        = string
}

variable "config_parameter_name" {
  description = "SSM parameter holding the deployment's config (CLAWGATE_CONFIG_PARAMETER); the workers read the same one."
  type        = string
}

variable "config_parameter_arn" {
  description = "ARN of config_parameter_name, which the functions may read."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "Customer-managed KMS key of that secret, if any (the functions get kms:Decrypt on it)."
  type        = string
  default     = null
}

variable "environment_kms_key_arn" {
  description = "KMS key for the functions' environment variables; null uses the AWS-managed key. They hold no secrets (those come from secrets_arn)."
  type        = string
  default     = null
}

variable "memory_size" {
  description = "Memory per function in MB (CPU scales with it). The handler needs a few MB; 128 is enough."
  type        = number
  default     = 128

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout_seconds" {
  description = "Function timeout; an ack is one SendMessage, so a few seconds is plenty (Telegram waits ~60 s, Slack 3 s)."
  type        = number
  default     = 10

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 30
    error_message = "timeout_seconds must be between 1 and 30 (API Gateway stops waiting at 30)."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function: a ceiling that protects the account's pool from a webhook flood."
  type        = number
  default     = 50

  validation {
    condition     = var.reserved_concurrency >= 1
    error_message = "reserved_concurrency must be at least 1."
  }
}

variable "throttle_rate_limit" {
  description = "API Gateway steady-state requests per second across all routes."
  type        = number
  default     = 100
}

variable "throttle_burst_limit" {
  description = "API Gateway burst capacity."
  type        = number
  default     = 200
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention for the functions and the API access log."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's values (1, 3, 5, 7, 14, 30, 60, 90, … 3653)."
  }
}

variable "logs_kms_key_arn" {
  description = "KMS key for the log groups; null uses CloudWatch's default encryption."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "log_level" {
  description = "Log level of the functions (RUST_LOG and Lambda's application log level): trace, debug, info, warn or error."
  type        = string
  default     = "info"
  validation {
    condition     = contains(["trace", "debug", "info", "warn", "error"], lower(var.log_level))
    error_message = "log_level must be trace, debug, info, warn or error."
  }
}

variable "errors_alarm_threshold" {
  description = "Function errors in 5 minutes that raise the errors alarm."
  type        = number
  default     = 1
}

variable "alarm_actions" {
  description = "ARNs (e.g. an SNS topic) notified by the function alarms."
  type        = list(string)
  default     = []
}

variable "scheduler" {
  description = "Make the scheduler: the scheduler-tick function and the rule that invokes it every minute (needs state_table_name and state_table_arn)."
  type        = bool
  default     = false
}

variable "state_table_name" {
  description = "The state table (module state-table) the scheduler's tick reads scheduled jobs from."
  type        = string
  default     = null
}

variable "state_table_arn" {
  description = "ARN of that table; the tick's role may read and advance items in it and query its index."
  type        = string
  default     = null
}

variable "scheduler_rate" {
  description = "How often the scheduler ticks (an EventBridge schedule expression); scheduled jobs run at most this late."
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = can(regex("^(rate\\(|cron\\()", var.scheduler_rate))
    error_message = "Use an EventBridge schedule expression: rate(1 minute), or cron(...)."
  }
}
