//! The scheduler's tick: one path for every deployment (`clawgate up` calls it every few
//! seconds; on AWS a scheduled Lambda calls it every minute). It finds the due jobs, queues
//! each run as an ordinary job, and moves each job's next run on.
//!
//! Decisions:
//! - A run is queued before its job is advanced, with job id `cron:<id>:<slot ms>`: that is
//!   the queue's dedup id and the worker's job record key, so a slot queued twice (two ticks
//!   racing, or a tick that died between the two steps and the next tick repeating it) runs
//!   once. Advancing is a guarded write: of two ticks, one moves the job on.
//! - Slots missed while nothing ticked (the machine was off, the fleet at zero) coalesce into
//!   one run for the latest of them, queued at once when that slot is within the catch-up
//!   window (`cron.catchUpMinutes`, default 60), and recorded as late with the number of slots
//!   it stands for. An older one is skipped, and the record says why: a "good morning" brief is
//!   no use at 3 pm. Never silently: `clawgate cron list` and `status` show it.
//! - The run's text says it is a scheduled run, so the model knows nobody just typed it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{
    Channel, ChatKind, ChatRef, CronDelivery, CronJob, CronRun, CronSession, InboundMessage,
    JobMessage, ReplyTarget, Schedule, Sender, SessionKey,
};
use crate::queue::{JobQueue, JobQueueExt, QueueError};
use crate::store::{CronStore, StoreError, TranscriptStore};

/// The most due jobs one tick takes; the rest wait for the next tick.
pub const MAX_PER_TICK: usize = 100;

