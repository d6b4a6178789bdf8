//! Scheduled jobs (OpenClaw's cron): when a job runs, in which session, what it says, and
//! where its answer goes; and the record of its latest run.
//!
//! Decisions:
//! - A schedule is a one-shot instant (`at`), a fixed interval (`every`, counted from the
//!   job's anchor so runs do not drift), or a 5-field cron expression in an IANA time zone
//!   (`croner` parses it; `chrono-tz` knows the zones, daylight saving included).
//! - The job keeps its next run time; the scheduler's tick finds due jobs by it and moves it
//!   on in a guarded write, so a slot is taken once however many ticks race.
//! - Missed slots (the machine was off, the fleet scaled to zero) coalesce: [`Schedule::catch_up`]
//!   says how many were missed and which was the latest; one run stands for them all.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{ReplyTarget, SessionKey};

/// The most slots [`Schedule::catch_up`] counts before it stops counting.
pub const MAX_COUNTED_SLOTS: u32 = 10_000;

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    /// Once, at this instant.
    At { at: DateTime<Utc> },
    /// Every `every_ms`, on the grid that starts at `anchor`.
    Every {
        every_ms: u64,
        anchor: DateTime<Utc>,
    },
    /// A 5-field cron expression (`0 8 * * 1-5`) in time zone `tz` (IANA, e.g.
    /// `Europe/Berlin`).
    Cron { expr: String, tz: String },
}

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0:?} is not a cron expression: {1}")]
    Expression(String, String),
    #[error("{0:?} is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)")]
    TimeZone(String),
    #[error("an interval must be at least one minute")]
    TooShort,
    #[error("a cron expression has 5 fields (minute hour day month weekday); {0:?} has {1}")]
    Fields(String, usize),
}

/// The minimum interval of an `every` schedule.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

impl Schedule {
    /// A cron schedule, checked.
    pub fn cron(expr: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        let schedule = Schedule::Cron {
            expr: expr.trim().to_string(),
            tz: tz.trim().to_string(),
        };
        schedule.check()?;
        Ok(schedule)
    }

    /// An interval schedule whose first run is one interval after `anchor`.
    pub fn every(every: Duration, anchor: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        if every < MIN_INTERVAL {
            return Err(ScheduleError::TooShort);
        }
        Ok(Schedule::Every {
            every_ms: every.as_millis() as u64,
            anchor,
        })
    }

    /// Whether the schedule can be computed (a parsed expression, a known zone, an interval
    /// of a minute or more).
    pub fn check(&self) -> Result<(), ScheduleError> {
        match self {
            Schedule::At { .. } => Ok(()),
            Schedule::Every { every_ms, .. } => {
                if *every_ms < MIN_INTERVAL.as_millis() as u64 {
                    return Err(ScheduleError::TooShort);
                }
                Ok(())
            }
            Schedule::Cron { expr, tz } => {
                parse_cron(expr)?;
                parse_tz(tz)?;
                Ok(())
            }
        }
    }

    /// The first run strictly after `after`, if there is one.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::At { at } => (*at > after).then_some(*at),
            Schedule::Every { every_ms, anchor } => {
                let every = *every_ms as i64;
                if every <= 0 {
                    return None;
                }
                let since = (after - *anchor).num_milliseconds();
                let steps = if since < 0 { 1 } else { since / every + 1 };
                Some(*anchor + chrono::Duration::milliseconds(steps.checked_mul(every)?))
            }
            Schedule::Cron { expr, tz } => {
                let cron = parse_cron(expr).ok()?;
                let tz = parse_tz(tz).ok()?;
                let local = after.with_timezone(&tz);
                let next = cron.find_next_occurrence(&local, false).ok()?;
                Some(next.with_timezone(&Utc))
            }
        }
    }

    /// The slots from `first` (a slot) up to `now`: how many there are (capped at
    /// [`MAX_COUNTED_SLOTS`]) and the latest of them. `None` when `first` is after `now`.
    pub fn catch_up(
        &self,
        first: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<(u32, DateTime<Utc>)> {
        if first > now {
            return None;
        }
        let (mut count, mut latest) = (1, first);
        if let Schedule::Every { every_ms, .. } = self {
            // Arithmetic, not a walk: an interval job off for a year is one division.
            let behind = (now - first).num_milliseconds() / (*every_ms as i64).max(1);
            let latest = first + chrono::Duration::milliseconds(behind * *every_ms as i64);
            return Some(((behind + 1).min(MAX_COUNTED_SLOTS as i64) as u32, latest));
        }
        while count < MAX_COUNTED_SLOTS {
            match self.next_after(latest) {
                Some(next) if next <= now => {
                    latest = next;
                    count += 1;
                }
                _ => break,
            }
        }
        Some((count, latest))
    }

    /// The schedule in a few words (`clawgate cron list`, the `cron` tool).
    pub fn describe(&self) -> String {
        match self {
            Schedule::At { at } => format!("at {}", at.to_rfc3339()),
            Schedule::Every { every_ms, .. } => format!(
                "every {}",
                humantime::format_duration(Duration::from_millis(*every_ms))
            ),
            Schedule::Cron { expr, tz } => format!("cron {expr} ({tz})"),
        }
    }
}

