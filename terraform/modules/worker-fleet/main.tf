# The worker fleet (docs/architecture.md §2): an Auto Scaling group of EC2 instances (Fargate has no
# Docker daemon), each running sandbox-worker as a systemd service beside Docker, workspaces
# on EFS so a session's files follow it to whichever instance takes its next job, scaled by
# target tracking on queue backlog per instance (metric math, as AWS recommends for SQS).
data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

data "aws_region" "current" {}

locals {
  ami_id    = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.al2023[0].value
  asg_name  = "${var.name_prefix}-workers"
  log_group = "/clawgate/${var.name_prefix}/worker"
}

# --- logs and metrics: the CloudWatch agent ships the worker's JSON logs and its EMF metric
# lines (CloudWatch Logs extracts the metrics from them; no PutMetricData call) -------------

resource "aws_cloudwatch_log_group" "worker" {
  # checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 30): these logs carry chat metadata, so a year is a privacy cost; set 365 where compliance asks for it.
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

# --- network: no ingress at all (no SSH; Session Manager for a shell) -----------------------

resource "aws_security_group" "workers" {
  name        = "${var.name_prefix}-workers"
  description = "clawgate workers: no ingress; egress for the channel and model APIs"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "workers_https" {
  # checkov:skip=CKV_AWS_382:Workers call Telegram, Slack and the model vendor over HTTPS at addresses that are not fixed.
  security_group_id = aws_security_group.workers.id
  description       = "HTTPS to channel, model and AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "workers_nfs" {
  security_group_id            = aws_security_group.workers.id
  description                  = "NFS to the workspace file system"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs.id
}

resource "aws_security_group" "efs" {
  name        = "${var.name_prefix}-workspaces"
  description = "clawgate workspaces: NFS from the workers only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_workers" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from the workers"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.workers.id
}

# --- workspaces -----------------------------------------------------------------------------

resource "aws_efs_file_system" "workspaces" {
  # checkov:skip=CKV_AWS_184:Encrypted always; with the AWS-managed key unless var.workspaces_kms_key_arn names a CMK.
  creation_token   = "${var.name_prefix}-workspaces"
  encrypted        = true
  kms_key_id       = var.workspaces_kms_key_arn
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"
  tags             = merge(var.tags, { Name = "${var.name_prefix}-workspaces" })
}

resource "aws_efs_backup_policy" "workspaces" {
  count          = var.workspaces_backup ? 1 : 0
  file_system_id = aws_efs_file_system.workspaces.id
  backup_policy {
    status = "ENABLED"
  }
}

resource "aws_efs_mount_target" "workspaces" {
  for_each        = toset(var.subnet_ids)
  file_system_id  = aws_efs_file_system.workspaces.id
  subnet_id       = each.value
  security_groups = [aws_security_group.efs.id]
}

# --- instance role: exactly the calls the worker makes ----------------------------------------

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "worker" {
  name               = "${var.name_prefix}-worker"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

data "aws_iam_policy_document" "worker" {
  statement {
    sid = "TakeJobs"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [var.queue_arn]
  }
  statement {
    # sessions_send: a session queues a message for another session.
    sid       = "SendJobs"
    actions   = ["sqs:SendMessage"]
    resources = [var.queue_arn]
  }
  statement {
    sid       = "ReadConfig"
    actions   = ["ssm:GetParameter"]
    resources = [var.config_parameter_arn]
  }
  statement {
    sid       = "DeadLetterPoison"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [var.dead_letter_queue_arn]
  }
  statement {
    sid = "State"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:ConditionCheckItem",
      "dynamodb:TransactWriteItems",
    ]
    resources = [var.state_table_arn, "${var.state_table_arn}/index/*"]
  }
  statement {
    sid       = "Secrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.secrets_arn]
  }
  statement {
    sid       = "Release"
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::${var.worker_tarball_bucket}/${var.worker_tarball_key}"]
  }
  statement {
    sid       = "Workspaces"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.workspaces.arn]
  }
  statement {
    sid       = "ShipLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:*"]
  }
  statement {
    sid       = "DrainHook"
    actions   = ["autoscaling:CompleteLifecycleAction"]
    resources = ["arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/${local.asg_name}"]
  }
}