/// What a tick did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// `(job id, work id)` of each run this tick queued.
    pub queued: Vec<(String, String)>,
    /// Jobs not run: the latest missed slot was older than the catch-up window, or the time
    /// is outside the job's active hours.
    pub skipped: Vec<String>,
    /// Jobs another tick advanced first.
    pub lost_races: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Queues every run due at `now` (see the module's decisions).
pub async fn tick(
    store: &(impl CronStore + TranscriptStore + ?Sized),
    queue: &(impl JobQueue + ?Sized),
    now: DateTime<Utc>,
    catch_up: Duration,
) -> Result<TickReport, TickError> {
    let mut report = TickReport::default();
    for job in store.due_cron(now, MAX_PER_TICK).await? {
        let Some(first) = job.next_run else { continue };
        let Some((slots, latest)) = job.schedule.catch_up(first, now) else {
            continue;
        };
        let late = (now - latest).to_std().unwrap_or_default();
        let mut run = CronRun {
            slot: latest,
            queued_at: now,
            slots,
            work_id: None,
            skipped: None,
        };
        let outside = job
            .active_hours
            .as_ref()
            .filter(|hours| !hours.contains(now));
        if let Some(hours) = outside {
            run.skipped = Some(format!(
                "outside the active hours {}-{} ({})",
                hours.start,
                hours.end,
                hours.timezone.as_deref().unwrap_or("UTC")
            ));
        } else if late > catch_up {
            run.skipped = Some(format!(
                "missed: the latest slot was {} late, past the {} catch-up window",
                humantime::format_duration(Duration::from_secs(late.as_secs())),
                humantime::format_duration(catch_up)
            ));
        } else {
            let message = run_message(store, &job, &run).await?;
            queue.send(&message).await?;
            run.work_id = Some(message.inbound.event_id.clone());
        }
        let next = job.schedule.next_after(now);
        if store.advance_cron(&job.id, first, next, &run).await? {
            match &run.work_id {
                Some(work) => {
                    tracing::info!(cron = %job.id, slot = %latest, slots, late_s = run.late_secs(), "scheduled run queued");
                    report.queued.push((job.id.clone(), work.clone()));
                }
                None => {
                    tracing::warn!(cron = %job.id, slot = %latest, reason = run.skipped.as_deref().unwrap_or(""), "scheduled run skipped");
                    report.skipped.push(job.id.clone());
                }
            }
        } else {
            report.lost_races.push(job.id.clone());
        }
    }
    Ok(report)
}

/// The job a run of `job` queues: its session, its text, and where the answer goes.
pub async fn run_message(
    store: &(impl TranscriptStore + ?Sized),
    job: &CronJob,
    run: &CronRun,
) -> Result<JobMessage, StoreError> {
    let session = job.session_key();
    let (account, reply_to) = match &job.deliver {
        CronDelivery::None => ("cron".to_string(), None),
        CronDelivery::Chat { account, target } => (account.clone(), Some(target.clone())),
        CronDelivery::Last => match last_chat(store, &job.agent).await? {
            Some(target) => ("default".to_string(), Some(target)),
            None => ("cron".to_string(), None),
        },
    };
    let late = if run.slots > 1 || run.late_secs() >= 60 {
        format!(
            " It is {} late ({} missed slot(s) run as one).",
            humantime::format_duration(Duration::from_secs(run.late_secs() as u64)),
            run.slots
        )
    } else {
        String::new()
    };
    let mut inbound = InboundMessage::new(
        Channel::Hook,
        &account,
        job.work_id(run.slot),
        ChatRef::new(ChatKind::Dm, session.to_string()),
        Sender {
            id: "cron".into(),
            name: Some(format!("scheduled job {}", job.id)),
        },
        format!(
            "[Scheduled job {:?}, {}, for {}.{late}]\n{}",
            job.id,
            job.schedule.describe(),
            run.slot.to_rfc3339(),
            job.message
        ),
    );
    inbound.received_at = run.queued_at;
    let mut message = JobMessage::new(session, &job.agent, inbound, reply_to);
    message.job_id = job.work_id(run.slot);
    message.heartbeat = job.heartbeat;
    Ok(message)
}

/// The chat the owner wrote from most recently: the agent's most recently active direct chat
/// the channels can address (never a group: a reminder is the owner's).
pub async fn last_chat(
    store: &(impl TranscriptStore + ?Sized),
    agent: &str,
) -> Result<Option<ReplyTarget>, StoreError> {
    Ok(store
        .list_sessions(agent, 20)
        .await?
        .iter()
        .filter(|s| {
            matches!(
                s.key,
                SessionKey::Peer {
                    kind: ChatKind::Dm,
                    ..
                }
            )
        })
        .find_map(|s| ReplyTarget::for_session(&s.key)))
}

/// Puts the heartbeat in step with `config`, then ticks every `every` until `stop` turns true
/// (`clawgate up`); a failed tick is logged and the next one tries again.
pub async fn run_scheduler(
    config: crate::config::Config,
    store: std::sync::Arc<dyn crate::store::StateStore>,
    queue: std::sync::Arc<dyn JobQueue>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if let Err(e) = sync_heartbeats(store.as_ref(), &config, Utc::now()).await {
        tracing::warn!(error = %e, "could not schedule the heartbeat");
    }
    let catch_up = config.cron.catch_up();
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(e) = tick(store.as_ref(), queue.as_ref(), Utc::now(), catch_up).await {
            tracing::warn!(error = %e, "scheduler tick failed; the next tick tries again");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// A job as a person or the model describes it (`clawgate cron add`, the `cron` tool): exactly
/// one of `at`, `every`, `cron`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobSpec {
    /// Default: one made from the time.
    pub id: Option<String>,
    /// An RFC 3339 instant, or `HH:MM` today or tomorrow in `tz`.
    pub at: Option<String>,
    /// `20m`, `1h 30m`, `1d`: from now, then on that grid.
    pub every: Option<String>,
    /// A 5-field cron expression in `tz`.
    pub cron: Option<String>,
    /// IANA zone for `at` (as `HH:MM`) and `cron`; default UTC.
    pub tz: Option<String>,
    pub message: String,
    /// `isolated` (default) or `main`.
    pub session: Option<CronSession>,
    /// `none`, `last`, `telegram:<chat>[:topic:<n>]`, `slack:<channel>`,
    /// `webchat:<conversation>`; default given by the caller.
    pub deliver: Option<String>,
}

impl JobSpec {
    /// The job, checked, for `agent`, with its first run after `now`.
    pub fn build(
        self,
        agent: &str,
        default_deliver: CronDelivery,
        now: DateTime<Utc>,
    ) -> Result<CronJob, String> {
        let tz = self.tz.as_deref().unwrap_or("UTC");
        let schedule = match (&self.at, &self.every, &self.cron) {
            (Some(at), None, None) => Schedule::At {
                at: crate::model::parse_instant(at, tz, now).map_err(|e| e.to_string())?,
            },
            (None, Some(every), None) => {
                let every = humantime::parse_duration(every)
                    .map_err(|e| format!("every {every:?}: {e} (use e.g. 20m, 1h 30m, 1d)"))?;
                Schedule::every(every, now).map_err(|e| e.to_string())?
            }
            (None, None, Some(expr)) => Schedule::cron(expr, tz).map_err(|e| e.to_string())?,
            _ => return Err("give exactly one of at, every and cron".into()),
        };
        let deliver = match self.deliver.as_deref() {
            Some(text) => parse_delivery(text)?,
            None => default_deliver,
        };
        let id = self
            .id
            .unwrap_or_else(|| format!("job-{}", ulid::Ulid::new().to_string().to_lowercase()));
        let job = CronJob {
            id,
            agent: agent.to_string(),
            next_run: schedule.next_after(now),
            schedule,
            session: self.session.unwrap_or(CronSession::Isolated),
            message: self.message,
            deliver,
            enabled: true,
            created_at: now,
            last_run: None,
            active_hours: None,
            heartbeat: None,
        };
        if job.next_run.is_none() {
            return Err("that time has passed".into());
        }
        job.check()?;
        Ok(job)
    }
}

/// `none`, `last`, `telegram:<chat>[:topic:<n>]`, `slack:<channel>`, `webchat:<conversation>`.
pub fn parse_delivery(text: &str) -> Result<CronDelivery, String> {
    use crate::model::{SlackTarget, TelegramTarget, WebchatTarget};
    let bad = || {
        format!("deliver {text:?}: use none, last, telegram:<chat id>[:topic:<n>], slack:<channel id> or webchat:<conversation>")
    };
    let chat = |target| CronDelivery::Chat {
        account: "default".into(),
        target,
    };
    let parts: Vec<&str> = text.trim().split(':').collect();
    Ok(match parts.as_slice() {
        ["none"] => CronDelivery::None,
        ["last"] => CronDelivery::Last,
        ["telegram", id] | ["telegram", id, "topic", _] => {
            chat(ReplyTarget::Telegram(TelegramTarget {
                chat_id: id.parse().map_err(|_| bad())?,
                message_thread_id: match parts.get(3) {
                    Some(topic) => Some(topic.parse().map_err(|_| bad())?),
                    None => None,
                },
                reply_to_message_id: None,
            }))
        }
        ["slack", id] if !id.is_empty() => chat(ReplyTarget::Slack(SlackTarget {
            channel: id.to_string(),
            thread_ts: None,
        })),
        ["webchat", id] if !id.is_empty() => chat(ReplyTarget::Webchat(WebchatTarget {
            conversation: id.to_string(),
        })),
        _ => return Err(bad()),
    })
}

/// Queues a run of `job` now, outside its schedule (`clawgate cron run`, the tool's `run`);
/// its next scheduled run is left as it is. Returns the run's job id.
pub async fn run_now(
    store: &(impl TranscriptStore + ?Sized),
    queue: &(impl JobQueue + ?Sized),
    job: &CronJob,
    now: DateTime<Utc>,
) -> Result<String, TickError> {
    let run = CronRun {
        slot: now,
        queued_at: now,
        slots: 1,
        work_id: None,
        skipped: None,
    };
    let message = run_message(store, job, &run).await?;
    queue.send(&message).await?;
    Ok(message.job_id)
}

/// The heartbeat's instruction when the config gives none.
pub const HEARTBEAT_PROMPT: &str = "Heartbeat: follow HEARTBEAT.md (in the Project Context above) if it is there. Do not bring back old tasks from earlier chats. If nothing needs the owner's attention now, reply HEARTBEAT_OK.";

/// The id of an agent's heartbeat job.
pub fn heartbeat_id(agent: &str) -> String {
    format!("heartbeat-{}", agent.to_ascii_lowercase())
}

/// Keeps the default agent's heartbeat job in step with `agents.defaults.heartbeat`: made when
/// it is on, replaced when its settings changed, removed when it is off. Run where ticks run
/// (`clawgate up` at start, the tick Lambda on each call).
pub async fn sync_heartbeats(
    store: &(impl CronStore + ?Sized),
    config: &crate::config::Config,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let agent = config.default_agent();
    let id = heartbeat_id(agent);
    let beat = &config.agents.defaults.heartbeat;
    let existing = store.get_cron(&id).await?;
    let Some(every) = beat.interval().ok().flatten() else {
        if existing.is_some() {
            store.remove_cron(&id).await?;
        }
        return Ok(());
    };
    let Ok(deliver) = parse_delivery(&beat.target) else {
        return Ok(()); // `config validate` names the problem
    };
    let Ok(schedule) = Schedule::every(every, now) else {
        return Ok(());
    };
    let wanted = CronJob {
        id: id.clone(),
        agent: agent.to_string(),
        next_run: schedule.next_after(now),
        schedule,
        session: CronSession::Main,
        message: beat
            .prompt
            .clone()
            .unwrap_or_else(|| HEARTBEAT_PROMPT.to_string()),
        deliver,
        enabled: true,
        created_at: now,
        last_run: None,
        active_hours: beat.active_hours.clone(),
        heartbeat: Some(crate::model::HeartbeatRule {
            ack_max_chars: beat.ack_max_chars,
        }),
    };
    let same = existing.as_ref().is_some_and(|e| {
        let interval = |s: &Schedule| match s {
            Schedule::Every { every_ms, .. } => Some(*every_ms),
            _ => None,
        };
        interval(&e.schedule) == interval(&wanted.schedule)
            && e.message == wanted.message
            && e.deliver == wanted.deliver
            && e.active_hours == wanted.active_hours
            && e.heartbeat == wanted.heartbeat
            && e.agent == wanted.agent
    });
    if !same {
        store.put_cron(&wanted).await?;
        tracing::info!(agent, every = %humantime::format_duration(every), "heartbeat scheduled");
    }
    Ok(())
}
