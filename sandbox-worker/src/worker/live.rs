//! What the user watches while a job runs: one preview message, posted on the first tool call
//! or after [`PREVIEW_AFTER`], edited with a line per tool call, and finally edited into the
//! answer; and the `/stop` watch that cancels the run.
//!
//! Decisions:
//! - Exactly one preview per job. Its id is recorded on the job record right after it is
//!   posted and before any edit, so an attempt resumed on another worker (after kill -9)
//!   edits the same message; the lines are rebuilt from the job's tool calls in the
//!   transcript. The window between the post and the record is the same one every channel
//!   send has (the chunk marks): a crash exactly there can show one stray "working" message.
//! - Edits keep to each API's pace ([`crate::reply::Outbound::min_edit_interval`]): a progress edit due sooner is
//!   folded into the next one; the final edit waits its turn. A refused edit (the message was
//!   deleted, is too old) makes the answer a new message instead: never lost.
//! - The preview is best-effort: a failed progress edit is logged, the run goes on.
//! - `/stop` (`worker::commands`) writes the session's stop time to the store; each running
//!   job reads it every [`STOP_POLL`] and stops when it is later than its own message, so a
//!   stop reaches a job on any worker. A job queued before the stop stops before it starts.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use infra::model::{EntryBody, JobMessage, ReplyTarget, ToolCall, Transcript};
use tokio::time::Instant;

use super::{work_id, AbortOnDrop, Worker};
use crate::agent::{Lease, Progress};
use crate::sandbox::Cancel;

/// How long a run may go without a tool call before the preview appears anyway.
pub(super) const PREVIEW_AFTER: Duration = Duration::from_secs(1);
/// How often a running job reads its session's stop time.
pub(super) const STOP_POLL: Duration = Duration::from_secs(1);
/// The preview's first line, until the answer replaces it.
const WORKING: &str = "⏳ Working on it…";
/// Tool lines shown; older ones are counted, not listed.
const MAX_LINES: usize = 8;
/// A tool line is cut to this many characters.
const LINE_CHARS: usize = 80;

/// One job's preview: whether it shows one, and what it shows.
pub(super) struct Preview {
    target: Option<ReplyTarget>,
    state: tokio::sync::Mutex<State>,
    /// True while the delayed first post is in flight: it is finished, not dropped.
    posting: AtomicBool,
}

#[derive(Default)]
struct State {
    id: Option<String>,
    lines: Vec<String>,
    last_edit: Option<Instant>,
    shown: String,
}

impl Preview {
    /// The job's preview: the one an earlier attempt posted (`preview_id`), or none yet.
    pub(super) fn for_job(worker: &Worker, job: &JobMessage, preview_id: Option<String>) -> Self {
        // A heartbeat that finds nothing to report says nothing: it shows no preview either.
        let target = job.reply_to.clone().filter(|t| {
            worker.outbound.previews(&job.inbound.account, t) && job.heartbeat.is_none()
        });
        Preview {
            state: tokio::sync::Mutex::new(State {
                id: preview_id.filter(|_| target.is_some()),
                ..State::default()
            }),
            target,
            posting: AtomicBool::new(false),
        }
    }

    /// Lists the tool calls this job already made (a resumed attempt's earlier steps).
    pub(super) async fn resume_lines(&self, transcript: &Transcript, job_id: &str) {
        let calls = transcript
            .entries
            .iter()
            .filter(|e| e.job_id.as_deref() == Some(job_id))
            .flat_map(|e| match &e.body {
                EntryBody::Assistant { tool_calls, .. } => tool_calls.clone(),
                _ => vec![],
            });
        self.state.lock().await.lines = calls.map(|c| tool_line(&c)).collect();
    }

    /// Runs `work`; when it takes longer than [`PREVIEW_AFTER`] and no preview is up yet,
    /// posts one meanwhile.
    pub(super) async fn during<F: Future>(&self, watch: &Watch<'_>, work: F) -> F::Output {
        if self.target.is_none() {
            return work.await;
        }
        let placeholder = async {
            tokio::time::sleep(PREVIEW_AFTER).await;
            self.posting.store(true, Ordering::SeqCst);
            let state = self.state.lock().await;
            if state.id.is_none() {
                self.show(watch, state, false).await;
            }
            self.posting.store(false, Ordering::SeqCst);
        };
        let (work, placeholder) = (std::pin::pin!(work), std::pin::pin!(placeholder));
        match futures_util::future::select(work, placeholder).await {
            futures_util::future::Either::Left((out, placeholder)) => {
                if self.posting.load(Ordering::SeqCst) {
                    placeholder.await;
                }
                out
            }
            futures_util::future::Either::Right(((), work)) => work.await,
        }
    }

    /// Makes the preview show `text` as the answer: true when it does; false when there is no
    /// preview or it could not be edited, and the caller sends `text` as a new message.
    pub(super) async fn finish(&self, watch: &Watch<'_>, text: &str) -> bool {
        let Some(target) = &self.target else {
            return false;
        };
        let mut state = self.state.lock().await;
        let Some(id) = state.id.clone() else {
            return false;
        };
        if let Some(last) = state.last_edit {
            let pace = watch
                .worker
                .outbound
                .min_edit_interval(&watch.job.inbound.account, target);
            tokio::time::sleep_until(last + pace).await;
        }
        if watch.lease.check().is_err() {
            return false;
        }
        let edited = watch
            .worker
            .outbound
            .edit(&watch.job.inbound.account, target, &id, text)
            .await;
        state.last_edit = Some(Instant::now());
        match edited {
            Ok(()) => {
                state.shown = text.to_string();
                true
            }
            Err(e) => {
                tracing::warn!(job = %watch.job.job_id, error = %e, "the preview could not be edited into the answer; sending it as a new message");
                false
            }
        }
    }

