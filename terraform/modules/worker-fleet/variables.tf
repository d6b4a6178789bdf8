variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "clawgate"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name_prefix))
    error_message = "name_prefix must start with a letter and be 1-31 characters of a-z 0-9 -."
  }
}

variable "vpc_id" {
  description = "VPC of the workers and their EFS mount targets."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (with a NAT route: workers call Telegram, Slack and the model API) for the instances and EFS mount targets, one per AZ."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids needs at least one subnet."
  }
}

variable "architecture" {
  description = "CPU architecture of the instances and of the worker tarball: arm64 (Graviton) or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "instance_type" {
  description = "Instance type; must match architecture (t4g/m7g for arm64, t3/m7i for x86_64)."
  type        = string
  default     = "t4g.medium"
}

variable "ami_id" {
  description = "AMI to run; null uses the latest Amazon Linux 2023 for the architecture (SSM public parameter)."
  type        = string
  default     = null
}

variable "min_size" {
  description = "Fewest instances (0 lets the fleet scale to zero when the queue is empty; the first job then waits for a boot)."
  type        = number
  default     = 1

  validation {
    condition     = var.min_size >= 0
    error_message = "min_size must not be negative."
  }
}

variable "max_size" {
  description = "Most instances (the fleet never grows past this)."
  type        = number
  default     = 4

  validation {
    condition     = var.max_size >= 1 && var.max_size >= var.min_size
    error_message = "max_size must be at least 1 and at least min_size."
  }
}

variable "worker_concurrency" {
  description = "Jobs one worker runs at once (--concurrency)."
  type        = number
  default     = 4

  validation {
    condition     = var.worker_concurrency >= 1 && var.worker_concurrency <= 64
    error_message = "worker_concurrency must be between 1 and 64."
  }
}

variable "backlog_per_instance_target" {
  description = "Target of the scaling policy: visible jobs per in-service instance (docs/scaling.md derives the default: acceptable wait / job time × concurrency)."
  type        = number
  default     = 8

  validation {
    condition     = var.backlog_per_instance_target > 0
    error_message = "backlog_per_instance_target must be positive."
  }
}

variable "drain_seconds" {
  description = "Seconds a terminating instance gives running jobs before releasing them to other workers."
  type        = number
  default     = 120

  validation {
    condition     = var.drain_seconds >= 0 && var.drain_seconds <= 3600
    error_message = "drain_seconds must be between 0 and 3600."
  }
}

variable "queue_name" {
  description = "Job queue name (the CloudWatch dimension of the backlog metric)."
  type        = string
}

variable "queue_arn" {
  description = "Job queue ARN."
  type        = string
}

variable "queue_url" {
  description = "Job queue URL."
  type        = string
}

variable "dead_letter_queue_arn" {
  description = "Dead-letter queue ARN (workers move undecodable jobs there)."
  type        = string
}

variable "state_table_name" {
  description = "DynamoDB state table name."
  type        = string
}

variable "state_table_arn" {
  description = "DynamoDB state table ARN."
  type        = string
}

variable "secrets_arn" {
  description = "Secrets Manager secret (JSON object) with TELEGRAM_BOT_TOKEN, SLACK_BOT_TOKEN, ANTHROPIC_API_KEY or OPENAI_API_KEY."
  type        = string
}

variable "worker_tarball_bucket" {
  description = "S3 bucket holding the worker release tarball (scripts/package-worker)."
  type        = string
}

variable "worker_tarball_key" {
  description = "S3 key of the tarball: bin/sandbox-worker (Dockerfile.sandbox compiled in), the lifecycle script, the systemd units."
  type        = string
}

variable "config_parameter_name" {
  description = "SSM parameter holding the deployment's config (CLAWGATE_CONFIG_PARAMETER), which each worker reads at start; queue and table come from this module."
  type        = string
}

variable "config_parameter_arn" {
  description = "ARN of config_parameter_name, which the workers may read."
  type        = string
}

variable "root_volume_gb" {
  description = "Root volume size (Docker images and containers live here; workspaces are on EFS)."
  type        = number
  default     = 30
}

variable "workspaces_kms_key_arn" {
  description = "Customer-managed KMS key for the workspace file system; null uses the AWS-managed key."
  type        = string
  default     = null
}

variable "workspaces_backup" {
  description = "Back up the workspace file system with AWS Backup (the EFS default backup plan). Turn off only where backups are handled elsewhere, or on an emulator without the EFS backup API."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Days the worker log group (JSON logs and EMF metric lines) keeps events."
  type        = number
  default     = 30
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's values (1, 3, 5, 7, 14, 30, 60, 90, … 3653)."
  }
}

variable "logs_kms_key_arn" {
  description = "Customer-managed KMS key for the worker log group; null uses CloudWatch's own encryption."
  type        = string
  default     = null
}
