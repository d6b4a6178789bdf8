//! Checks on values the schema alone cannot make: formats, ranges, keys that need each other,
//! and the sandbox settings that break isolation unless a `dangerously…` key says so.
//!
//! Every number a user can type is bounded here (a JSON5 file may say `Infinity`), so nothing
//! downstream converts an unbounded float into a duration or a size.

use super::ModelSetting;
use std::collections::BTreeSet;

use super::channels::{is_telegram_secret_token, GroupEntry, ANY_GROUP};
use super::{
    expand_home, Config, ConfigIssue, DockerConfig, QueueBackend, SandboxConfig, StateBackend,
    TelegramConfig, GATEWAY_TOKEN_MIN_CHARS,
};

/// The longest prune horizon accepted: ten years, in hours and in days.
const MAX_IDLE_HOURS: f64 = 87_600.0;
const MAX_AGE_DAYS: f64 = 3_650.0;
/// The largest rate limit accepted (per minute or per hour).
const MAX_RATE: u32 = 1_000_000;
/// The deepest chain of `sessions_send` hops accepted.
const MAX_SEND_DEPTH: u32 = 10;

impl Config {
    /// Checks values the schema alone cannot: formats, ranges, and keys that need each other.
    pub fn validate(&self) -> Result<(), Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut bad = |path: &str, message: String| {
            issues.push(ConfigIssue {
                path: path.to_string(),
                message,
            })
        };
        if let Some(model) = &self.agents.defaults.model {
            check_models(model, "agents.defaults.model", &mut bad);
        }
        check_sandbox(
            &self.agents.defaults.sandbox,
            "agents.defaults.sandbox",
            &mut bad,
        );
        check_workspace(
            &self.agents.defaults.workspace,
            &self.agents.defaults.sandbox.docker,
            "agents.defaults.workspace",
            &mut bad,
        );
        if !(100..=1_000_000).contains(&self.agents.defaults.bootstrap_max_chars) {
            bad(
                "agents.defaults.bootstrapMaxChars",
                format!(
                    "{} is out of range: use 100 to 1000000 characters",
                    self.agents.defaults.bootstrap_max_chars
                ),
            );
        }
        let d = &self.agents.defaults;
        if d.context_tokens < 1_000 || d.compaction.reserve_tokens_floor >= d.context_tokens {
            bad(
                "agents.defaults.compaction.reserveTokensFloor",
                format!(
                    "contextTokens ({}) must be at least 1000 and above reserveTokensFloor ({})",
                    d.context_tokens, d.compaction.reserve_tokens_floor
                ),
            );
        }
        let beat = &self.agents.defaults.heartbeat;
        match beat.interval() {
            Err(e) => bad("agents.defaults.heartbeat.every", e),
            Ok(Some(every)) if every < crate::model::MIN_INTERVAL => bad(
                "agents.defaults.heartbeat.every",
                "must be at least 1m (or 0m to turn the heartbeat off)".into(),
            ),
            _ => {}
        }
        if let Err(e) = crate::cron::parse_delivery(&beat.target) {
            bad("agents.defaults.heartbeat.target", e);
        }
        if let Some(Err(e)) = beat.active_hours.as_ref().map(|h| h.check()) {
            bad("agents.defaults.heartbeat.activeHours", e.to_string());
        }
        if self.cron.catch_up_minutes > 7 * 24 * 60 {
            bad(
                "cron.catchUpMinutes",
                "must be at most 10080 (a week)".into(),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, agent) in self.agents.list.iter().enumerate() {
            let at = format!("agents.list[{i}]");
            if agent.id.is_empty()
                || !agent
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bad(
                    &format!("{at}.id"),
                    format!(
                        "{:?} is not an agent id: use 1+ of A-Z a-z 0-9 - _",
                        agent.id
                    ),
                );
            }
            if !seen.insert(agent.id.clone()) {
                bad(
                    &format!("{at}.id"),
                    format!("duplicate agent id {:?}", agent.id),
                );
            }
            if let Some(model) = &agent.model {
                check_models(model, &format!("{at}.model"), &mut bad);
            }
            if let Some(sandbox) = &agent.sandbox {
                check_sandbox(sandbox, &format!("{at}.sandbox"), &mut bad);
            }
            if let Some(workspace) = &agent.workspace {
                let docker = &self.agent_profile(&agent.id).sandbox.docker;
                check_workspace(workspace, docker, &format!("{at}.workspace"), &mut bad);
            }
        }
        if let Some(tg) = &self.channels.telegram {
            self.check_telegram(tg, &mut bad);
        }
        if let Some(slack) = &self.channels.slack {
            check_groups(&slack.channels, "channels.slack.channels", &mut bad);
        }
        // The newer channels check their own keys, beside their schema.
        let channels = &self.channels;
        if let Some(wa) = &channels.whatsapp {
            wa.check(&mut bad);
        }
        if let Some(msteams) = &channels.msteams {
            msteams.check(&mut bad);
        }
        if let Some(matrix) = &channels.matrix {
            matrix.check(&mut bad);
        }
        if let Some(discord) = &channels.discord {
            discord.check(&mut bad);
        }
        if let Some(bb) = &channels.bluebubbles {
            bb.check(&mut bad);
        }
        super::media::check_media(self, &mut bad);
        self.check_bindings(&mut bad);
        if let Some(token) = &self.gateway.token {
            if token.expose().chars().count() < GATEWAY_TOKEN_MIN_CHARS {
                bad(
                    "gateway.token",
                    format!("must be at least {GATEWAY_TOKEN_MIN_CHARS} characters (it guards WebChat and /hooks/agent, which may be public); `openssl rand -hex 32` makes one"),
                );
            }
        }
        let limits = &self.limits;
        for (key, value, max) in [
            (
                "senderMessagesPerMinute",
                limits.sender_messages_per_minute,
                MAX_RATE,
            ),
            (
                "sessionMessagesPerMinute",
                limits.session_messages_per_minute,
                MAX_RATE,
            ),
            (
                "sessionToolCallsPerHour",
                limits.session_tool_calls_per_hour,
                MAX_RATE,
            ),
            (
                "sessionsSendPerMinute",
                limits.sessions_send_per_minute,
                MAX_RATE,
            ),
            (
                "sessionsSendMaxDepth",
                limits.sessions_send_max_depth,
                MAX_SEND_DEPTH,
            ),
            ("webCallsPerMinute", limits.web_calls_per_minute, MAX_RATE),
        ] {
            if value > max {
                bad(&format!("limits.{key}"), format!("must be 0 to {max}"));
            }
        }
        for (name, server) in &self.mcp.servers {
            let at = format!("mcp.servers.{name}");
            let valid_name = !name.is_empty()
                && name.len() <= super::MAX_MCP_SERVER_NAME
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                bad(
                    &at,
                    format!(
                        "the name must be 1 to {} letters, digits, - and _ (tools are offered as mcp__<name>__<tool>)",
                        super::MAX_MCP_SERVER_NAME
                    ),
                );
            }
            match (&server.url, &server.command) {
                (Some(_), Some(_)) => bad(
                    &at,
                    "give either `url` (streamable HTTP) or `command` (stdio, in the sandbox), not both".into(),
                ),
                (Some(url), None) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                    bad(&format!("{at}.url"), "must be an http(s) URL".into())
                }
                (None, Some(command)) if command.trim().is_empty() => {
                    bad(&format!("{at}.command"), "is empty".into())
                }
                (None, None) => bad(&at, "needs a `url` or a `command`".into()),
                _ => {}
            }
        }
        let search = &self.tools.web.search;
        if !(1..=super::MAX_SEARCH_RESULTS).contains(&search.max_results) {
            bad(
                "tools.web.search.maxResults",
                format!("must be 1 to {}", super::MAX_SEARCH_RESULTS),
            );
        }
        for (key, url) in [
            ("brave.baseUrl", &search.brave.base_url),
            ("tavily.baseUrl", &search.tavily.base_url),
            ("searxng.baseUrl", &search.searxng.base_url),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    bad(
                        &format!("tools.web.search.{key}"),
                        "must be an http(s) URL".to_string(),
                    );
                }
            }
        }
        if self.state.backend == StateBackend::Dynamodb
            && self.state.table.as_deref().unwrap_or("").is_empty()
        {
            bad(
                "state.table",
                "required when state.backend is \"dynamodb\"".into(),
            );
        }
        if self.queue.backend == QueueBackend::Sqs {
            match self.queue.url.as_deref() {
                None | Some("") => {
                    bad("queue.url", "required when queue.backend is \"sqs\"".into())
                }
                Some(url) if !url.ends_with(".fifo") => bad(
                    "queue.url",
                    format!("{url:?} is not a FIFO queue: the URL must end in .fifo"),
                ),
                _ => {}
            }
        }
        if !(1..=43_200).contains(&self.queue.visibility_timeout_seconds) {
            bad(
                "queue.visibilityTimeoutSeconds",
                "must be 1 to 43200 (SQS's range)".into(),
            );
        }
        if !(1..=1000).contains(&self.queue.max_receive_count) {
            bad(
                "queue.maxReceiveCount",
                "must be 1 to 1000 (SQS's range)".into(),
            );
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues)
        }
    }

    fn check_telegram(&self, tg: &TelegramConfig, bad: &mut impl FnMut(&str, String)) {
        for account in tg.accounts() {
            let at = if account.name == TelegramConfig::DEFAULT_ACCOUNT {
                "channels.telegram".to_string()
            } else {
                format!("channels.telegram.accounts.{}", account.name)
            };
            if account.name != TelegramConfig::DEFAULT_ACCOUNT && !is_url_segment(account.name) {
                bad(
                    &at,
                    "an account name must be 1-64 characters of a-z 0-9 _ - (it is a URL path segment)".into(),
                );
            }
            if let Some(secret) = account.webhook_secret {
                if !is_telegram_secret_token(secret.expose()) {
                    // The value is a secret: say what is wrong, never what it is.
                    bad(
                        &format!("{at}.webhookSecret"),
                        "must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule)".into(),
                    );
                }
            }
            if let Some(agent) = account.agent {
                if !self.agents.list.is_empty() && !self.agents.list.iter().any(|a| a.id == agent) {
                    bad(
                        &format!("{at}.agent"),
                        format!("no agent {agent:?} in agents.list"),
                    );
                }
            }
        }
        check_groups(&tg.groups, "channels.telegram.groups", bad);
    }
}

