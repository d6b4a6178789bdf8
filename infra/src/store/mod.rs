//! The state store ports: [`TranscriptStore`] (sessions and transcripts), [`JobLedger`] (job
//! records with leases, dedup markers), [`SenderStore`] (allowlist and pairing codes) and
//! [`RateCounters`] (limits shared by a fleet); [`StateStore`] is all four.
//!
//! Two adapters keep each contract, proven by `tests/store_conformance/` (one suite per trait):
//! [`dynamo::DynamoStore`] (one DynamoDB table) and [`sqlite::SqliteStore`] (an embedded file).
//! The rules both must follow live here, once: entry capping, the claim decision, pairing codes.

pub mod dynamo;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;

use crate::model::{
    CronJob, CronRun, JobRecord, JobStatus, PairingRequest, SessionKey, SessionMeta, Tokens,
    Transcript, TranscriptEntry,
};

/// Transcript entries are capped to this many bytes of JSON before writing, which keeps each
/// DynamoDB item (entry plus keys and attribute names) well under the 400 KB item limit.
pub const MAX_ENTRY_BYTES: usize = 350 * 1024;
/// A job record's `detail` is cut to this many bytes.
pub const MAX_DETAIL_BYTES: usize = 2048;
/// Unapproved pairing requests allowed per channel account at once (OpenClaw's limit).
pub const MAX_PENDING_PAIRINGS: usize = 3;
/// How long job records are kept after their last update (the durable dedup horizon).
pub const JOB_RECORD_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The result of trying to claim a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the lease now. A record with `attempt > 1` or `chunks_sent` is a resume.
    Claimed(JobRecord),
    /// The job already finished: ack the message and do nothing else.
    Finished(JobRecord),
    /// Another worker holds an unexpired lease.
    Busy(JobRecord),
}

/// One page of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptPage {
    pub entries: Vec<TranscriptEntry>,
    /// Where the next page starts, when there may be one.
    pub next_seq: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session {session}: transcript entry {attempted} conflicts, the next free seq is {expected}")]
    SeqConflict {
        session: String,
        expected: u64,
        attempted: u64,
    },
    #[error("job {job_id}: the lease is not held by {owner}")]
    LeaseLost { job_id: String, owner: String },
    #[error("too many pending pairing requests for {channel}/{account} (at most {limit}); approve or wait for one to expire")]
    TooManyPending {
        channel: String,
        account: String,
        limit: usize,
    },
    #[error("state store unreachable at {endpoint}: {message}")]
    Unavailable { endpoint: String, message: String },
    #[error("state store at {endpoint} asked us to slow down ({code}): {message}")]
    Throttled {
        endpoint: String,
        code: String,
        message: String,
    },
    #[error("state store at {endpoint} refused the request ({code}): {message}")]
    Refused {
        endpoint: String,
        code: String,
        message: String,
    },
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
    #[error("embedded store failed: {0}")]
    Embedded(String),
}

impl StoreError {
    /// True when the same call may succeed later (network, throttling, a busy database file).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::Throttled { .. }
        )
    }
}

impl From<crate::embedded::EmbeddedError> for StoreError {
    fn from(e: crate::embedded::EmbeddedError) -> Self {
        if e.retryable {
            StoreError::Unavailable {
                endpoint: e.path,
                message: e.message,
            }
        } else {
            StoreError::Embedded(e.to_string())
        }
    }
}

