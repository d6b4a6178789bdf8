variable "name" {
  description = "DynamoDB table name for clawgate's state (sessions, transcripts, job records, pairing)."
  type        = string
  default     = "clawgate-state"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.name))
    error_message = "name must be 3-255 characters of A-Z a-z 0-9 _ . - (DynamoDB's rule)."
  }
}

variable "point_in_time_recovery" {
  description = "Keep 35 days of continuous backups (PITR)."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for encryption at rest; null uses the AWS-owned key."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the table while true."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
