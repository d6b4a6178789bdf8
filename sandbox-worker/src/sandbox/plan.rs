//! Where and how one session's tools run: the sandbox plan, worked out once per job from the
//! agent's resolved profile and whose the session is (`clawgate sandbox explain` prints it).
//!
//! Decisions (docs/security.md):
//! - Owner sessions use the agent's `scope` and `workspaceAccess`; guest sessions (groups,
//!   channels, hooks, open DMs) use `sandbox.guest`, by default a container and a scratch
//!   workspace of their own. A guest scope never names the owner's container: its scope keys
//!   are `guest:agent:<id>` and `guest:shared`.
//! - A guest session never runs tools on the host: where the mode would (`off`), its tools are
//!   refused unless `sandbox.guest.dangerouslyAllowHostTools` is set.
//! - Host runs (mode `off`, or the main session under `non-main`) are not isolated: the plan's
//!   reason says so in those words.
//! - `sandbox.docker.env` secrets (`{ secret: "NAME" }`) go into owner sessions' environments
//!   only: a guest who can steer the model could have it print one. An owner session whose
//!   secret is not set in the worker's environment gets no tools, with the reason (never a
//!   container quietly missing a key). The plan keeps the values for redacting tool output.

use std::path::PathBuf;

use std::collections::BTreeMap;

use infra::config::{
    expand_home, AgentProfile, Config, DockerConfig, EnvValue, PruneConfig, SandboxMode,
    SandboxScope, Secret, Trust, WorkspaceAccess,
};
use infra::model::SessionKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Where and how one session's tools run.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxPlan {
    pub agent: String,
    pub session: String,
    pub trust: &'static str,
    /// Why the session is the owner's or a guest's.
    pub trust_reason: String,
    pub mode: SandboxMode,
    /// True when tools run in Docker.
    pub sandboxed: bool,
    /// Why: the mode and session rule that decided `sandboxed`.
    pub reason: String,
    /// Set when this session may not run tools at all, with why (a guest on the host).
    pub refusal: Option<String>,
    pub scope: SandboxScope,
    pub scope_key: String,
    pub workspace_access: WorkspaceAccess,
    /// The workspace on the host.
    pub workspace: PathBuf,
    /// The workspace as tools see it: `/workspace` in a container, the host path otherwise.
    pub workspace_view: String,
    pub read_only: bool,
    pub container_name: String,
    pub config_hash: String,
    pub docker: DockerConfig,
    /// The environment the session's commands get: `docker.env` with its secrets resolved
    /// (owner sessions) or left out (guests). Never printed.
    #[serde(skip)]
    pub env: BTreeMap<String, String>,
    /// The secrets in `env`, by name, for redacting tool output.
    #[serde(skip)]
    pub secrets: Vec<(String, Secret)>,
    pub prune: PruneConfig,
    /// Containers to keep ready for new sessions with this plan's shape (`sandbox.warmPool`).
    pub warm_pool: u32,
}

const HOST_WARNING: &str =
    "tools run on this machine as the worker's user: this is NO isolation (only the file tools are confined to the workspace)";

impl SandboxPlan {
    /// The plan for `session` of the agent `config` names, resolving the agent's profile and
    /// the session's trust (the CLI and tests; a worker resolves both once per job and calls
    /// [`SandboxPlan::new`]).
    pub fn for_session(config: &Config, agent: &str, session: &SessionKey) -> SandboxPlan {
        SandboxPlan::new(
            &config.agent_profile(agent),
            session,
            config.session_trust(session),
        )
    }

