# Everything clawgate needs in one AWS account: the table, the queue, the webhook functions
# behind an HTTP API, the worker fleet, one secret, one config parameter, and the bucket the
# worker release comes from.
locals {
  repo           = "${path.module}/../../.."
  lambda_zip_dir = coalesce(var.lambda_zip_dir, "${local.repo}/target/lambda/${var.architecture}")
  worker_tarball = coalesce(var.worker_tarball_path, "${local.repo}/target/worker/clawgate-worker-${var.architecture}.tar.gz")
  tags           = { Project = "clawgate" }
}

module "state_table" {
  source              = "../../modules/state-table"
  name                = "${var.name_prefix}-state"
  deletion_protection = var.state_table_deletion_protection
  tags                = local.tags
}

module "job_queue" {
  source = "../../modules/job-queue"
  name   = "${var.name_prefix}-jobs.fifo"
  tags   = local.tags
}

# One secret, a JSON object of environment-variable names; set its value after apply:
#   aws secretsmanager put-secret-value --secret-id <arn> --secret-string file://secrets.json
resource "aws_secretsmanager_secret" "clawgate" {
  # checkov:skip=CKV2_AWS_57:Bot tokens and API keys are rotated at their issuers (BotFather, Slack, the model vendor), not by a Lambda rotator.
  # checkov:skip=CKV_AWS_149:The AWS-managed key is enough for these secrets; pass a CMK by editing this resource if policy requires one.
  name_prefix = "${var.name_prefix}-secrets-"
  description = "clawgate: TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, ANTHROPIC_API_KEY, CLAWGATE_GATEWAY_TOKEN"
  tags        = local.tags
}

# The one config of the deployment (agents, tools, channel policies, limits): the webhook
# functions and every worker read it from here at start-up, so ingress and the fleet can never
# disagree (a group mention gated by botUsername, a second bot, the group policy). Secrets stay
# in the secret above; SecureString all the same, should one slip in.
resource "aws_ssm_parameter" "config" {
  # checkov:skip=CKV_AWS_337:The AWS-managed key is enough for a config that holds no secrets; pass a CMK by editing this resource if policy requires one.
  name        = "/${var.name_prefix}/config"
  description = "clawgate config (JSON5/JSON), read by the webhook functions and the worker fleet"
  type        = "SecureString"
  tier        = length(var.config_json) > 4096 ? "Advanced" : "Standard"
  value       = var.config_json
  tags        = local.tags
}

module "webhook_functions" {
  source                = "../../modules/webhook-functions"
  name_prefix           = var.name_prefix
  architecture          = var.architecture
  lambda_zip_dir        = local.lambda_zip_dir
  queue_url             = module.job_queue.url
  queue_arn             = module.job_queue.arn
  secrets_arn           = aws_secretsmanager_secret.clawgate.arn
  config_parameter_name = aws_ssm_parameter.config.name
  config_parameter_arn  = aws_ssm_parameter.config.arn
  scheduler             = true
  state_table_name      = module.state_table.name
  state_table_arn       = module.state_table.arn
  tags                  = local.tags
}

resource "aws_s3_bucket" "releases" {
  # checkov:skip=CKV_AWS_18:Holds one build artefact that is re-uploaded on every deploy; access logging adds nothing.
  # checkov:skip=CKV_AWS_144:The artefact is rebuilt from source; cross-region replication is not worth a second bucket.
  # checkov:skip=CKV_AWS_145:SSE-S3 (set below) is enough for a build artefact with no secrets in it.
  # checkov:skip=CKV2_AWS_62:Nothing reacts to uploads; instances fetch the tarball at boot.
  # checkov:skip=CKV2_AWS_61:Versioning keeps old releases; expiring them is the operator's choice.
  bucket_prefix = "${var.name_prefix}-releases-"
  force_destroy = true
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "releases" {
  bucket                  = aws_s3_bucket.releases.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "releases" {
  bucket = aws_s3_bucket.releases.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "releases" {
  bucket = aws_s3_bucket.releases.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_object" "worker" {
  bucket = aws_s3_bucket.releases.id
  key    = "clawgate-worker-${var.architecture}-${filemd5(local.worker_tarball)}.tar.gz"
  source = local.worker_tarball
  etag   = filemd5(local.worker_tarball)
  tags   = local.tags
}

module "worker_fleet" {
  source                = "../../modules/worker-fleet"
  name_prefix           = var.name_prefix
  vpc_id                = var.vpc_id
  subnet_ids            = var.subnet_ids
  architecture          = var.architecture
  instance_type         = var.architecture == "arm64" ? "t4g.medium" : "t3.medium"
  min_size              = var.worker_min_size
  max_size              = var.worker_max_size
  queue_name            = module.job_queue.name
  queue_arn             = module.job_queue.arn
  queue_url             = module.job_queue.url
  dead_letter_queue_arn = module.job_queue.dead_letter_arn
  state_table_name      = module.state_table.name
  state_table_arn       = module.state_table.arn
  secrets_arn           = aws_secretsmanager_secret.clawgate.arn
  worker_tarball_bucket = aws_s3_bucket.releases.id
  worker_tarball_key    = aws_s3_object.worker.key
  config_parameter_name = aws_ssm_parameter.config.name
  config_parameter_arn  = aws_ssm_parameter.config.arn
  workspaces_backup     = var.workspaces_backup
  tags                  = local.tags
}
