variable "name" {
  description = "Name of the SQS FIFO job queue; must end in .fifo. The dead-letter queue is named after it (<base>-dlq.fifo)."
  type        = string
  default     = "clawgate-jobs.fifo"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,70}\\.fifo$", var.name))
    error_message = "name must be 1-70 characters of A-Z a-z 0-9 _ - followed by .fifo (SQS FIFO queues end in .fifo)."
  }
}

variable "visibility_timeout_seconds" {
  description = "How long a received job stays invisible; workers extend it by heartbeat. Matches queue.visibilityTimeoutSeconds."
  type        = number
  default     = 60

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be between 0 and 43200 (12 hours)."
  }
}

variable "max_receive_count" {
  description = "Receives before a job moves to the dead-letter queue (the redrive policy's maxReceiveCount)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "dlq_age_alarm_seconds" {
  description = "Alarm when the oldest dead-lettered job is older than this."
  type        = number
  default     = 300

  validation {
    condition     = var.dlq_age_alarm_seconds > 0
    error_message = "dlq_age_alarm_seconds must be positive."
  }
}

variable "alarm_actions" {
  description = "ARNs (e.g. an SNS topic) notified by the dead-letter and oldest-job alarms."
  type        = list(string)
  default     = []
}

variable "kms_master_key_id" {
  description = "KMS key for server-side encryption; null uses SQS-managed encryption (SSE-SQS)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "oldest_job_age_alarm_seconds" {
  description = "Age of the oldest waiting job that raises the queue alarm."
  type        = number
  default     = 300
  validation {
    condition     = var.oldest_job_age_alarm_seconds > 0
    error_message = "oldest_job_age_alarm_seconds must be positive."
  }
}
