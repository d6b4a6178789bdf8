# The state table and job queue against an AWS emulator (moto, LocalStack): what the local
# cloud twin (localstack/) starts with. scripts/terraform-check applies it in CI.
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

variable "endpoint" {
  description = "The emulator's URL, e.g. http://127.0.0.1:4566."
  type        = string
}

variable "prefix" {
  description = "Prefix for every name, so runs do not collide."
  type        = string
  default     = "clawgate"
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  endpoints {
    dynamodb   = var.endpoint
    sqs        = var.endpoint
    cloudwatch = var.endpoint
  }
}

module "state_table" {
  source = "../../modules/state-table"
  name   = "${var.prefix}-state"
  # An emulator's table is thrown away after the run.
  deletion_protection = false
}

module "job_queue" {
  source                     = "../../modules/job-queue"
  name                       = "${var.prefix}-jobs.fifo"
  visibility_timeout_seconds = 30
  max_receive_count          = 3
}

output "queue_url" {
  description = "CLAWGATE_QUEUE_URL for the worker and functions."
  value       = module.job_queue.url
}

output "state_table" {
  description = "CLAWGATE_STATE_TABLE for the worker and functions."
  value       = module.state_table.name
}
