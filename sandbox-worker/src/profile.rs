//! A job's session, prepared once: the agent's resolved profile, whose the session is, its
//! sandbox plan and its tool policy. The worker builds one per job and hands it to the tool
//! box, the session tools, the agent loop and `/status`; nothing recomputes them.

use std::sync::Arc;

use infra::config::{AgentProfile, Config, Trust};
use infra::model::{SessionKey, SessionOptions};

use crate::llm::ToolSpec;
use crate::sandbox::SandboxPlan;
use crate::tools::policy::ToolPolicy;
use crate::tools::{builtin_specs, ExtraTools};

/// Everything about one session that the config decides.
#[derive(Debug, Clone)]
pub struct SessionSetup {
    pub profile: Arc<AgentProfile>,
    pub session: SessionKey,
    pub trust: Trust,
    pub plan: SandboxPlan,
    pub policy: ToolPolicy,
}

impl SessionSetup {
    /// Prepares `session` of the agent `profile` describes.
    pub fn new(config: &Config, profile: Arc<AgentProfile>, session: &SessionKey) -> Self {
        let trust = config.session_trust(session);
        SessionSetup {
            plan: SandboxPlan::new(&profile, session, trust),
            policy: ToolPolicy::new(&profile.tools),
            trust: trust.0,
            session: session.clone(),
            profile,
        }
    }

    /// The agent's profile with this session's `/model` choice as its primary (the agent's
    /// fallbacks still follow it).
    pub fn profile_for(&self, options: &SessionOptions) -> Arc<AgentProfile> {
        match &options.model {
            Some(model) if *model != self.profile.model => Arc::new(AgentProfile {
                model: model.clone(),
                ..(*self.profile).clone()
            }),
            _ => self.profile.clone(),
        }
    }

    /// Resolves the agent's profile too (the CLI and tests).
    pub fn resolve(config: &Config, agent: &str, session: &SessionKey) -> Self {
        SessionSetup::new(config, Arc::new(config.agent_profile(agent)), session)
    }

    /// The tools offered to the model: the built-in ones and `extra`, as the policy allows.
    pub fn specs(&self, extra: &[&dyn ExtraTools]) -> Vec<ToolSpec> {
        builtin_specs()
            .into_iter()
            .chain(extra.iter().flat_map(|e| e.specs()))
            .filter(|s| self.policy.allows(&s.name))
            .collect()
    }

    /// Where tools run, in a few words (`/status`, `session_status`).
    pub fn sandbox_line(&self) -> String {
        if let Some(refusal) = &self.plan.refusal {
            return format!("no tools ({refusal})");
        }
        if self.plan.sandboxed {
            format!(
                "container {} ({} session)",
                self.plan.container_name, self.plan.trust
            )
        } else {
            "off: tools run on the host, with no isolation".into()
        }
    }
}
