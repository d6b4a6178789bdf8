//! Durable records beside the transcripts: job records (status, lease, chunks sent), session
//! metadata, and pairing requests.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::SessionKey;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobStatus::Running)
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "running" => Ok(JobStatus::Running),
            "done" => Ok(JobStatus::Done),
            "failed" => Ok(JobStatus::Failed),
            other => Err(format!("unknown job status {other:?}")),
        }
    }
}

/// The durable record of one job: who holds it, until when, and which reply chunks went out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub status: JobStatus,
    /// The worker holding the lease; kept after finishing, for the record.
    pub lease_owner: Option<String>,
    /// Unix milliseconds; a lease in the past can be taken over.
    pub lease_until_ms: i64,
    /// How many times the job was claimed.
    pub attempt: u32,
    /// Indices of reply chunks already posted, ascending.
    pub chunks_sent: Vec<u32>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Why a job failed, or a short note on how it finished.
    pub detail: Option<String>,
    /// Every model call's tokens in this job, summed (set when it finishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<super::Tokens>,
    /// The channel's id of the progress preview this job posted (a Telegram `message_id`, a
    /// Slack `ts`), recorded before the preview is first edited: a resumed attempt edits the
    /// same message instead of posting a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

/// A session's metadata, kept beside its transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub key: SessionKey,
    pub agent: String,
    pub channel: Option<String>,
    pub peer: Option<String>,
    pub created_ms: i64,
    pub last_active_ms: i64,
    /// The seq the next transcript entry must carry (= number of entries).
    pub next_seq: u64,
    /// Where a job starts reading: just past what the latest summary covers (0 before any).
    #[serde(default)]
    pub context_from_seq: u64,
    /// Set by the latest `Options` entry (`/model`, `/think`).
    #[serde(default)]
    pub options: super::SessionOptions,
}

/// A pending request from an unknown sender to talk to the bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRequest {
    pub channel: String,
    pub account: String,
    pub code: String,
    pub peer: String,
    pub peer_name: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_records_round_trip() {
        let record = JobRecord {
            job_id: "01J".into(),
            status: JobStatus::Running,
            lease_owner: Some("w1".into()),
            lease_until_ms: 5,
            attempt: 2,
            chunks_sent: vec![0, 1],
            preview: None,
            created_ms: 1,
            updated_ms: 2,
            detail: None,
            usage: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<JobRecord>(&json).unwrap(), record);
        assert!(json.contains(r#""status":"running""#));
    }
}
