#!/usr/bin/env bash
# Watches the instance's Auto Scaling target lifecycle state (IMDSv2). When the group decides to
# terminate this instance, stop the worker (SIGTERM: it drains its jobs) and complete the
# lifecycle hook so the termination goes on at once instead of waiting for the hook's timeout.
# Environment (from /etc/clawgate/worker.env): AWS_REGION, CLAWGATE_ASG_NAME, CLAWGATE_LIFECYCLE_HOOK.
set -euo pipefail

imds() {
  local token
  token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

instance_id=$(imds instance-id)
while true; do
  state=$(imds autoscaling/target-lifecycle-state || echo InService)
  if [ "$state" = "Terminated" ]; then
    echo "instance is being scaled in: draining the worker"
    systemctl stop clawgate-worker.service
    aws autoscaling complete-lifecycle-action --region "$AWS_REGION" \
      --auto-scaling-group-name "$CLAWGATE_ASG_NAME" \
      --lifecycle-hook-name "$CLAWGATE_LIFECYCLE_HOOK" \
      --instance-id "$instance_id" --lifecycle-action-result CONTINUE
    exit 0
  fi
  sleep 5
done
