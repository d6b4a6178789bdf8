//! `SqsQueue`: the job queue on SQS FIFO (AWS, LocalStack or moto through `AWS_ENDPOINT_URL`).
//!
//! Decisions:
//! - The dead-letter queue is found from the queue's own `RedrivePolicy` at connect time, so a
//!   deployment configures one URL and Terraform owns the pairing.
//! - `dead_letter` sends the body to the DLQ (same group, the message id as dedup id) and then
//!   deletes the original. If the delete fails the message comes back and is moved again; the
//!   dedup id keeps the DLQ from holding it twice.
//! - Visibility is whole seconds on SQS: sub-second durations round up, never down to zero.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;

use super::{Delivery, JobQueue, QueueDepth, QueueError, MAX_RECEIVE_BATCH, MAX_WAIT};
use crate::aws::{classify, endpoint_label, Failure};

const REASON_ATTRIBUTE: &str = "clawgate-dead-letter-reason";
const MAX_REASON_BYTES: usize = 1024;

/// A FIFO queue on SQS.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    endpoint: String,
    url: String,
    dead_letter_url: Option<String>,
    visibility: Duration,
}

impl SqsQueue {
    /// A handle on a queue without any call to SQS (no dead-letter queue known): what the
    /// ingress functions need, since they only send, and it keeps cold starts free of I/O.
    pub fn new(config: &SdkConfig, url: &str, visibility: Duration) -> Self {
        SqsQueue {
            client: Client::new(config),
            endpoint: endpoint_label(config, "sqs"),
            url: url.to_string(),
            dead_letter_url: None,
            visibility,
        }
    }

    /// Connects to an existing FIFO queue and finds its dead-letter queue.
    pub async fn connect(
        config: &SdkConfig,
        url: &str,
        visibility: Duration,
    ) -> Result<Self, QueueError> {
        let mut queue = SqsQueue {
            client: Client::new(config),
            endpoint: endpoint_label(config, "sqs"),
            url: url.to_string(),
            dead_letter_url: None,
            visibility,
        };
        queue.dead_letter_url = queue.find_dead_letter_url().await?;
        Ok(queue)
    }