resource "aws_iam_role_policy" "worker" {
  name   = "least-privilege"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

# A shell without SSH: Session Manager.
resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.worker.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "worker" {
  name = "${var.name_prefix}-worker"
  role = aws_iam_role.worker.name
}

# --- instances ------------------------------------------------------------------------------

resource "aws_launch_template" "worker" {
  name_prefix   = "${var.name_prefix}-worker-"
  image_id      = local.ami_id
  instance_type = var.instance_type
  user_data = base64encode(templatefile("${path.module}/user-data.sh.tftpl", {
    region         = data.aws_region.current.name
    efs_id         = aws_efs_file_system.workspaces.id
    tarball_uri    = "s3://${var.worker_tarball_bucket}/${var.worker_tarball_key}"
    secrets_arn    = var.secrets_arn
    config_param   = var.config_parameter_name
    queue_url      = var.queue_url
    state_table    = var.state_table_name
    concurrency    = var.worker_concurrency
    drain_seconds  = var.drain_seconds
    lifecycle_hook = "${var.name_prefix}-drain"
    asg_name       = local.asg_name
    log_group      = aws_cloudwatch_log_group.worker.name
  }))
  vpc_security_group_ids = [aws_security_group.workers.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.worker.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1          # containers cannot reach the instance's credentials
    instance_metadata_tags      = "disabled"
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name_prefix}-worker" })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "workers" {
  name                      = local.asg_name
  min_size                  = var.min_size
  max_size                  = var.max_size
  vpc_zone_identifier       = var.subnet_ids
  health_check_type         = "EC2"
  health_check_grace_period = 300
  default_instance_warmup   = 180
  # The scaling metric divides by GroupInServiceInstances, which needs group metrics.
  enabled_metrics = ["GroupInServiceInstances", "GroupDesiredCapacity"]

  launch_template {
    id      = aws_launch_template.worker.id
    version = aws_launch_template.worker.latest_version
  }

  # Scale-in waits for the instance to drain: the lifecycle watcher on the instance stops the
  # worker (SIGTERM: finish or release running jobs) and then completes this hook.
  initial_lifecycle_hook {
    name                 = "${var.name_prefix}-drain"
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    heartbeat_timeout    = var.drain_seconds + 60
    default_result       = "CONTINUE"
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = var.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  depends_on = [aws_efs_mount_target.workspaces]
}

# Backlog per instance = visible jobs / in-service instances, held at the target.
resource "aws_autoscaling_policy" "backlog" {
  name                      = "${var.name_prefix}-backlog-per-instance"
  autoscaling_group_name    = aws_autoscaling_group.workers.name
  policy_type               = "TargetTrackingScaling"
  estimated_instance_warmup = 180

  target_tracking_configuration {
    target_value = var.backlog_per_instance_target

    customized_metric_specification {
      metrics {
        id          = "visible"
        return_data = false
        label       = "Jobs waiting"
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = var.queue_name
            }
          }
        }
      }
      metrics {
        id          = "instances"
        return_data = false
        label       = "In-service instances"
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/AutoScaling"
            metric_name = "GroupInServiceInstances"
            dimensions {
              name  = "AutoScalingGroupName"
              value = aws_autoscaling_group.workers.name
            }
          }
        }
      }
      metrics {
        id          = "backlog"
        expression  = "IF(instances > 0, visible / instances, visible)"
        label       = "Jobs waiting per instance"
        return_data = true
      }
    }
  }
}

# --- the fleet at a glance ------------------------------------------------------------------

locals {
  worker_metric          = { namespace = "clawgate", dimensions = { Service = "worker" } }
  dead_letter_queue_name = element(split(":", var.dead_letter_queue_arn), 5)
  widget = {
    jobs = [for m in ["JobsStarted", "JobsFinished", "JobsFailed"] : ["clawgate", m, "Service", "worker", { stat = "Sum" }]]
    durations = [
      ["clawgate", "JobDuration", "Service", "worker", { stat = "p50" }],
      ["clawgate", "JobDuration", "Service", "worker", { stat = "p90" }],
      ["clawgate", "QueueWait", "Service", "worker", { stat = "p90" }],
      ["clawgate", "ModelLatency", "Service", "worker", { stat = "p90" }],
    ]
    queue = [
      ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.queue_name, { stat = "Maximum" }],
      ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", var.queue_name, { stat = "Maximum" }],
      ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.dead_letter_queue_name, { stat = "Maximum", label = "dead letters" }],
    ]
    age = [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.queue_name, { stat = "Maximum" }]]
    model = [
      ["clawgate", "ModelInputTokens", "Service", "worker", { stat = "Sum" }],
      ["clawgate", "ModelOutputTokens", "Service", "worker", { stat = "Sum" }],
    ]
    sandbox = [
      ["clawgate", "SandboxColdStarts", "Service", "worker", { stat = "Sum" }],
      ["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", local.asg_name, { stat = "Maximum" }],
    ]
  }
}

resource "aws_cloudwatch_dashboard" "fleet" {
  dashboard_name = "${var.name_prefix}-fleet"
  dashboard_body = jsonencode({
    widgets = [
      for i, w in [
        { title = "Jobs", metrics = local.widget.jobs },
        { title = "Job duration, queue wait, model latency (ms)", metrics = local.widget.durations },
        { title = "Queue: waiting, in flight, dead letters", metrics = local.widget.queue },
        { title = "Oldest waiting job (s)", metrics = local.widget.age },
        { title = "Model tokens", metrics = local.widget.model },
        { title = "Sandbox cold starts and workers", metrics = local.widget.sandbox },
        ] : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = w.title
          region  = data.aws_region.current.name
          metrics = w.metrics
          period  = 60
          view    = "timeSeries"
        }
      }
    ]
  })
}
