//! Tool policy (docs/architecture.md §7): allow and deny lists with `group:` names and `*` wildcards,
//! case-insensitive, deny wins; an agent's own lists replace the global ones whole.
//!
//! An empty allow list allows every tool that is not denied (OpenClaw's reading). The policy is
//! checked where the tool runs, on every call, whatever the model asked for.

use infra::config::ToolPolicyConfig;

/// Tools each `group:` name stands for.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("group:fs", &["read", "write", "edit", "apply_patch"]),
    ("group:runtime", &["exec", "process"]),
    ("group:memory", &["memory_search", "memory_get"]),
    ("group:automation", &["cron"]),
    ("group:messaging", &["message"]),
    ("group:web", &["web_search", "web_fetch"]),
    ("group:skills", &["skill"]),
    (
        "group:sessions",
        &[
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_spawn",
            "session_status",
        ],
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPolicy {
    allow: Vec<String>,
    deny: Vec<String>,
}

/// Why a tool is or is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed { by: Option<String> },
    Denied { by: String },
    NotAllowed,
}

impl ToolPolicy {
    pub fn new(config: &ToolPolicyConfig) -> Self {
        let lower = |v: &[String]| v.iter().map(|s| s.trim().to_ascii_lowercase()).collect();
        ToolPolicy {
            allow: lower(&config.allow),
            deny: lower(&config.deny),
        }
    }

    pub fn verdict(&self, tool: &str) -> Verdict {
        let tool = tool.to_ascii_lowercase();
        if let Some(rule) = self.deny.iter().find(|p| matches(p, &tool)) {
            return Verdict::Denied { by: rule.clone() };
        }
        if self.allow.is_empty() {
            return Verdict::Allowed { by: None };
        }
        match self.allow.iter().find(|p| matches(p, &tool)) {
            Some(rule) => Verdict::Allowed {
                by: Some(rule.clone()),
            },
            None => Verdict::NotAllowed,
        }
    }

    pub fn allows(&self, tool: &str) -> bool {
        matches!(self.verdict(tool), Verdict::Allowed { .. })
    }

    pub fn allow_list(&self) -> &[String] {
        &self.allow
    }

    pub fn deny_list(&self) -> &[String] {
        &self.deny
    }
}

fn matches(pattern: &str, tool: &str) -> bool {
    if pattern.starts_with("group:") {
        return GROUPS
            .iter()
            .any(|(group, members)| *group == pattern && members.contains(&tool));
    }
    glob(pattern.as_bytes(), tool.as_bytes())
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infra::config::Config;

    fn policy(allow: &[&str], deny: &[&str]) -> ToolPolicy {
        ToolPolicy::new(&ToolPolicyConfig {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn groups_expand_to_their_tools() {
        let p = policy(&["group:fs"], &[]);
        for tool in ["read", "write", "edit", "apply_patch"] {
            assert!(p.allows(tool), "{tool}");
        }
        assert!(!p.allows("exec"));
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = policy(&["group:runtime", "*"], &["exec"]);
        assert_eq!(p.verdict("exec"), Verdict::Denied { by: "exec".into() });
        assert!(p.allows("process"));
    }

    #[test]
    fn matching_is_case_insensitive_with_wildcards() {
        let p = policy(&["Sessions_*"], &["*_SEND"]);
        assert!(p.allows("SESSIONS_LIST"));
        assert!(!p.allows("sessions_send"));
        assert!(!p.allows("exec"));
    }

    #[test]
    fn an_empty_allow_list_allows_what_is_not_denied() {
        let p = policy(&[], &["browser"]);
        assert!(p.allows("exec"));
        assert!(!p.allows("browser"));
    }

    #[test]
    fn an_agents_own_lists_replace_the_global_ones() {
        let config = Config::parse(
            r#"{ tools: { sandbox: { tools: { allow: ["group:fs"], deny: [] } } },
                 agents: { list: [{ id: "ops", tools: { sandbox: { tools: { allow: ["exec"], deny: [] } } } }] } }"#,
        )
        .unwrap();
        let ops = ToolPolicy::new(&config.agent_profile("ops").tools);
        let main = ToolPolicy::new(&config.agent_profile("main").tools);
        assert!(ops.allows("exec") && !ops.allows("read"));
        assert!(main.allows("read") && !main.allows("exec"));
    }
}