    /// Creates (or finds) FIFO queue `name` (`<name>.fifo`) and its dead-letter queue
    /// `<name>-dlq.fifo`, with a redrive after `max_receives` receives. For tests and for
    /// one-command setups; Terraform creates them in AWS.
    pub async fn create_fifo(
        config: &SdkConfig,
        name: &str,
        max_receives: u32,
        visibility: Duration,
    ) -> Result<Self, QueueError> {
        let client = Client::new(config);
        let endpoint = endpoint_label(config, "sqs");
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await
            .map_err(|e| map_error(&endpoint, e))?
            .queue_url
            .unwrap_or_default();
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| map_error(&endpoint, e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receives,
        });
        let url = client
            .create_queue()
            .queue_name(format!("{name}.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_secs(visibility).to_string(),
            )
            .send()
            .await
            .map_err(|e| map_error(&endpoint, e))?
            .queue_url
            .unwrap_or_default();
        Ok(SqsQueue {
            client,
            endpoint,
            url,
            dead_letter_url: Some(dlq_url),
            visibility,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The dead-letter queue, as a queue of its own.
    pub fn dead_letter_queue(&self) -> Option<SqsQueue> {
        Some(SqsQueue {
            client: self.client.clone(),
            endpoint: self.endpoint.clone(),
            url: self.dead_letter_url.clone()?,
            dead_letter_url: None,
            visibility: self.visibility,
        })
    }

    /// Deletes the queue and its dead-letter queue (test clean-up).
    pub async fn delete_with_dead_letter_queue(&self) -> Result<(), QueueError> {
        for url in std::iter::once(&self.url).chain(self.dead_letter_url.as_ref()) {
            self.client
                .delete_queue()
                .queue_url(url)
                .send()
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    async fn find_dead_letter_url(&self) -> Result<Option<String>, QueueError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| self.error(e))?
            .attributes
            .unwrap_or_default();
        let Some(policy) = attributes.get(&QueueAttributeName::RedrivePolicy) else {
            return Ok(None);
        };
        let policy: serde_json::Value = serde_json::from_str(policy).unwrap_or_default();
        let Some(arn) = policy["deadLetterTargetArn"].as_str() else {
            return Ok(None);
        };
        // arn:aws:sqs:<region>:<account>:<name>
        let parts: Vec<&str> = arn.split(':').collect();
        let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
            return Ok(None);
        };
        let url = self
            .client
            .get_queue_url()
            .queue_name(*name)
            .queue_owner_aws_account_id(*account)
            .send()
            .await
            .map_err(|e| self.error(e))?
            .queue_url;
        Ok(url)
    }

    fn error<E, R>(&self, err: SdkError<E, R>) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        map_error(&self.endpoint, err)
    }
}

fn map_error<E, R>(endpoint: &str, err: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let endpoint = endpoint.to_string();
    match classify(&err) {
        Failure::Unreachable(message) => QueueError::Unavailable { endpoint, message },
        Failure::Throttled { code, message } => QueueError::Throttled {
            endpoint,
            code,
            message,
        },
        Failure::Refused { code, .. }
            if code == "ReceiptHandleIsInvalid" || code.ends_with("MessageNotInflight") =>
        {
            QueueError::ReceiptInvalid
        }
        Failure::Refused { code, message } => QueueError::Refused {
            endpoint,
            code,
            message,
        },
    }
}

fn visibility_secs(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.min(43_200) as i32
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send_raw(
        &self,
        body: &str,
        group: &str,
        dedup_id: &str,
    ) -> Result<String, QueueError> {
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(dedup_id)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(out.message_id.unwrap_or_default())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, MAX_RECEIVE_BATCH) as i32)
            .wait_time_seconds(wait.min(MAX_WAIT).as_secs() as i32)
            .visibility_timeout(visibility_secs(self.visibility))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names(REASON_ATTRIBUTE)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let deliveries = out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attr = |name: MessageSystemAttributeName| {
                    m.attributes.as_ref().and_then(|a| a.get(&name)).cloned()
                };
                Delivery {
                    receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1),
                    group: attr(MessageSystemAttributeName::MessageGroupId).unwrap_or_default(),
                    dead_letter_reason: m
                        .message_attributes
                        .as_ref()
                        .and_then(|a| a.get(REASON_ATTRIBUTE))
                        .and_then(|v| v.string_value.clone()),
                    message_id: m.message_id.unwrap_or_default(),
                    receipt: m.receipt_handle.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                }
            })
            .collect();
        Ok(deliveries)
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility_secs(visibility))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        match self
            .client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.error(e) {
                // Already deleted (or re-received by another consumer): nothing left to ack.
                QueueError::ReceiptInvalid => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let Some(dlq) = &self.dead_letter_url else {
            return Err(QueueError::NoDeadLetterQueue {
                queue: self.url.clone(),
            });
        };
        let mut reason = reason.to_string();
        if reason.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        let group = if delivery.group.is_empty() {
            "dead-letter"
        } else {
            &delivery.group
        };
        self.client
            .send_message()
            .queue_url(dlq)
            .message_body(&delivery.body)
            .message_group_id(group)
            .message_deduplication_id(super::fifo_token(&delivery.message_id))
            .message_attributes(
                REASON_ATTRIBUTE,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(reason)
                    .build()
                    .expect("data type is set"),
            )
            .send()
            .await
            .map_err(|e| self.error(e))?;
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&delivery.receipt)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("sqs {}", self.url)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| self.error(e))?
            .attributes
            .unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            waiting: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    fn dead_letters(&self) -> Option<Box<dyn JobQueue>> {
        self.dead_letter_queue()
            .map(|q| Box::new(q) as Box<dyn JobQueue>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_second_visibility_rounds_up_and_is_capped() {
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(Duration::from_millis(300)), 1);
        assert_eq!(visibility_secs(Duration::from_secs(30)), 30);
        assert_eq!(visibility_secs(Duration::from_secs(100_000)), 43_200);
    }
}