/// Group ids are the channel's own (a Telegram chat id, a Slack channel id) or `"*"`.
fn check_groups(
    groups: &std::collections::BTreeMap<String, GroupEntry>,
    path: &str,
    bad: &mut impl FnMut(&str, String),
) {
    for id in groups.keys() {
        let plausible = id == ANY_GROUP
            || (!id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        if !plausible {
            bad(
                &format!("{path}.{id}"),
                "a group key is the chat or channel id (e.g. -1001234567890, C0123ABCD) or \"*\""
                    .into(),
            );
        }
    }
}

fn is_url_segment(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A model setting: its primary at `path` (or `path.primary`), each fallback at
/// `path.fallbacks[i]`.
fn check_models(setting: &ModelSetting, path: &str, bad: &mut impl FnMut(&str, String)) {
    match setting {
        ModelSetting::Name(name) => check_model(name, path, bad),
        ModelSetting::Chain { primary, fallbacks } => {
            check_model(primary, &format!("{path}.primary"), bad);
            for (i, fallback) in fallbacks.iter().enumerate() {
                check_model(fallback, &format!("{path}.fallbacks[{i}]"), bad);
            }
        }
    }
}

fn check_model(model: &str, path: &str, bad: &mut impl FnMut(&str, String)) {
    match model.split_once('/') {
        Some(("anthropic" | "openai", name)) if !name.is_empty() => {}
        _ => bad(
            path,
            format!("{model:?} is not <provider>/<model>; provider is one of: anthropic, openai"),
        ),
    }
}

/// A workspace (or the sandbox workspace root) inside a system path is refused like a bind of
/// one: it is bind-mounted into the sandbox and written by the file tools.
fn check_workspace(
    workspace: &str,
    docker: &DockerConfig,
    path: &str,
    bad: &mut impl FnMut(&str, String),
) {
    let host = expand_home(workspace);
    let Some(host) = host.to_str() else { return };
    if let Some(why) = dangerous_workspace(host) {
        if !docker.dangerously_allow_system_binds {
            bad(
                path,
                format!("{workspace:?} is {why}; the sandbox mounts and writes it. Choose a directory of its own, or set dangerouslyAllowSystemBinds: true in the sandbox's docker section"),
            );
        }
    }
}

fn check_sandbox(sandbox: &SandboxConfig, path: &str, bad: &mut impl FnMut(&str, String)) {
    let docker = &sandbox.docker;
    for (key, value) in [
        ("memory", &docker.memory),
        ("memorySwap", &docker.memory_swap),
    ] {
        if !value.is_empty() && parse_bytes(value).is_none() {
            bad(
                &format!("{path}.docker.{key}"),
                format!("{value:?} is not a size: use a number with b, k, m or g (e.g. \"1g\")"),
            );
        }
    }
    if !(docker.cpus > 0.0 && docker.cpus <= 1024.0) {
        bad(
            &format!("{path}.docker.cpus"),
            "must be greater than 0 and at most 1024".into(),
        );
    }
    if !(1..=1_000_000).contains(&docker.pids_limit) {
        bad(
            &format!("{path}.docker.pidsLimit"),
            "must be 1 to 1000000".into(),
        );
    }
    let env_name = |n: &str| {
        n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    for (name, value) in &docker.env {
        if !env_name(name) {
            bad(
                &format!("{path}.docker.env"),
                format!("{name:?} is not an environment variable name"),
            );
        }
        if let super::EnvValue::Secret(secret) = value {
            if !env_name(&secret.secret) {
                bad(
                    &format!("{path}.docker.env.{name}.secret"),
                    "must name an environment variable of the worker".into(),
                );
            }
        }
    }
    for (name, limit) in &docker.ulimits {
        if let super::Ulimit::Pair { soft, hard } = limit {
            if soft > hard {
                bad(
                    &format!("{path}.docker.ulimits.{name}"),
                    format!("soft ({soft}) is above hard ({hard})"),
                );
            }
        }
    }
    check_isolation(docker, &format!("{path}.docker"), bad);
    if let Some(why) = dangerous_workspace(
        expand_home(&sandbox.workspace_root)
            .to_str()
            .unwrap_or_default(),
    ) {
        if !docker.dangerously_allow_system_binds {
            bad(
                &format!("{path}.workspaceRoot"),
                format!("{:?} is {why}; scratch workspaces are created and written there. Choose a directory of its own, or set {path}.docker.dangerouslyAllowSystemBinds: true", sandbox.workspace_root),
            );
        }
    }
    let prune = &sandbox.prune;
    for (key, value, max) in [
        ("idleHours", prune.idle_hours, MAX_IDLE_HOURS),
        ("maxAgeDays", prune.max_age_days, MAX_AGE_DAYS),
    ] {
        if !(value.is_finite() && (0.0..=max).contains(&value)) {
            bad(
                &format!("{path}.prune.{key}"),
                format!("must be a number from 0 to {max}"),
            );
        }
    }
}

/// Refuses settings that break the sandbox open, unless their `dangerously…` key says so
/// (docs/security.md): host networking, joining another container's namespaces, privileged
/// mode, root, kept capabilities, no seccomp or AppArmor confinement, and binds of the Docker
/// socket or of system paths.
fn check_isolation(docker: &DockerConfig, path: &str, bad: &mut impl FnMut(&str, String)) {
    let network = docker.network.trim();
    if (network == "host" || network.starts_with("container:"))
        && !docker.dangerously_allow_host_network
    {
        bad(
            &format!("{path}.network"),
            format!("{network:?} shares a namespace with the host or another container; use \"none\" or a bridge network, or set {path}.dangerouslyAllowHostNetwork: true"),
        );
    }
    if docker.privileged && !docker.dangerously_allow_privileged {
        bad(
            &format!("{path}.privileged"),
            format!("a privileged container is no sandbox; set {path}.dangerouslyAllowPrivileged: true to allow it"),
        );
    }
    let user = docker.user.trim();
    let uid = user.split(':').next().unwrap_or("");
    if (uid.is_empty() || uid == "0" || uid == "root") && !docker.dangerously_allow_root {
        bad(
            &format!("{path}.user"),
            format!("{user:?} runs tools as root in the container; use a numeric non-root user such as \"1000:1000\", or set {path}.dangerouslyAllowRoot: true"),
        );
    }
    if !docker
        .cap_drop
        .iter()
        .any(|c| c.eq_ignore_ascii_case("ALL"))
        && !docker.dangerously_allow_capabilities
    {
        bad(
            &format!("{path}.capDrop"),
            format!("without \"ALL\" the container keeps Docker's default capabilities; keep [\"ALL\"], or set {path}.dangerouslyAllowCapabilities: true"),
        );
    }
    for (key, profile) in [
        ("seccompProfile", &docker.seccomp_profile),
        ("apparmorProfile", &docker.apparmor_profile),
    ] {
        if profile
            .as_deref()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("unconfined"))
            && !docker.dangerously_allow_unconfined
        {
            bad(
                &format!("{path}.{key}"),
                format!("\"unconfined\" turns off a kernel confinement layer; leave it unset (Docker's default profile), or set {path}.dangerouslyAllowUnconfined: true"),
            );
        }
    }
    for (i, bind) in docker.binds.iter().enumerate() {
        let source = bind.split(':').next().unwrap_or("");
        if let Some(why) = dangerous_bind_source(source) {
            if !docker.dangerously_allow_system_binds {
                bad(
                    &format!("{path}.binds[{i}]"),
                    format!("{bind:?} mounts {why}; set {path}.dangerouslyAllowSystemBinds: true to allow it"),
                );
            }
        }
        if !source.starts_with('/') {
            bad(
                &format!("{path}.binds[{i}]"),
                format!("{bind:?}: the source must be an absolute host path (host:container[:ro])"),
            );
        }
    }
}

/// Why a bind source is dangerous, if it is: the Docker socket, or a system directory.
pub fn dangerous_bind_source(source: &str) -> Option<&'static str> {
    let normalized = normalize(source);
    if normalized
        .rsplit('/')
        .next()
        .is_some_and(|f| f.ends_with(".sock"))
    {
        return Some("a daemon socket (such a socket gives root on the host)");
    }
    const EXACT: &[&str] = &["/", "/home", "/var", "/opt", "/srv", "/mnt", "/tmp"];
    system_path(&normalized, EXACT, &["/root"])
}

/// Why a workspace directory is dangerous, if it is: a system directory (the sandbox mounts it
/// and the file tools write it). A home directory's subdirectories are fine: the default
/// workspace is `~/.clawgate/workspace`, also for root.
pub fn dangerous_workspace(path: &str) -> Option<&'static str> {
    const EXACT: &[&str] = &[
        "/", "/home", "/root", "/var", "/opt", "/srv", "/mnt", "/tmp",
    ];
    system_path(&normalize(path), EXACT, &[])
}

/// `/a/./b/../c` → `/a/c`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn system_path(normalized: &str, exact: &[&str], more_trees: &[&str]) -> Option<&'static str> {
    const TREES: &[&str] = &[
        "/etc",
        "/proc",
        "/sys",
        "/dev",
        "/boot",
        "/run",
        "/var/run",
        "/var/lib/docker",
        "/var/lib/containerd",
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
    ];
    let inside = |t: &&str| normalized == *t || normalized.starts_with(&format!("{t}/"));
    if exact.contains(&normalized) || TREES.iter().any(inside) || more_trees.iter().any(inside) {
        return Some("a system path");
    }
    None
}

/// Parses Docker-style sizes: `512m`, `1g`, `1048576`, `64k`, `1.5g`.
pub fn parse_bytes(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let factor: f64 = match unit.trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    if unit.len() > 2 || (unit.len() == 2 && !unit.ends_with('b')) {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    let bytes = n * factor;
    (n > 0.0 && bytes.is_finite() && bytes < i64::MAX as f64).then_some(bytes as i64)
}