    /// Posts the preview, or edits it to the current lines. A progress edit due sooner than
    /// the channel allows is skipped (`wait: false`): the next edit carries its line.
    async fn show(
        &self,
        watch: &Watch<'_>,
        mut state: tokio::sync::MutexGuard<'_, State>,
        wait: bool,
    ) {
        let Some(target) = &self.target else { return };
        let text = render(&state.lines);
        if text == state.shown || watch.lease.check().is_err() {
            return;
        }
        let (worker, job) = (watch.worker, watch.job);
        let account = &job.inbound.account;
        match state.id.clone() {
            None => match worker.outbound.post(account, target, &text).await {
                Ok(id) => {
                    let recorded = worker
                        .backends
                        .store
                        .set_preview(work_id(job), &worker.settings.worker_id, &id)
                        .await;
                    if let Err(e) = recorded {
                        tracing::warn!(job = %job.job_id, error = %e, "the preview's id could not be recorded");
                    }
                    state.id = Some(id);
                    state.last_edit = Some(Instant::now());
                    state.shown = text;
                }
                Err(e) => {
                    tracing::warn!(job = %job.job_id, error = %e, "the preview could not be posted")
                }
            },
            Some(id) => {
                let pace = worker.outbound.min_edit_interval(account, target);
                let due = state.last_edit.map(|last| last + pace);
                if let Some(due) = due.filter(|due| *due > Instant::now()) {
                    if !wait {
                        return;
                    }
                    tokio::time::sleep_until(due).await;
                }
                let edited = worker.outbound.edit(account, target, &id, &text).await;
                state.last_edit = Some(Instant::now());
                match edited {
                    Ok(()) => state.shown = text,
                    Err(e) => {
                        tracing::warn!(job = %job.job_id, error = %e, "the preview could not be edited")
                    }
                }
            }
        }
    }
}

/// The preview as the agent loop sees it: told of each tool call.
pub(super) struct Watch<'a> {
    pub worker: &'a Worker,
    pub job: &'a JobMessage,
    pub lease: &'a Lease,
    pub preview: &'a Preview,
}

#[async_trait::async_trait]
impl Progress for Watch<'_> {
    async fn tool_started(&self, call: &ToolCall) {
        if self.preview.target.is_none() {
            return;
        }
        let mut state = self.preview.state.lock().await;
        state.lines.push(tool_line(call));
        self.preview.show(self, state, false).await;
    }
}

/// `🔧 exec ls -la`: the tool and what it works on, on one line.
fn tool_line(call: &ToolCall) -> String {
    let input = &call.input;
    let subject = ["command", "path", "query", "url", "file", "action"]
        .iter()
        .find_map(|key| input[*key].as_str())
        .unwrap_or("");
    let line = format!("🔧 {} {}", call.name, subject.replace('\n', " "));
    infra::channels::truncate_chars(line.trim_end(), LINE_CHARS)
}

fn render(lines: &[String]) -> String {
    let mut text = WORKING.to_string();
    let hidden = lines.len().saturating_sub(MAX_LINES);
    if hidden > 0 {
        text.push_str(&format!("\n… {hidden} earlier"));
    }
    for line in &lines[hidden..] {
        text.push('\n');
        text.push_str(line);
    }
    text
}

impl Worker {
    /// A cancel that trips when the session is stopped after `job`'s message arrived: read now,
    /// then every [`STOP_POLL`] until the returned task is dropped.
    pub(super) async fn watch_for_stop(&self, job: &JobMessage, cancel: &Cancel) -> AbortOnDrop {
        let (store, session) = (self.backends.store.clone(), job.session_key.clone());
        let since = job.inbound.received_at.timestamp_millis();
        let cancel = cancel.clone();
        let check = move || {
            let (store, session, cancel) = (store.clone(), session.clone(), cancel.clone());
            async move {
                match store.stop_requested(&session).await {
                    Ok(Some(at)) if at > since => cancel.cancel(),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not read the session's stop flag"),
                }
            }
        };
        check().await;
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(STOP_POLL).await;
                check().await;
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(name: &str, input: serde_json::Value) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: name.into(),
            input,
        }
    }

    #[test]
    fn tool_lines_name_the_tool_and_its_subject_on_one_short_line() {
        assert_eq!(
            tool_line(&call("exec", json!({"command": "ls -la\nwc -l"}))),
            "🔧 exec ls -la wc -l"
        );
        assert_eq!(
            tool_line(&call("read", json!({"path": "notes.md"}))),
            "🔧 read notes.md"
        );
        assert_eq!(
            tool_line(&call("sessions_list", json!({}))),
            "🔧 sessions_list"
        );
        let long = tool_line(&call("exec", json!({"command": "x".repeat(500)})));
        assert_eq!(long.chars().count(), LINE_CHARS);
    }

    #[test]
    fn a_long_run_lists_its_latest_lines_and_counts_the_rest() {
        let lines: Vec<String> = (0..11).map(|i| format!("🔧 exec step {i}")).collect();

        let text = render(&lines);

        assert!(text.starts_with(WORKING));
        assert!(text.contains("… 3 earlier"));
        assert!(!text.contains("step 2\n") && text.contains("step 3") && text.ends_with("step 10"));
        assert_eq!(render(&[]), WORKING);
    }
}
