variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "clawgate"
}

variable "vpc_id" {
  description = "VPC for the worker fleet."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets with a NAT route, one per AZ, for the workers and EFS."
  type        = list(string)
}

variable "architecture" {
  description = "arm64 (Graviton instances, arm64 Lambdas) or x86_64; the zips and the worker tarball must match."
  type        = string
  default     = "arm64"
}

variable "lambda_zip_dir" {
  description = "Where scripts/build-lambdas put the zips for the architecture."
  type        = string
  default     = null
}

variable "worker_tarball_path" {
  description = "The tarball from scripts/package-worker for the architecture."
  type        = string
  default     = null
}

variable "config_json" {
  description = "The deployment's one clawgate config (JSON; agents, tools, channel and group policies, limits), read by the webhook functions and the workers from an SSM parameter. Queue and table are set by this example. Secrets go in the secret, never here."
  type        = string
  default     = "{\"agents\": {\"defaults\": {\"model\": \"anthropic/claude-sonnet-4-5\"}}}"

  validation {
    condition     = can(jsondecode(var.config_json)) && length(var.config_json) <= 8192
    error_message = "config_json must be a JSON object of at most 8 KiB (an SSM parameter's limit)."
  }
}

variable "worker_min_size" {
  description = "Fewest worker instances."
  type        = number
  default     = 1
}

variable "worker_max_size" {
  description = "Most worker instances."
  type        = number
  default     = 4
}

variable "workspaces_backup" {
  description = "Back up the workers' workspace file system (EFS) with AWS Backup."
  type        = bool
  default     = true
}

variable "state_table_deletion_protection" {
  description = "Refuse to delete the state table (sessions, transcripts, pairings). Turn off only for a throwaway deployment."
  type        = bool
  default     = true
}