    pub fn new(
        profile: &AgentProfile,
        session: &SessionKey,
        (trust, trust_reason): (Trust, &str),
    ) -> SandboxPlan {
        let sandbox = &profile.sandbox;
        let guest = trust == Trust::Guest;
        let (sandboxed, mut reason) = match sandbox.mode {
            SandboxMode::Off => (false, format!("mode \"off\": {HOST_WARNING}")),
            SandboxMode::All => (true, "mode \"all\": every session is sandboxed".to_string()),
            SandboxMode::NonMain if session.is_main() => (
                false,
                format!("mode \"non-main\": {session} is the agent's main session, so {HOST_WARNING}"),
            ),
            SandboxMode::NonMain => (
                true,
                format!("mode \"non-main\": {session} is not the agent's main session, so it is sandboxed"),
            ),
        };
        let mut refusal = (guest && !sandboxed && !sandbox.guest.dangerously_allow_host_tools).then(|| {
            format!(
                "tools are off in this session: it is a guest session ({trust_reason}) and sandbox mode {:?} would run them on the host; sandbox it (mode \"all\" or \"non-main\"), or set sandbox.guest.dangerouslyAllowHostTools: true",
                sandbox.mode.as_str()
            )
        });
        let (scope, access) = if guest {
            (sandbox.guest.scope, sandbox.guest.workspace_access)
        } else {
            (sandbox.scope, sandbox.workspace_access)
        };
        if guest {
            reason.push_str("; as a guest session it uses sandbox.guest (scope and workspace of its own unless configured there)");
        }
        let scope_key = match (scope, guest) {
            (SandboxScope::Session, _) => session.to_string(),
            (SandboxScope::Agent, false) => format!("agent:{}", profile.id),
            (SandboxScope::Agent, true) => format!("guest:agent:{}", profile.id),
            (SandboxScope::Shared, false) => "shared".to_string(),
            (SandboxScope::Shared, true) => "guest:shared".to_string(),
        };
        let container_name = container_name(&sandbox.docker.container_prefix, &scope_key);
        let scratch = access == WorkspaceAccess::None && (sandboxed || guest);
        let workspace = if scratch {
            expand_home(&sandbox.workspace_root).join(slug_with_hash(&scope_key, 80))
        } else {
            profile.workspace.clone()
        };
        let workspace_view = if sandboxed {
            sandbox.docker.workdir.clone()
        } else {
            workspace.display().to_string()
        };
        let read_only = access == WorkspaceAccess::Ro && (sandboxed || guest);
        // A scratch workspace is the scope's directory under the root: the root, not that
        // directory, shapes the container, so every new session of a profile shares a hash
        // (which is what lets it take a container from the warm pool).
        let mounted_root = if scratch {
            expand_home(&sandbox.workspace_root)
        } else {
            workspace.clone()
        };
        let ResolvedEnv {
            env,
            secrets,
            missing,
        } = resolve_env(&sandbox.docker.env, guest);
        if let (None, Some(name)) = (&refusal, missing) {
            refusal = Some(format!(
                "tools are off in this session: sandbox.docker.env names the secret {name}, which is not set in the worker's environment"
            ));
        }
        let config_hash = config_hash(&sandbox.docker, &env, &mounted_root, access);
        SandboxPlan {
            agent: profile.id.clone(),
            session: session.to_string(),
            trust: trust.as_str(),
            trust_reason: trust_reason.to_string(),
            mode: sandbox.mode,
            sandboxed,
            reason,
            refusal,
            scope,
            scope_key,
            workspace_access: access,
            workspace,
            workspace_view,
            read_only,
            container_name,
            config_hash,
            docker: sandbox.docker.clone(),
            env,
            secrets,
            prune: sandbox.prune.clone(),
            warm_pool: sandbox.warm_pool,
        }
    }

    /// The plan's workspace for the host-side tools, its files owned by the sandbox user when
    /// sandboxed.
    pub fn open_workspace(&self) -> std::io::Result<crate::tools::fs::Workspace> {
        let owner = if self.sandboxed {
            numeric_owner(&self.docker.user)
        } else {
            None
        };
        crate::tools::fs::Workspace::new(
            &self.workspace,
            &self.workspace_view,
            self.read_only,
            owner,
        )
    }
}

/// A session's environment as resolved from `docker.env`.
struct ResolvedEnv {
    env: BTreeMap<String, String>,
    /// The secrets in `env`, by name.
    secrets: Vec<(String, Secret)>,
    /// The first secret an owner session needs that the worker's environment does not have.
    missing: Option<String>,
}