fn parse_cron(expr: &str) -> Result<croner::Cron, ScheduleError> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(ScheduleError::Fields(expr.to_string(), fields));
    }
    croner::Cron::from_str(expr)
        .map_err(|e| ScheduleError::Expression(expr.to_string(), e.to_string()))
}

fn parse_tz(tz: &str) -> Result<chrono_tz::Tz, ScheduleError> {
    tz.parse::<chrono_tz::Tz>()
        .map_err(|_| ScheduleError::TimeZone(tz.to_string()))
}

/// Which session a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CronSession {
    /// `cron:<id>`: a session of the job's own, so runs do not crowd the owner's chat.
    Isolated,
    /// The agent's main session (`agent:<id>:main`).
    Main,
}

/// Where a run's answer goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "lowercase")]
pub enum CronDelivery {
    /// Nowhere: the answer stays in the transcript.
    None,
    /// The chat the owner wrote from most recently (resolved at each run).
    Last,
    /// This chat, through this channel account.
    Chat {
        account: String,
        target: ReplyTarget,
    },
}

/// The latest run the scheduler started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronRun {
    /// The slot it ran for (the latest, when several were missed).
    pub slot: DateTime<Utc>,
    /// When the tick queued it.
    pub queued_at: DateTime<Utc>,
    /// How many slots this one run stands for (1 when on time).
    pub slots: u32,
    /// The run's job id (its job record), or `None` when it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_id: Option<String>,
    /// Why it did not run, when it did not (the latest missed slot was older than the
    /// catch-up window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl CronRun {
    /// How late it was queued, in whole seconds.
    pub fn late_secs(&self) -> i64 {
        (self.queued_at - self.slot).num_seconds().max(0)
    }
}