/// Sessions and their transcripts.
///
/// Contract (each point is a case in the conformance suite):
/// - `append_transcript` writes `entry` only if `entry.seq` is the session's next seq, and
///   creates or updates the session's metadata in the same atomic write; otherwise it fails
///   with `SeqConflict` and writes nothing. Entries are capped to [`MAX_ENTRY_BYTES`] first;
///   the stored (possibly capped) entry is returned.
/// - A `Summary` entry moves the session's `context_from_seq` to just past what it covers, so
///   [`TranscriptStore::load_context`] reads only what a model still needs; no other entry
///   moves it.
/// - An `Options` entry sets the session's `options` in the same write; no other entry changes
///   them, and `load_context` returns them whatever part of the history it reads.
/// - Only a `User` entry (or a session's first entry) moves `last_active_ms`, which orders
///   `list_sessions`: the index behind it is written at most once per job.
/// - `load_transcript` returns entries with `seq >= from_seq` in order, at most `limit`.
#[async_trait]
pub trait TranscriptStore: Send + Sync {
    async fn get_session(&self, key: &SessionKey) -> Result<Option<SessionMeta>, StoreError>;
    /// The agent's sessions, most recently active first.
    async fn list_sessions(
        &self,
        agent: &str,
        limit: usize,
    ) -> Result<Vec<SessionMeta>, StoreError>;
    async fn append_transcript(
        &self,
        key: &SessionKey,
        agent: &str,
        entry: &TranscriptEntry,
    ) -> Result<TranscriptEntry, StoreError>;
    async fn load_transcript(
        &self,
        key: &SessionKey,
        from_seq: u64,
        limit: usize,
    ) -> Result<TranscriptPage, StoreError>;

    /// The whole transcript from `from_seq`, page by page.
    async fn load_transcript_from(
        &self,
        key: &SessionKey,
        from_seq: u64,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let mut all = Vec::new();
        let mut next = Some(from_seq);
        while let Some(from) = next {
            let page = self.load_transcript(key, from, 500).await?;
            all.extend(page.entries);
            next = page.next_seq;
        }
        Ok(all)
    }

    /// What a job reads: the session's entries from its latest compaction on (the summary and
    /// everything it does not cover), so the cost stays flat however long the history grows.
    async fn load_context(&self, key: &SessionKey) -> Result<Transcript, StoreError> {
        let Some(meta) = self.get_session(key).await? else {
            return Ok(Transcript::default());
        };
        let entries = self
            .load_transcript_from(key, meta.context_from_seq)
            .await?;
        Ok(Transcript {
            next_seq: meta.next_seq,
            entries,
            options: meta.options,
        })
    }
}