/// The environment a session's commands get: text values always, secrets for owners only.
fn resolve_env(configured: &BTreeMap<String, EnvValue>, guest: bool) -> ResolvedEnv {
    let (mut env, mut secrets, mut missing) = (BTreeMap::new(), Vec::new(), None);
    for (key, value) in configured {
        match value {
            EnvValue::Text(text) => {
                env.insert(key.clone(), text.clone());
            }
            EnvValue::Secret(_) if guest => {}
            EnvValue::Secret(secret) => match &secret.value {
                Some(value) => {
                    env.insert(key.clone(), value.expose().to_string());
                    secrets.push((secret.secret.clone(), value.clone()));
                }
                None => {
                    missing.get_or_insert_with(|| secret.secret.clone());
                }
            },
        }
    }
    ResolvedEnv {
        env,
        secrets,
        missing,
    }
}

/// A stable hash of everything that shapes a container; a change recreates it once idle. The
/// resolved environment enters as a digest, so a rotated secret recreates the container too.
fn config_hash(
    docker: &DockerConfig,
    env: &BTreeMap<String, String>,
    workspace: &std::path::Path,
    access: WorkspaceAccess,
) -> String {
    let env = hex::encode(Sha256::digest(
        serde_json::json!(env).to_string().as_bytes(),
    ));
    let spec = serde_json::json!({ "docker": docker, "env": env, "workspace": workspace, "access": access });
    let digest = Sha256::digest(spec.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// `<prefix><slug>-<hash8>`, at most 63 characters, valid as a Docker container name.
pub fn container_name(prefix: &str, scope_key: &str) -> String {
    let prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let prefix = if prefix.is_empty() || !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        format!("c{prefix}")
    } else {
        prefix
    };
    let budget = 63usize.saturating_sub(prefix.len()).max(10);
    let mut name = format!("{prefix}{}", slug_with_hash(scope_key, budget));
    name.truncate(63);
    name
}

/// A readable, filesystem- and Docker-safe slug of `key` plus an 8-hex hash, `max` chars at most.
fn slug_with_hash(key: &str, max: usize) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hash = hex::encode(&digest[..4]);
    let mut slug = String::new();
    for c in key.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let keep = max.saturating_sub(hash.len() + 1);
    let slug: String = slug.chars().take(keep).collect();
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        hash
    } else {
        format!("{slug}-{hash}")
    }
}

