//! `clawgate cron list|add|rm|run`: the scheduled jobs in the state store, as the scheduler
//! (`infra::cron`) runs them. Each job's latest run shows how late it was, how many missed
//! slots it stood for, and how it ended (read from its job record).

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;
use infra::config::Config;
use infra::cron::JobSpec;
use infra::model::{CronDelivery, CronJob, CronSession};
use infra::setup::Backends;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum CronAction {
    /// Every job: schedule, next run, and its latest run.
    List {
        /// As a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Schedule a job: exactly one of --at, --every, --cron.
    Add {
        /// What the agent is told at each run.
        #[arg(long)]
        message: String,
        /// Once: an RFC 3339 instant, or HH:MM (today or tomorrow in --tz).
        #[arg(long, group = "when")]
        at: Option<String>,
        /// Repeatedly, from now: 20m, 1h 30m, 1d.
        #[arg(long, group = "when")]
        every: Option<String>,
        /// A 5-field cron expression, e.g. "0 8 * * 1-5", in --tz.
        #[arg(long, group = "when")]
        cron: Option<String>,
        /// IANA time zone for --at HH:MM and --cron (default UTC).
        #[arg(long)]
        tz: Option<String>,
        /// The job's id (default: made up).
        #[arg(long)]
        id: Option<String>,
        /// The agent (default: the default agent).
        #[arg(long)]
        agent: Option<String>,
        /// Run in the agent's main session instead of a session of the job's own.
        #[arg(long)]
        main_session: bool,
        /// none, last (the chat you wrote from last; the default), telegram:<chat>[:topic:<n>],
        /// slack:<channel>, webchat:<conversation>.
        #[arg(long, default_value = "last")]
        deliver: String,
    },
    /// Delete a job.
    Rm {
        /// The job's id.
        id: String,
    },
    /// Queue a run of a job now; its schedule is unchanged.
    Run {
        /// The job's id.
        id: String,
    },
}

/// One job as JSON, with the outcome of its latest run from the job record.
async fn describe(backends: &Backends, job: &CronJob) -> Value {
    let last = match &job.last_run {
        Some(run) => {
            let record = match &run.work_id {
                Some(work) => backends.store.get_job(work).await.ok().flatten(),
                None => None,
            };
            json!({
                "slot": run.slot,
                "queuedAt": run.queued_at,
                "lateSeconds": run.late_secs(),
                "slots": run.slots,
                "skipped": run.skipped,
                "status": record.as_ref().map(|r| r.status.as_str()),
                "seconds": record.as_ref().map(|r| (r.updated_ms - r.created_ms) as f64 / 1000.0),
                "error": record.as_ref().and_then(|r| r.detail.clone()),
            })
        }
        None => Value::Null,
    };
    json!({
        "id": job.id,
        "agent": job.agent,
        "schedule": job.schedule.describe(),
        "nextRun": job.next_run,
        "session": job.session_key().to_string(),
        "enabled": job.enabled,
        "message": job.message,
        "lastRun": last,
    })
}

/// Every job described (`status` shows them too).
pub async fn describe_all(backends: &Backends) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for job in backends.store.list_cron().await? {
        out.push(describe(backends, &job).await);
    }
    Ok(out)
}

pub async fn run(
    config: Config,
    state_dir: PathBuf,
    action: CronAction,
) -> anyhow::Result<ExitCode> {
    let backends = infra::setup::open_backends(&config, &state_dir).await?;
    let store = backends.store.as_ref();
    match action {
        CronAction::List { json } => {
            let jobs = describe_all(&backends).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else if jobs.is_empty() {
                eprintln!("no scheduled jobs; `clawgate cron add --help` makes one");
            }
            for j in jobs.iter().filter(|_| !json) {
                let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
                println!(
                    "{}  {}  next {}  {}",
                    text(&j["id"]),
                    text(&j["schedule"]),
                    text(&j["nextRun"]),
                    text(&j["session"])
                );
                let last = &j["lastRun"];
                if !last.is_null() {
                    println!(
                        "  last: slot {} (late {} s, {} slot(s)) {}",
                        text(&last["slot"]),
                        last["lateSeconds"],
                        last["slots"],
                        last["skipped"].as_str().map_or_else(
                            || format!(
                                "{}{}",
                                text(&last["status"]),
                                last["error"]
                                    .as_str()
                                    .map(|e| format!(": {e}"))
                                    .unwrap_or_default()
                            ),
                            str::to_string
                        )
                    );
                }
            }
        }
        CronAction::Add {
            message,
            at,
            every,
            cron,
            tz,
            id,
            agent,
            main_session,
            deliver,
        } => {
            let agent = agent.unwrap_or_else(|| config.default_agent().to_string());
            if !config.agent_ids().contains(agent.as_str()) {
                anyhow::bail!("unknown agent {agent:?}");
            }
            let spec = JobSpec {
                id,
                at,
                every,
                cron,
                tz,
                message,
                session: Some(if main_session {
                    CronSession::Main
                } else {
                    CronSession::Isolated
                }),
                deliver: Some(deliver),
            };
            let job = spec
                .build(&agent, CronDelivery::Last, Utc::now())
                .map_err(anyhow::Error::msg)?;
            if store.get_cron(&job.id).await?.is_some() {
                anyhow::bail!(
                    "a job {:?} exists; `clawgate cron rm {}` first",
                    job.id,
                    job.id
                );
            }
            store.put_cron(&job).await?;
            println!(
                "scheduled {} ({}), next run {}",
                job.id,
                job.schedule.describe(),
                job.next_run.map(|t| t.to_rfc3339()).unwrap_or_default()
            );
        }
        CronAction::Rm { id } => {
            if !store.remove_cron(&id).await? {
                eprintln!("no job {id:?}");
                return Ok(ExitCode::FAILURE);
            }
            println!("removed {id}");
        }
        CronAction::Run { id } => {
            let Some(job) = store.get_cron(&id).await? else {
                eprintln!("no job {id:?}");
                return Ok(ExitCode::FAILURE);
            };
            let work =
                infra::cron::run_now(store, backends.queue.as_ref(), &job, Utc::now()).await?;
            println!("queued {work}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
