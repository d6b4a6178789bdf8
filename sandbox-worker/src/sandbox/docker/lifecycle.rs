//! The containers' lifecycle after creation: listing them (`clawgate sandbox list`), pruning
//! the idle and the old (a loop in the worker, `clawgate sandbox prune`), evicting the least
//! recently used past the per-host cap, removing one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use infra::config::PruneConfig;

use super::{
    status_code, DockerSandboxes, LABEL_CONFIG_HASH, LABEL_CREATED, LABEL_SANDBOX, LABEL_SCOPE,
};
use crate::sandbox::{SandboxError, SandboxPlan};

/// What `clawgate sandbox list` shows.
#[derive(Debug, Clone)]
pub struct SandboxInfo {
    pub name: String,
    pub scope_key: String,
    pub image: String,
    pub state: String,
    pub created: SystemTime,
    pub last_used: SystemTime,
    pub config_hash: String,
}

impl DockerSandboxes {
    /// Every clawgate sandbox container on this daemon whose name starts with `prefix` (all of
    /// them with `None`).
    pub async fn list(&self, prefix: Option<&str>) -> Result<Vec<SandboxInfo>, SandboxError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_SANDBOX}=1")])]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.error("(list)", &e))?;
        let mut out = Vec::new();
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            let created = labels
                .get(LABEL_CREATED)
                .and_then(|s| s.parse::<u64>().ok())
                .or(c.created.map(|s| s as u64))
                .map(|s| UNIX_EPOCH + Duration::from_secs(s))
                .unwrap_or(UNIX_EPOCH);
            if prefix.is_some_and(|p| !name.starts_with(p)) {
                continue;
            }
            let last_used = std::fs::metadata(self.activity_dir.join(&name))
                .and_then(|m| m.modified())
                .unwrap_or(created);
            // A container claimed from the warm pool has its scope in its activity record.
            let scope_key = match labels.get(LABEL_SCOPE).filter(|s| !s.is_empty()) {
                Some(scope) => scope.clone(),
                None => std::fs::read_to_string(self.activity_dir.join(&name))
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "(warm pool)".to_string()),
            };
            out.push(SandboxInfo {
                scope_key,
                config_hash: labels.get(LABEL_CONFIG_HASH).cloned().unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                name,
                created,
                last_used,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes sandbox containers (named with `prefix`, or all) idle longer than `idle` or
    /// older than `max_age` (or every one with `all`), except those running an exec. Returns
    /// the names removed.
    pub async fn prune(
        &self,
        prefix: Option<&str>,
        idle: Duration,
        max_age: Duration,
        now: SystemTime,
        all: bool,
    ) -> Result<Vec<String>, SandboxError> {
        let mut removed = Vec::new();
        for info in self.list(prefix).await? {
            if self.running_execs(&info.name) > 0 {
                continue;
            }
            let idle_for = now.duration_since(info.last_used).unwrap_or_default();
            let age = now.duration_since(info.created).unwrap_or_default();
            if all || idle_for > idle || age > max_age {
                self.remove(&info.name).await?;
                removed.push(info.name);
            }
        }
        Ok(removed)
    }

    /// Keeps at most `prune.maxContainers` of the plan's prefix on this daemon: the least
    /// recently used idle containers go, never the plan's own or one running an exec. An
    /// evicted session loses only its container; its workspace stays, and its next call gets
    /// a fresh container over it. Returns the names removed.
    pub async fn evict_over_cap(&self, plan: &SandboxPlan) -> Result<Vec<String>, SandboxError> {
        let cap = plan.prune.max_containers as usize;
        if cap == 0 {
            return Ok(vec![]);
        }
        let mut live = self.list(Some(&plan.docker.container_prefix)).await?;
        let mut excess = live.len().saturating_sub(cap);
        live.sort_by_key(|info| info.last_used);
        let mut removed = Vec::new();
        for info in live {
            if excess == 0 {
                break;
            }
            if info.name == plan.container_name || self.running_execs(&info.name) > 0 {
                continue;
            }
            self.remove(&info.name).await?;
            removed.push(info.name);
            excess -= 1;
        }
        Ok(removed)
    }

    /// Prunes this prefix's containers by `limits` every `every`, for as long as the task runs.
    pub fn spawn_prune_loop(
        self: &Arc<Self>,
        prefix: String,
        limits: &PruneConfig,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let (idle, max_age) = prune_limits(limits);
        let sandboxes = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match sandboxes
                    .prune(Some(&prefix), idle, max_age, SystemTime::now(), false)
                    .await
                {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(?removed, "pruned idle or old sandboxes")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "sandbox prune failed; will retry"),
                }
            }
        })
    }

    /// Removes one container (running or not), its activity record and its agent's socket
    /// directory.
    pub async fn remove(&self, name: &str) -> Result<(), SandboxError> {
        let socket = match self.docker.inspect_container(name, None).await {
            Ok(found) => found
                .config
                .and_then(|c| c.labels)
                .and_then(|labels| super::agent::socket_from_labels(&labels)),
            Err(_) => None,
        };
        match self
            .docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(self.error(name, &e)),
        }
        let _ = std::fs::remove_file(self.activity_dir.join(name));
        // Only a directory this worker's kind made: `<…>/.agent/<name>`, never what a label
        // might name elsewhere.
        if let Some(dir) = socket.as_deref().and_then(std::path::Path::parent) {
            if dir.parent().and_then(|p| p.file_name()) == Some(std::ffi::OsStr::new(".agent")) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(())
    }
}

/// `prune.idleHours` and `prune.maxAgeDays` as durations.
pub fn prune_limits(prune: &PruneConfig) -> (Duration, Duration) {
    // Validation keeps both finite and bounded; a value that is not still never panics here.
    let hours = |h: f64| Duration::try_from_secs_f64(h * 3600.0).unwrap_or(Duration::MAX);
    (hours(prune.idle_hours), hours(prune.max_age_days * 24.0))
}
