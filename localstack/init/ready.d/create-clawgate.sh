#!/bin/bash
# LocalStack init hook (ready.d): the state table and job queue clawgate expects, named as
# terraform/examples/emulator names them with prefix "clawgate" (awslocal is LocalStack's CLI).
set -euo pipefail

awslocal dynamodb create-table \
  --table-name clawgate-state \
  --billing-mode PAY_PER_REQUEST \
  --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
    AttributeName=gsi1pk,AttributeType=S AttributeName=gsi1sk,AttributeType=S \
  --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
  --global-secondary-indexes 'IndexName=by_agent,KeySchema=[{AttributeName=gsi1pk,KeyType=HASH},{AttributeName=gsi1sk,KeyType=RANGE}],Projection={ProjectionType=ALL}' \
  >/dev/null || echo "table clawgate-state exists"
awslocal dynamodb update-time-to-live --table-name clawgate-state \
  --time-to-live-specification Enabled=true,AttributeName=ttl >/dev/null || true

dlq_url=$(awslocal sqs create-queue --queue-name clawgate-jobs-dlq.fifo \
  --attributes FifoQueue=true,MessageRetentionPeriod=1209600 --query QueueUrl --output text)
dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "$dlq_url" --attribute-names QueueArn \
  --query Attributes.QueueArn --output text)
awslocal sqs create-queue --queue-name clawgate-jobs.fifo --attributes "{
  \"FifoQueue\": \"true\", \"DeduplicationScope\": \"messageGroup\",
  \"FifoThroughputLimit\": \"perMessageGroupId\", \"VisibilityTimeout\": \"60\",
  \"RedrivePolicy\": \"{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"5\\\"}\"
}" >/dev/null
echo "clawgate: table clawgate-state and queue clawgate-jobs.fifo are ready"