/// Job records with leases, and dedup markers.
///
/// Contract (each point is a case in the conformance suite):
/// - `mark_seen` returns true for the first caller of a marker within its TTL, false after.
/// - `claim_job`: a new job, or one whose lease has expired or was released, is claimed by the
///   caller; of two racing claimers exactly one wins. A finished job is reported `Finished`.
///   Re-claiming one's own live lease succeeds. Each claim counts one `attempt`.
/// - `renew_lease`, `release_job`, `mark_chunk_sent`, `set_preview` and `finish_job` need the
///   caller to hold the lease of a running job, else `LeaseLost` and nothing changes.
/// - Expired dedup markers are invisible, whatever the backend's TTL sweeping has done.
/// - `request_stop` keeps the latest stop time per session (an earlier one never overwrites a
///   later one); `stop_requested` reads it, `None` for a session never stopped (or whose stop
///   is older than [`STOP_TTL`]).
#[async_trait]
pub trait JobLedger: Send + Sync {
    async fn mark_seen(&self, marker: &str, ttl: Duration) -> Result<bool, StoreError>;
    async fn claim_job(
        &self,
        job_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError>;
    async fn renew_lease(
        &self,
        job_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<(), StoreError>;
    /// Gives the lease up so another worker can claim the job at once (drain on shutdown).
    async fn release_job(&self, job_id: &str, owner: &str) -> Result<(), StoreError>;
    async fn mark_chunk_sent(
        &self,
        job_id: &str,
        owner: &str,
        chunk: u32,
    ) -> Result<(), StoreError>;
    /// `status` is `Done` or `Failed`; `usage` is the job's model tokens, when it made calls.
    async fn finish_job(
        &self,
        job_id: &str,
        owner: &str,
        status: JobStatus,
        detail: Option<&str>,
        usage: Option<Tokens>,
    ) -> Result<(), StoreError>;
    async fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// Records the id of the job's progress preview message.
    async fn set_preview(
        &self,
        job_id: &str,
        owner: &str,
        message_id: &str,
    ) -> Result<(), StoreError>;
    /// `/stop` in `session` at `at_ms` (Unix ms): jobs of the session whose message arrived
    /// before it stop at their next step.
    async fn request_stop(&self, session: &SessionKey, at_ms: i64) -> Result<(), StoreError>;
    /// When the session was last stopped (Unix ms).
    async fn stop_requested(&self, session: &SessionKey) -> Result<Option<i64>, StoreError>;
}

/// How long a `/stop` is remembered: longer than any job runs (a job's wall time is bounded
/// well below it), so a job that started before the stop always sees it.
pub const STOP_TTL: Duration = Duration::from_secs(24 * 3600);

/// Approved senders and pairing codes.
///
/// Contract (each point is a case in the conformance suite):
/// - `request_pairing` returns the peer's live code if it has one, else a new code, unless
///   [`MAX_PENDING_PAIRINGS`] are pending (`TooManyPending`). `approve_pairing` takes a live
///   code once, allowlists its peer atomically, and returns the request. Pending requests list
///   oldest first (ties by peer id). Expired codes are invisible and cannot be approved.
#[async_trait]
pub trait SenderStore: Send + Sync {
    async fn allow_sender(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<(), StoreError>;
    /// True when the peer was on the list.
    async fn revoke_sender(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<bool, StoreError>;
    async fn is_allowed(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
    ) -> Result<bool, StoreError>;
    async fn list_allowed(&self, channel: &str, account: &str) -> Result<Vec<String>, StoreError>;
    async fn request_pairing(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
        peer_name: Option<&str>,
        ttl: Duration,
    ) -> Result<PairingRequest, StoreError>;
    async fn list_pairing(
        &self,
        channel: &str,
        account: &str,
    ) -> Result<Vec<PairingRequest>, StoreError>;
    async fn approve_pairing(
        &self,
        channel: &str,
        account: &str,
        code: &str,
    ) -> Result<Option<PairingRequest>, StoreError>;
}

/// Fixed-window counters for rate and cost limits, shared by every worker of a fleet.
///
/// Contract (each point is a case in the conformance suite):
/// - `add(key, window, n)` adds `n` to the counter of `key` for the current window (windows
///   are aligned to multiples of `window` since the epoch) and returns the total after the add;
///   concurrent adds are never lost. A new window starts from zero.
#[async_trait]
pub trait RateCounters: Send + Sync {
    /// Adds `n` to `key`'s count in the current window and returns the new count; adding 0
    /// reads it.
    async fn add(&self, key: &str, window: Duration, n: u32) -> Result<u64, StoreError>;
}

/// Scheduled jobs (`crate::cron`).
///
/// Contract (each point is a case in the conformance suite):
/// - `put_cron` creates or replaces a job whole; `get_cron`, `list_cron` (by id) and
///   `remove_cron` (true when there was one) do what they say.
/// - `due_cron(now, limit)` returns enabled jobs whose `next_run` is at or before `now`,
///   soonest first, at most `limit`; jobs without a next run are never due. It may lag a
///   write by a moment (DynamoDB reads an index), which the guard below makes harmless.
/// - `advance_cron(id, expected, next, run)` sets the job's `next_run` to `next` and its
///   `last_run` to `run` only if its `next_run` is still `expected`: of two ticks taking one
///   slot, exactly one gets `true`.
#[async_trait]
pub trait CronStore: Send + Sync {
    async fn put_cron(&self, job: &CronJob) -> Result<(), StoreError>;
    async fn get_cron(&self, id: &str) -> Result<Option<CronJob>, StoreError>;
    async fn list_cron(&self) -> Result<Vec<CronJob>, StoreError>;
    async fn remove_cron(&self, id: &str) -> Result<bool, StoreError>;
    async fn due_cron(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<CronJob>, StoreError>;
    async fn advance_cron(
        &self,
        id: &str,
        expected: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        run: &CronRun,
    ) -> Result<bool, StoreError>;
}

/// All durable state: what a worker and the CLI hold. Each caller names the part it needs.
pub trait StateStore: TranscriptStore + JobLedger + SenderStore + RateCounters + CronStore {}

impl<T: TranscriptStore + JobLedger + SenderStore + RateCounters + CronStore> StateStore for T {}

/// The start of the fixed window that `now_ms` falls in, and when it ends.
pub(crate) fn window_bounds(now_ms: i64, window: Duration) -> (i64, i64) {
    let width = duration_ms(window).max(1);
    let start = now_ms - now_ms.rem_euclid(width);
    (start, start + width)
}

/// The entry as it will be stored: capped to [`MAX_ENTRY_BYTES`].
pub(crate) fn capped(entry: &TranscriptEntry) -> TranscriptEntry {
    let mut entry = entry.clone();
    entry.cap_to(MAX_ENTRY_BYTES);
    entry
}

/// A job detail cut to [`MAX_DETAIL_BYTES`] on a char boundary.
pub(crate) fn capped_detail(detail: Option<&str>) -> Option<String> {
    detail.map(|d| {
        let mut cut = d.len().min(MAX_DETAIL_BYTES);
        while !d.is_char_boundary(cut) {
            cut -= 1;
        }
        d[..cut].to_string()
    })
}

/// What a claim does to an existing record (or to none). The DynamoDB adapter states the same
/// rule as a condition expression; the SQLite adapter calls this.
pub(crate) fn claim_decision(
    existing: Option<&JobRecord>,
    owner: &str,
    now_ms: i64,
) -> ClaimDecision {
    match existing {
        None => ClaimDecision::Take,
        Some(r) if r.status.is_finished() => ClaimDecision::Finished,
        Some(r) if r.lease_until_ms <= now_ms || r.lease_owner.as_deref() == Some(owner) => {
            ClaimDecision::Take
        }
        Some(_) => ClaimDecision::Busy,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClaimDecision {
    Take,
    Finished,
    Busy,
}

/// Pairing codes: 8 characters with no look-alikes (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

pub(crate) fn new_pairing_code() -> String {
    let mut rng = rand::rng();
    (0..8)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// Codes are typed by people: accept any case and stray spaces.
pub(crate) fn normalize_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: JobStatus, owner: &str, until: i64) -> JobRecord {
        JobRecord {
            job_id: "j".into(),
            status,
            lease_owner: Some(owner.into()),
            lease_until_ms: until,
            attempt: 1,
            chunks_sent: vec![],
            created_ms: 0,
            updated_ms: 0,
            detail: None,
            usage: None,
            preview: None,
        }
    }

    #[test]
    fn claim_decisions_follow_the_contract() {
        let live = record(JobStatus::Running, "a", 2_000);
        assert_eq!(claim_decision(None, "b", 1_000), ClaimDecision::Take);
        assert_eq!(claim_decision(Some(&live), "b", 1_000), ClaimDecision::Busy);
        assert_eq!(claim_decision(Some(&live), "a", 1_000), ClaimDecision::Take);
        assert_eq!(claim_decision(Some(&live), "b", 2_000), ClaimDecision::Take);
        let done = record(JobStatus::Done, "a", 0);
        assert_eq!(
            claim_decision(Some(&done), "b", 9_999),
            ClaimDecision::Finished
        );
    }

    #[test]
    fn pairing_codes_avoid_look_alikes() {
        for _ in 0..200 {
            let code = new_pairing_code();
            assert_eq!(code.len(), 8);
            assert!(!code.contains(['0', 'O', '1', 'I', 'L']), "{code}");
        }
        assert_eq!(normalize_code(" ab3d "), "AB3D");
    }

    #[test]
    fn details_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_DETAIL_BYTES);
        let cut = capped_detail(Some(&long)).unwrap();
        assert!(cut.len() <= MAX_DETAIL_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
