//! Receiving jobs and running them: bounded concurrency, one job per session at a time, in the
//! order the session's messages were sent, and the drain on shutdown.
//!
//! Decisions:
//! - One receive may return several messages of one FIFO group (a session), as SQS FIFO does.
//!   They are held in the worker, in order, in the group's lane and run one after another;
//!   while they wait, their visibility is extended like a running job's. Releasing them
//!   instead would keep the order too, but every release costs a receive: under a burst the
//!   last messages would reach `maxReceiveCount` and be dead-lettered unread.
//! - A lane stops at the first job left unfinished (it will come back): its waiting messages
//!   are released at once, and the queue hands the group out again in send order.
//! - Concurrency counts running jobs. Waiting messages are few (the queue hands out no message
//!   of a group while one of it is in flight, so they come from one receive), and the worker
//!   stops receiving while a batch's worth wait, so it never hoards messages.
//! - On shutdown the worker stops receiving, releases waiting messages at once, gives running
//!   jobs the drain deadline, then stops them and releases both the lease and the message, so
//!   another worker resumes them from the last checkpoint.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra::queue::{JobDelivery, JobQueueExt, MAX_RECEIVE_BATCH};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{work_id, AbortOnDrop, Worker};
use crate::phase;

/// A received message waiting for its session's running job, kept invisible meanwhile.
struct Waiting {
    delivery: JobDelivery,
    _keep_invisible: AbortOnDrop,
}

/// Per FIFO group with a job running here: the messages waiting behind it, in order.
type Lanes = Arc<Mutex<HashMap<String, VecDeque<Waiting>>>>;

/// A job being worked on, for release on shutdown.
struct Running {
    job_id: String,
    receipt: String,
}

type RunningJobs = Arc<Mutex<HashMap<String, Running>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    /// Serves until `shutdown` turns true, then drains.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let settings = &self.settings;
        if let Some(path) = &settings.ready_file {
            let _ = std::fs::write(path, format!("{}\n", settings.worker_id));
        }
        tracing::info!(worker = %settings.worker_id, queue = %self.backends.queue.describe(), "worker started");
        // New sessions of the default agent find a warm container (`sandbox.warmPool`): the plan
        // of a new owner DM is the shape they share.
        let agent = self.config.default_agent();
        let new_session =
            infra::model::SessionKey::dm(agent, infra::model::Channel::Telegram, "warm-pool");
        let plan = crate::sandbox::SandboxPlan::new(
            &self.config.agent_profile(agent),
            &new_session,
            (
                infra::config::Trust::Owner,
                "the warm pool is for the owner's new sessions",
            ),
        );
        let sandbox = self.sandbox.clone();
        tokio::spawn(async move { sandbox.prewarm(&plan).await });
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let lanes: Lanes = Arc::default();
        let running: RunningJobs = Arc::default();
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            if *shutdown.borrow() {
                break;
            }
            let free = slots.available_permits();
            let waiting: usize = lock(&lanes).values().map(VecDeque::len).sum();
            if free == 0 || waiting >= MAX_RECEIVE_BATCH {
                tokio::select! {
                    _ = tasks.join_next() => continue,
                    _ = shutdown.changed() => break,
                }
            }
            let received = tokio::select! {
                r = self.backends.queue
                    .receive_jobs(free.min(MAX_RECEIVE_BATCH), settings.receive_wait)
                    .instrument(phase::span("queue")) => r,
                _ = shutdown.changed() => break,
            };
            let jobs = match received {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, retryable = e.is_retryable(), "receive failed; retrying shortly");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for delivery in jobs {
                let group = delivery.delivery.group.clone();
                {
                    let mut lanes = lock(&lanes);
                    if let Some(queue) = lanes.get_mut(&group) {
                        tracing::info!(job = %delivery.job.job_id, session = %delivery.job.session_key, "waiting for the session's running job");
                        let keep = self.keep_invisible(&delivery.delivery.receipt);
                        queue.push_back(Waiting {
                            delivery,
                            _keep_invisible: keep,
                        });
                        continue;
                    }
                    lanes.insert(group.clone(), VecDeque::new());
                }
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let worker = self.clone();
                let (lanes, running) = (lanes.clone(), running.clone());
                tasks.spawn(async move {
                    worker.lane(group, delivery, permit, lanes, running).await;
                });
            }
        }
        self.drain(tasks, lanes, running).await;
    }

    /// Runs `first`, then every message that waits behind it in its group, one at a time.
    async fn lane(
        self: Arc<Self>,
        group: String,
        first: JobDelivery,
        _permit: OwnedSemaphorePermit,
        lanes: Lanes,
        running: RunningJobs,
    ) {
        let mut next = Some(first);
        while let Some(delivery) = next.take() {
            let key = delivery.delivery.message_id.clone();
            lock(&running).insert(
                key.clone(),
                Running {
                    job_id: work_id(&delivery.job).to_string(),
                    receipt: delivery.delivery.receipt.clone(),
                },
            );
            let finished = self.job_task(delivery).await;
            lock(&running).remove(&key);
            let abandoned = {
                let mut lanes = lock(&lanes);
                if finished {
                    next = lanes
                        .get_mut(&group)
                        .and_then(VecDeque::pop_front)
                        .map(|w| w.delivery);
                }
                match next {
                    Some(_) => VecDeque::new(),
                    None => lanes.remove(&group).unwrap_or_default(),
                }
            };
            self.release_waiting(abandoned).await;
        }
    }

    /// Extends a waiting message's visibility until dropped.
    fn keep_invisible(&self, receipt: &str) -> AbortOnDrop {
        let (queue, receipt) = (self.backends.queue.clone(), receipt.to_string());
        let (visibility, every) = (self.backends.visibility, self.settings.heartbeat);
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = queue.extend(&receipt, visibility).await {
                    tracing::warn!(error = %e, "could not keep a waiting message invisible");
                }
            }
        }))
    }

    /// Makes waiting messages visible again at once, in order: the queue hands them out again
    /// after the group's running message is done.
    async fn release_waiting(&self, waiting: VecDeque<Waiting>) {
        for w in waiting {
            let _ = self
                .backends
                .queue
                .release(&w.delivery.delivery.receipt)
                .await;
            tracing::info!(job = %w.delivery.job.job_id, "released a waiting job");
        }
    }

    async fn drain(&self, mut tasks: JoinSet<()>, lanes: Lanes, running: RunningJobs) {
        if let Some(path) = &self.settings.ready_file {
            let _ = std::fs::remove_file(path);
        }
        let waiting: Vec<VecDeque<Waiting>> =
            lock(&lanes).values_mut().map(std::mem::take).collect();
        for lane in waiting {
            self.release_waiting(lane).await;
        }
        tracing::info!(
            in_flight = tasks.len(),
            deadline_s = self.settings.drain_deadline.as_secs_f64(),
            "draining"
        );
        let deadline = tokio::time::sleep(self.settings.drain_deadline);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => {
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let left: Vec<Running> = lock(&running).drain().map(|(_, r)| r).collect();
        for job in left {
            // Every step is checkpointed, so the next worker resumes where this one stopped.
            let _ = self
                .backends
                .store
                .release_job(&job.job_id, &self.settings.worker_id)
                .await;
            let _ = self.backends.queue.release(&job.receipt).await;
            tracing::info!(job = %job.job_id, "released an unfinished job for another worker");
        }
        tracing::info!("drained");
    }
}