/// The uid and gid of a numeric `user` setting (`"1000:1000"`, `"1000"`), for chown on the host.
pub fn numeric_owner(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use infra::model::Channel;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    #[test]
    fn non_main_sandboxes_everything_but_the_main_session() {
        let cfg = config(r#"{ agents: { defaults: { sandbox: { mode: "non-main" } } } }"#);
        let main = SandboxPlan::for_session(&cfg, "main", &SessionKey::main("main"));
        let child = SessionKey::subagent("main", &SessionKey::main("main"));
        let spawned = SandboxPlan::for_session(&cfg, "main", &child);
        assert!(
            spawned.sandboxed,
            "a sub-agent the main session spawned is sandboxed"
        );
        assert_eq!(spawned.trust, "owner");
        let dm = SandboxPlan::for_session(
            &cfg,
            "main",
            &SessionKey::dm("main", Channel::Telegram, "1"),
        );
        assert!(!main.sandboxed && dm.sandboxed);
        assert!(main.reason.contains("main session"));
    }

    #[test]
    fn scope_decides_which_sessions_share_a_container() {
        let a = SessionKey::dm("main", Channel::Telegram, "1");
        let b = SessionKey::dm("main", Channel::Slack, "U2");
        for (scope, shared) in [("session", false), ("agent", true), ("shared", true)] {
            let cfg = config(&format!(
                r#"{{ agents: {{ defaults: {{ sandbox: {{ scope: "{scope}" }} }} }} }}"#
            ));
            let pa = SandboxPlan::for_session(&cfg, "main", &a);
            let pb = SandboxPlan::for_session(&cfg, "main", &b);
            assert_eq!(pa.container_name == pb.container_name, shared, "{scope}");
        }
        let cfg = config(r#"{ agents: { defaults: { sandbox: { scope: "agent" } } } }"#);
        let other_agent = SandboxPlan::for_session(&cfg, "work", &a);
        assert_ne!(
            SandboxPlan::for_session(&cfg, "main", &a).container_name,
            other_agent.container_name
        );
    }

    #[test]
    fn container_names_are_valid_and_bounded() {
        let long = format!(
            "agent:main:slack:channel:{}:thread:1700000000.000100",
            "C".repeat(80)
        );
        for key in [
            "shared",
            "agent:main",
            long.as_str(),
            "agent:Ω:telegram:dm:1",
        ] {
            let name = container_name("clawgate-sbx-", key);
            assert!(name.len() <= 63, "{name}");
            assert!(name.starts_with("clawgate-sbx-"));
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "{name}"
            );
        }
        assert_ne!(
            container_name("p-", &long),
            container_name("p-", &format!("{long}x"))
        );
    }

    fn plan(cfg: &Config, key: &str) -> SandboxPlan {
        let key: SessionKey = key.parse().unwrap();
        SandboxPlan::for_session(cfg, key.agent("main"), &key)
    }

    #[test]
    fn a_guest_gets_a_container_and_workspace_of_its_own_when_the_owner_shares_theirs() {
        let cfg = config(
            r#"{ agents: { defaults: { workspace: "/srv/ws", sandbox: { scope: "agent", workspaceAccess: "rw", workspaceRoot: "/srv/sbx" } } },
                 channels: { telegram: { dmPolicy: "allowlist" } } }"#,
        );

        let owner = plan(&cfg, "agent:main:telegram:dm:4242");
        let group = plan(&cfg, "agent:main:telegram:group:-100");
        let other_group = plan(&cfg, "agent:main:telegram:group:-200");
        let hook = plan(&cfg, "hook:x");

        assert_eq!(
            (owner.trust, owner.workspace.as_path()),
            ("owner", Path::new("/srv/ws"))
        );
        assert_eq!(owner.scope_key, "agent:main");
        for guest in [&group, &other_group, &hook] {
            assert_eq!(guest.trust, "guest");
            assert!(
                guest.workspace.starts_with("/srv/sbx"),
                "{:?}",
                guest.workspace
            );
            assert_ne!(guest.container_name, owner.container_name);
            assert!(guest.refusal.is_none());
        }
        assert_ne!(group.container_name, other_group.container_name);
        assert_ne!(group.workspace, other_group.workspace);
    }

    #[test]
    fn a_guest_shares_the_owners_workspace_only_when_sandbox_guest_says_so() {
        let cfg = config(
            r#"{ agents: { defaults: { workspace: "/srv/ws", sandbox: { scope: "agent",
                 guest: { scope: "agent", workspaceAccess: "ro" } } } } }"#,
        );

        let owner = plan(&cfg, "agent:main:main");
        let group = plan(&cfg, "agent:main:slack:channel:C1");

        assert_eq!(group.workspace, PathBuf::from("/srv/ws"));
        assert!(group.read_only);
        assert_eq!(group.scope_key, "guest:agent:main");
        assert_ne!(group.container_name, owner.container_name);
    }

    #[test]
    fn a_guest_never_runs_tools_on_the_host_unless_dangerously_allowed() {
        let off = config(r#"{ agents: { defaults: { sandbox: { mode: "off" } } } }"#);
        let allowed = config(
            r#"{ agents: { defaults: { sandbox: { mode: "off", guest: { dangerouslyAllowHostTools: true } } } } }"#,
        );

        let owner = plan(&off, "agent:main:main");
        let group = plan(&off, "agent:main:telegram:group:-100");
        let allowed_group = plan(&allowed, "agent:main:telegram:group:-100");

        assert!(owner.refusal.is_none());
        assert!(owner.reason.contains("NO isolation"), "{}", owner.reason);
        assert!(group
            .refusal
            .as_deref()
            .unwrap()
            .contains("dangerouslyAllowHostTools"));
        assert!(allowed_group.refusal.is_none());
        assert!(!allowed_group.sandboxed);
    }

    #[test]
    fn workspace_access_none_gets_a_scratch_dir_per_scope() {
        let cfg = config(
            r#"{ agents: { defaults: { workspace: "/srv/ws", sandbox: { workspaceAccess: "none", workspaceRoot: "/srv/sbx" } } } }"#,
        );
        let plan = SandboxPlan::for_session(&cfg, "main", &SessionKey::main("main"));
        assert!(plan.workspace.starts_with("/srv/sbx"));
        let cfg = config(
            r#"{ agents: { defaults: { workspace: "/srv/ws", sandbox: { workspaceAccess: "ro" } } } }"#,
        );
        let plan = SandboxPlan::for_session(&cfg, "main", &SessionKey::main("main"));
        assert_eq!(plan.workspace, PathBuf::from("/srv/ws"));
        assert!(plan.read_only);
        assert_eq!(plan.workspace_view, "/workspace");
    }

    #[test]
    fn an_agents_own_sandbox_section_replaces_the_defaults() {
        let cfg = config(r#"{ agents: { list: [{ id: "ops", sandbox: { mode: "off" } }] } }"#);
        let ops = SandboxPlan::for_session(&cfg, "ops", &SessionKey::main("ops"));
        let main = SandboxPlan::for_session(&cfg, "main", &SessionKey::main("main"));
        assert!(!ops.sandboxed && main.sandboxed);
    }

    #[test]
    fn the_config_hash_changes_with_the_container_spec() {
        let a = SandboxPlan::for_session(&config("{}"), "main", &SessionKey::main("main"));
        let b = SandboxPlan::for_session(
            &config(r#"{ agents: { defaults: { sandbox: { docker: { memory: "2g" } } } } }"#),
            "main",
            &SessionKey::main("main"),
        );
        assert_ne!(a.config_hash, b.config_hash);
        assert_eq!(
            a.config_hash,
            SandboxPlan::for_session(&config("{}"), "main", &SessionKey::main("main")).config_hash
        );
    }

    #[test]
    fn numeric_users_parse() {
        assert_eq!(numeric_owner("1000:1000"), Some((1000, 1000)));
        assert_eq!(numeric_owner("1000"), Some((1000, 1000)));
        assert_eq!(numeric_owner("sandbox"), None);
    }

    #[test]
    fn a_secret_reaches_owner_sessions_only_and_a_missing_one_turns_their_tools_off() {
        let text = r#"{ agents: { defaults: { sandbox: { docker: {
            env: { LANG: "C.UTF-8", GH_TOKEN: { secret: "GITHUB_TOKEN" } } } } } },
            channels: { telegram: { dmPolicy: "allowlist", allowFrom: [4242] } } }"#;
        let with = |value: Option<&str>| {
            let mut cfg = config(text);
            cfg.apply_env(|name| {
                (name == "GITHUB_TOKEN")
                    .then(|| value.map(str::to_string))
                    .flatten()
            });
            cfg
        };
        let cfg = with(Some("ghp_owner_only"));

        let owner = plan(&cfg, "agent:main:telegram:dm:4242");
        let group = plan(&cfg, "agent:main:telegram:group:-100");
        let rotated = plan(&with(Some("ghp_rotated")), "agent:main:telegram:dm:4242");
        let missing = plan(&with(None), "agent:main:telegram:dm:4242");

        assert_eq!(owner.env["GH_TOKEN"], "ghp_owner_only");
        assert_eq!(owner.secrets.len(), 1);
        assert_eq!(owner.secrets[0].0, "GITHUB_TOKEN");
        assert!(!group.env.contains_key("GH_TOKEN") && group.secrets.is_empty());
        assert_eq!(group.env["LANG"], "C.UTF-8");
        assert_ne!(
            owner.config_hash, rotated.config_hash,
            "a rotated secret recreates"
        );
        let refusal = missing.refusal.expect("no tools without the secret");
        assert!(refusal.contains("GITHUB_TOKEN"), "{refusal}");
        // What `sandbox explain` prints has the name and never the value.
        let printed = serde_json::to_string(&owner).unwrap();
        assert!(printed.contains("GITHUB_TOKEN") && !printed.contains("ghp_owner_only"));
    }
}