/// The hours of the day a job may run in (`activeHours`, OpenClaw's heartbeat key), in
/// `timezone` (default UTC); an `end` before `start` spans midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ActiveHours {
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`.
    pub end: String,
    #[serde(default)]
    pub timezone: Option<String>,
}

impl ActiveHours {
    /// Whether the times and zone parse.
    pub fn check(&self) -> Result<(), ScheduleError> {
        self.bounds().map(|_| ())
    }

    fn bounds(
        &self,
    ) -> Result<(chrono::NaiveTime, chrono::NaiveTime, chrono_tz::Tz), ScheduleError> {
        let time = |t: &str| {
            chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map_err(|e| ScheduleError::Expression(t.to_string(), e.to_string()))
        };
        let tz = parse_tz(self.timezone.as_deref().unwrap_or("UTC"))?;
        Ok((time(&self.start)?, time(&self.end)?, tz))
    }

    /// Whether `at` falls inside the hours (a bad setting is never inside: fail closed).
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let Ok((start, end, tz)) = self.bounds() else {
            return false;
        };
        let local = at.with_timezone(&tz).time();
        if start <= end {
            start <= local && local < end
        } else {
            local >= start || local < end
        }
    }
}

/// What makes a run a heartbeat: an answer that is just `HEARTBEAT_OK` (with at most
/// `ack_max_chars` of other text) is not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRule {
    pub ack_max_chars: usize,
}

/// The token a heartbeat answers with when nothing needs the owner.
pub const HEARTBEAT_OK: &str = "HEARTBEAT_OK";

impl HeartbeatRule {
    /// Whether `reply` only acknowledges: `HEARTBEAT_OK` at its start or end, and at most
    /// `ack_max_chars` of anything else.
    pub fn is_ack(&self, reply: &str) -> bool {
        let text = reply.trim().trim_matches('*').trim();
        let rest = if let Some(rest) = text.strip_prefix(HEARTBEAT_OK) {
            rest
        } else if let Some(rest) = text.strip_suffix(HEARTBEAT_OK) {
            rest
        } else {
            return false;
        };
        rest.trim().chars().count() <= self.ack_max_chars
    }
}

/// One scheduled job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJob {
    /// 1-64 of a-z 0-9 - _ (it is part of a session key).
    pub id: String,
    pub agent: String,
    pub schedule: Schedule,
    pub session: CronSession,
    /// What the agent is told at each run.
    pub message: String,
    pub deliver: CronDelivery,
    pub enabled: bool,
    /// The next slot; `None` once a one-shot has run, or while disabled.
    pub next_run: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<CronRun>,
    /// Runs outside these hours are skipped (and recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_hours: Option<ActiveHours>,
    /// Set on an agent's heartbeat (`agents.defaults.heartbeat`), which the scheduler keeps in
    /// step with the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatRule>,
}

/// The longest message a job may carry.
pub const MAX_CRON_MESSAGE_CHARS: usize = 4_000;

impl CronJob {
    /// The session a run of this job belongs to.
    pub fn session_key(&self) -> SessionKey {
        match self.session {
            CronSession::Isolated => SessionKey::Cron {
                job: self.id.clone(),
            },
            CronSession::Main => SessionKey::main(&self.agent),
        }
    }

    /// The job id of the run for `slot`: the queue's dedup id and the job record's key, so a
    /// slot queued twice runs once.
    pub fn work_id(&self, slot: DateTime<Utc>) -> String {
        format!("cron:{}:{}", self.id, slot.timestamp_millis())
    }

    /// Checks what a caller (the CLI, the `cron` tool) may get wrong.
    pub fn check(&self) -> Result<(), String> {
        let id_ok = (1..=64).contains(&self.id.len())
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !id_ok {
            return Err(format!(
                "{:?} is not a job id: use 1-64 of a-z 0-9 - _",
                self.id
            ));
        }
        if self.message.trim().is_empty() {
            return Err("a job needs a message".into());
        }
        if self.message.chars().count() > MAX_CRON_MESSAGE_CHARS {
            return Err(format!(
                "a job's message is at most {MAX_CRON_MESSAGE_CHARS} characters"
            ));
        }
        self.schedule.check().map_err(|e| e.to_string())
    }
}

/// `2026-12-03T08:00:00Z`, or a time today/tomorrow as `HH:MM` in `tz`: what `--at` takes.
pub fn parse_instant(
    text: &str,
    tz: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ScheduleError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(at.with_timezone(&Utc));
    }
    let zone = parse_tz(tz)?;
    let time = chrono::NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|e| ScheduleError::Expression(text.to_string(), e.to_string()))?;
    let today = now.with_timezone(&zone).date_naive();
    for day in [today, today.succ_opt().unwrap_or(today)] {
        if let Some(at) = zone.from_local_datetime(&day.and_time(time)).earliest() {
            let at = at.with_timezone(&Utc);
            if at > now {
                return Ok(at);
            }
        }
    }
    Err(ScheduleError::Expression(
        text.to_string(),
        "that time does not exist in this zone today or tomorrow".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_weekday_cron_in_a_zone_follows_its_local_time_across_daylight_saving() {
        let s = Schedule::cron("0 8 * * 1-5", "Europe/Berlin").unwrap();
        // Friday 2026-03-27 08:00 CET is 07:00Z; the next is Monday 2026-03-30, after the
        // switch to summer time, 08:00 CEST = 06:00Z.
        assert_eq!(
            s.next_after(t("2026-03-26T07:00:00Z")),
            Some(t("2026-03-27T07:00:00Z"))
        );
        assert_eq!(
            s.next_after(t("2026-03-27T07:00:00Z")),
            Some(t("2026-03-30T06:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        assert!(matches!(
            Schedule::cron("0 8 * *", "UTC"),
            Err(ScheduleError::Fields(_, 4))
        ));
        assert!(matches!(
            Schedule::cron("0 25 * * *", "UTC"),
            Err(ScheduleError::Expression(..))
        ));
        assert!(matches!(
            Schedule::cron("0 8 * * *", "Mars/Olympus"),
            Err(ScheduleError::TimeZone(_))
        ));
        assert!(matches!(
            Schedule::every(Duration::from_secs(5), Utc::now()),
            Err(ScheduleError::TooShort)
        ));
    }

    #[test]
    fn intervals_stay_on_their_grid_and_one_shots_run_once() {
        let anchor = t("2026-12-03T10:00:00Z");
        let every = Schedule::every(Duration::from_secs(600), anchor).unwrap();
        assert_eq!(every.next_after(anchor), Some(t("2026-12-03T10:10:00Z")));
        assert_eq!(
            every.next_after(t("2026-12-03T10:17:00Z")),
            Some(t("2026-12-03T10:20:00Z"))
        );
        let once = Schedule::At { at: anchor };
        assert_eq!(once.next_after(t("2026-12-03T09:00:00Z")), Some(anchor));
        assert_eq!(once.next_after(anchor), None);
    }

    #[test]
    fn missed_slots_coalesce_into_one_count_and_the_latest() {
        let anchor = t("2026-12-03T10:00:00Z");
        let every = Schedule::every(Duration::from_secs(60), anchor).unwrap();
        let first = t("2026-12-03T10:01:00Z");
        assert_eq!(
            every.catch_up(first, t("2026-12-03T10:03:30Z")),
            Some((3, t("2026-12-03T10:03:00Z")))
        );
        let hourly = Schedule::cron("0 * * * *", "UTC").unwrap();
        assert_eq!(
            hourly.catch_up(t("2026-12-03T01:00:00Z"), t("2026-12-03T05:30:00Z")),
            Some((5, t("2026-12-03T05:00:00Z")))
        );
        assert_eq!(
            hourly.catch_up(t("2026-12-03T06:00:00Z"), t("2026-12-03T05:30:00Z")),
            None
        );
    }

    #[test]
    fn active_hours_hold_in_their_zone_and_may_span_midnight() {
        let day = ActiveHours {
            start: "08:00".into(),
            end: "22:00".into(),
            timezone: Some("Europe/Berlin".into()),
        };
        assert!(day.contains(t("2026-12-03T07:30:00Z")), "08:30 in Berlin");
        assert!(!day.contains(t("2026-12-03T21:30:00Z")), "22:30 in Berlin");
        let night = ActiveHours {
            start: "22:00".into(),
            end: "06:00".into(),
            timezone: None,
        };
        assert!(
            night.contains(t("2026-12-03T23:00:00Z")) && night.contains(t("2026-12-03T05:59:00Z"))
        );
        assert!(!night.contains(t("2026-12-03T12:00:00Z")));
        let broken = ActiveHours {
            start: "8am".into(),
            end: "22:00".into(),
            timezone: None,
        };
        assert!(broken.check().is_err() && !broken.contains(t("2026-12-03T12:00:00Z")));
    }

    #[test]
    fn a_heartbeat_ack_is_the_token_with_little_else() {
        let rule = HeartbeatRule { ack_max_chars: 20 };
        for ack in [
            "HEARTBEAT_OK",
            "  **HEARTBEAT_OK**  ",
            "All quiet. HEARTBEAT_OK",
            "HEARTBEAT_OK nothing new",
        ] {
            assert!(rule.is_ack(ack), "{ack}");
        }
        for news in [
            "Your flight moved to 9:40.",
            "HEARTBEAT_OK but your flight moved to 9:40 and the gate changed",
            "heartbeat ok",
        ] {
            assert!(!rule.is_ack(news), "{news}");
        }
    }

    #[test]
    fn at_takes_an_instant_or_a_local_time_today_or_tomorrow() {
        let now = t("2026-12-03T21:00:00Z");
        assert_eq!(
            parse_instant("2026-12-04T08:00:00+01:00", "UTC", now).unwrap(),
            t("2026-12-04T07:00:00Z")
        );
        assert_eq!(
            parse_instant("23:30", "UTC", now).unwrap(),
            t("2026-12-03T23:30:00Z")
        );
        assert_eq!(
            parse_instant("08:00", "Europe/Berlin", now).unwrap(),
            t("2026-12-04T07:00:00Z")
        );
        assert!(parse_instant("soon", "UTC", now).is_err());
    }
}
