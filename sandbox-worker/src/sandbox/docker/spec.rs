//! The container spec: every option of the sandbox config turned into Docker's create body,
//! with the hardening that is always on, and the workspace made ready for the container user.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use infra::config::{parse_bytes, Ulimit};
use sandbox_agent::protocol;

use super::{LABEL_CONFIG_HASH, LABEL_CREATED, LABEL_SANDBOX, LABEL_SCOPE};
use crate::sandbox::{numeric_owner, SandboxError, SandboxPlan};

/// Creates the workspace and hands it to the container user, so a non-root user can write.
pub(super) fn prepare_workspace(path: &Path, user: &str) -> Result<(), SandboxError> {
    let fail = |e: std::io::Error| SandboxError::Workspace {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(path).map_err(fail)?;
    if let Some((uid, gid)) = numeric_owner(user) {
        let meta = std::fs::metadata(path).map_err(fail)?;
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(fail)?;
        }
    }
    Ok(())
}

/// The in-sandbox agent of a container: its static binary and the host directory for its socket.
#[derive(Debug, Clone)]
pub struct AgentMount {
    pub binary: PathBuf,
    pub run_dir: PathBuf,
}

/// The container spec: every option of the config, with the hardening defaults always on. With
/// `agent`, the agent binary (read-only) and its socket directory are mounted and the agent is
/// the container's long-lived process in place of `sleep`.
/// A container for the warm pool (`pool`: the config hash it waits for) gets that label too.
/// The `sandbox.docker.network` value of the egress mode.
pub const EGRESS_NETWORK: &str = "egress";

/// The proxy variables of an `egress` container (both spellings: tools read either), and the
/// variable that starts the agent's relay.
fn egress_env() -> Vec<String> {
    let proxy = format!("http://{}", crate::web::egress::RELAY_ADDR);
    let mut env: Vec<String> = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .iter()
        .map(|k| format!("{k}={proxy}"))
        .collect();
    env.push("NO_PROXY=localhost,127.0.0.1".into());
    env.push("no_proxy=localhost,127.0.0.1".into());
    env.push(format!(
        "{}={}",
        sandbox_agent::relay::RELAY_VAR,
        crate::web::egress::RELAY_ADDR
    ));
    env
}

pub fn container_body(
    plan: &SandboxPlan,
    agent: Option<&AgentMount>,
    pool: Option<&str>,
) -> ContainerCreateBody {
    let d = &plan.docker;
    let mut binds = vec![format!(
        "{}:{}{}",
        plan.workspace.display(),
        d.workdir,
        if plan.read_only { ":ro" } else { "" }
    )];
    binds.extend(d.binds.iter().cloned());
    let mut cmd = vec!["sleep".to_string(), "2147483647".to_string()];
    if let Some(agent) = agent {
        binds.push(format!(
            "{}:{}:ro",
            agent.binary.display(),
            protocol::BINARY_IN_CONTAINER
        ));
        binds.push(format!(
            "{}:{}",
            agent.run_dir.display(),
            protocol::RUN_DIR_IN_CONTAINER
        ));
        cmd = vec![protocol::BINARY_IN_CONTAINER.to_string()];
    }
    let mut security_opt = vec!["no-new-privileges".to_string()];
    if let Some(profile) = &d.seccomp_profile {
        security_opt.push(format!("seccomp={profile}"));
    }
    if let Some(profile) = &d.apparmor_profile {
        security_opt.push(format!("apparmor={profile}"));
    }
    let tmpfs: HashMap<String, String> = d
        .tmpfs
        .iter()
        .map(|spec| match spec.split_once(':') {
            Some((path, opts)) => (path.to_string(), opts.to_string()),
            // An explicit mode: a directory of that name in the image would set it otherwise.
            None => (spec.clone(), "rw,nosuid,nodev,mode=1777".to_string()),
        })
        .collect();
    let ulimits = d
        .ulimits
        .iter()
        .map(|(name, limit)| {
            let (soft, hard) = match limit {
                Ulimit::Both(n) => (*n, *n),
                Ulimit::Pair { soft, hard } => (*soft, *hard),
            };
            ResourcesUlimits {
                name: Some(name.clone()),
                soft: Some(soft),
                hard: Some(hard),
            }
        })
        .collect();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut labels = HashMap::from([
        (LABEL_SANDBOX.to_string(), "1".to_string()),
        (LABEL_SCOPE.to_string(), plan.scope_key.clone()),
        (LABEL_CREATED.to_string(), created.to_string()),
        (LABEL_CONFIG_HASH.to_string(), plan.config_hash.clone()),
    ]);
    if let Some(agent) = agent {
        labels.insert(
            super::agent::LABEL_AGENT.to_string(),
            agent.run_dir.display().to_string(),
        );
    }
    if let Some(hash) = pool {
        labels.insert(super::LABEL_POOL.to_string(), hash.to_string());
    }
    // `egress`: no network at all; the agent relays 127.0.0.1:3128 to the worker's proxy
    // (`crate::web::egress`), which the proxy variables point every HTTP client at.
    let egress = d.network == EGRESS_NETWORK;
    let network = if egress { "none" } else { d.network.as_str() };
    let host_config = HostConfig {
        binds: Some(binds),
        network_mode: Some(network.to_string()),
        cap_drop: Some(d.cap_drop.clone()),
        security_opt: Some(security_opt),
        readonly_rootfs: Some(d.read_only_root),
        tmpfs: Some(tmpfs),
        pids_limit: Some(d.pids_limit),
        memory: parse_bytes(&d.memory),
        memory_swap: parse_bytes(&d.memory_swap),
        nano_cpus: Some((d.cpus * 1e9) as i64),
        ulimits: Some(ulimits),
        dns: (!d.dns.is_empty()).then(|| d.dns.clone()),
        extra_hosts: (!d.extra_hosts.is_empty()).then(|| d.extra_hosts.clone()),
        init: Some(true),
        privileged: Some(d.privileged && d.dangerously_allow_privileged),
        auto_remove: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(d.image.clone()),
        // Only the configured environment (its secrets resolved for owner sessions): nothing
        // from the worker's own leaks in.
        env: Some(
            plan.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .chain(egress.then(egress_env).into_iter().flatten())
                .collect(),
        ),
        user: Some(d.user.clone()),
        working_dir: Some(d.workdir.clone()),
        cmd: Some(cmd),
        labels: Some(labels),
        network_disabled: Some(network == "none"),
        host_config: Some(host_config),
        ..Default::default()
    }
}
