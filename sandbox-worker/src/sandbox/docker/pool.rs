//! The warm pool (`sandbox.warmPool`): containers created and started ahead of need, so a new
//! session's first tool call skips create + start (~120 ms) and only pays a rename.
//!
//! Decisions:
//! - A pooled container is made from a real session's plan with its own name, the label
//!   `clawgate.pool=<config hash>` and an empty scope. Every new session of a profile has that
//!   hash (a scratch workspace's hash names the root, not the scope's directory). Claiming one
//!   renames it to the session's container name; its agent's socket stays where its label
//!   says.
//! - A scratch workspace (`workspaceAccess: none`) is a directory per scope: the pooled
//!   container mounts `<workspaceRoot>/.pool/<name>`, and claiming renames that directory to the
//!   session's, on the same file system. A session whose directory already exists (its old
//!   container was pruned) never takes a pooled one: its files must be what it mounts.
//! - Labels cannot change after creation, so a claimed container's scope is written into its
//!   activity record, where `clawgate sandbox list` finds it.
//! - Refilling runs in the background after each use of a plan (one fill per pool at a time),
//!   and at worker start for the default agent. Pooled containers are ordinary sandboxes to the
//!   cap and to prune: an idle pool past `idleHours` is pruned and refilled on the next use.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bollard::query_parameters::{ListContainersOptions, RenameContainerOptions};
use infra::config::WorkspaceAccess;

use super::{agent, ContainerRef, DockerSandboxes};
use crate::sandbox::{container_name, SandboxError, SandboxPlan};

/// The label holding the config hash a pooled container was made for.
pub const LABEL_POOL: &str = "clawgate.pool";

/// Where a pooled container's scratch workspace waits to be claimed.
fn pool_workspace(plan: &SandboxPlan, name: &str) -> Option<PathBuf> {
    let scratch = plan.workspace_access == WorkspaceAccess::None;
    scratch.then(|| {
        plan.workspace
            .parent()
            .map(|root| root.join(".pool").join(name))
    })?
}

impl DockerSandboxes {
    /// Takes a running pooled container for `plan`, renamed to the plan's container; `None`
    /// when the pool has none (or the plan cannot take one).
    pub(super) async fn claim_from_pool(&self, plan: &SandboxPlan) -> Option<ContainerRef> {
        if plan.warm_pool == 0 || plan.workspace.exists() && pool_workspace(plan, "").is_some() {
            return None;
        }
        for (name, id, agent_socket) in self.pooled(&plan.config_hash).await.ok()? {
            let moved = match pool_workspace(plan, &name) {
                Some(dir) => match std::fs::rename(&dir, &plan.workspace) {
                    Ok(()) => Some(dir),
                    Err(_) => continue, // taken by another claim meanwhile
                },
                None => None,
            };
            let renamed = self
                .docker
                .rename_container(
                    &name,
                    RenameContainerOptions {
                        name: plan.container_name.clone(),
                    },
                )
                .await;
            if let Err(e) = renamed {
                tracing::debug!(container = %name, error = %e, "pooled container not claimed");
                if let Some(dir) = moved {
                    let _ = std::fs::rename(&plan.workspace, dir);
                }
                continue;
            }
            let _ = std::fs::remove_file(self.activity_dir.join(&name));
            let _ = std::fs::write(
                self.activity_dir.join(&plan.container_name),
                &plan.scope_key,
            );
            tracing::info!(container = %plan.container_name, from = %name, "sandbox taken from the warm pool");
            return Some(ContainerRef {
                name: plan.container_name.clone(),
                id,
                user: plan.docker.user.clone(),
                created: false,
                agent_socket,
            });
        }
        None
    }

    /// The running pooled containers made for `hash`: name, id, and its agent's socket.
    async fn pooled(
        &self,
        hash: &str,
    ) -> Result<Vec<(String, String, Option<PathBuf>)>, SandboxError> {
        let filters = HashMap::from([
            ("label".to_string(), vec![format!("{LABEL_POOL}={hash}")]),
            ("status".to_string(), vec!["running".to_string()]),
        ]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.error("(pool)", &e))?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let name = c
                    .names?
                    .into_iter()
                    .next()?
                    .trim_start_matches('/')
                    .to_string();
                let socket = c.labels.as_ref().and_then(agent::socket_from_labels);
                Some((name, c.id.unwrap_or_default(), socket))
            })
            .collect())
    }

    /// Tops the pool for `plan`'s shape up to `plan.warm_pool`, in the background.
    pub fn refill_pool(self: &Arc<Self>, plan: &SandboxPlan) {
        if plan.warm_pool == 0 {
            return;
        }
        let key = plan.config_hash.clone();
        if !self.filling.lock().expect("lock").insert(key.clone()) {
            return; // a fill for this pool is under way
        }
        let (this, template) = (self.clone(), plan.clone());
        tokio::spawn(async move {
            if let Err(e) = this.fill_pool(&template).await {
                tracing::warn!(error = %e, "could not fill the sandbox warm pool");
            }
            this.filling.lock().expect("lock").remove(&key);
        });
    }

    /// Creates pooled containers for `template` until the pool holds `warm_pool`.
    pub async fn fill_pool(&self, template: &SandboxPlan) -> Result<(), SandboxError> {
        let have = self.pooled(&template.config_hash).await?.len();
        for _ in have..template.warm_pool as usize {
            let id = ulid::Ulid::new().to_string().to_lowercase();
            let name = container_name(&template.docker.container_prefix, &format!("pool:{id}"));
            let mut pooled = template.clone();
            if let Some(dir) = pool_workspace(template, &name) {
                pooled.workspace = dir;
            }
            pooled.container_name = name;
            pooled.scope_key = String::new();
            self.create(&pooled, Some(&template.config_hash)).await?;
        }
        Ok(())
    }
}
