//! The tools a job's worker serves itself, beside the sandbox's: the session tools and
//! `sessions_spawn`, memory, cron, `message`, the web tools, skills and MCP, assembled once per
//! job, and which of them the session is offered. Guest sessions get the session tools and
//! `message` only: memory, schedules, the web, skills, sub-agents and MCP are the owner's.

use infra::model::{CronDelivery, JobMessage, JobRecord};

use super::{work_id, Worker};
use crate::agent::{LazyTools, Lease};
use crate::profile::SessionSetup;
use crate::skills::SkillTools;
use crate::tools::cron::CronTools;
use crate::tools::mcp::McpTools;
use crate::tools::memory::MemoryTools;
use crate::tools::message::{sends_so_far, MessageTools};
use crate::tools::sessions::{Caller, SessionTools};
use crate::tools::spawn::SpawnTools;
use crate::tools::web::WebTools;
use crate::tools::ExtraTools;

/// One job's worker-served tools.
pub(super) struct JobTools {
    owner: bool,
    sessions: SessionTools,
    spawn: SpawnTools,
    memory: MemoryTools,
    cron: CronTools,
    message: MessageTools,
    web: WebTools,
    pub skills: SkillTools,
    mcp: Option<McpTools>,
}

impl JobTools {
    /// The tools the session is offered, in the order the model sees them.
    pub fn list(&self) -> Vec<&dyn ExtraTools> {
        let mut list: Vec<&dyn ExtraTools> = vec![&self.sessions];
        if self.owner {
            list.extend([
                &self.memory as &dyn ExtraTools,
                &self.cron,
                &self.message,
                &self.web,
                &self.skills,
                &self.spawn,
            ]);
        } else {
            list.push(&self.message);
        }
        if let Some(mcp) = &self.mcp {
            list.push(mcp);
        }
        list
    }
}

impl Worker {
    /// Assembles `job`'s worker-served tools (`tools`: the sandbox's, awaited only when a stdio
    /// MCP server must start in it).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn job_tools(
        &self,
        job: &JobMessage,
        record: &JobRecord,
        lease: &Lease,
        setup: &SessionSetup,
        status_note: String,
        tools: &LazyTools,
        transcript: &infra::model::Transcript,
    ) -> JobTools {
        let owner = setup.trust == infra::config::Trust::Owner;
        let sessions = SessionTools {
            store: self.backends.store.clone(),
            queue: self.backends.queue.clone(),
            config: self.config.clone(),
            caller: Caller {
                agent: setup.profile.id.clone(),
                session: job.session_key.clone(),
                trust: setup.trust,
                sandboxed: setup.plan.sandboxed,
                visibility: setup.profile.sandbox.session_tools_visibility,
                agent_to_agent: setup.profile.agent_to_agent.clone(),
                depth: job.origin.as_ref().map_or(0, |o| o.depth),
            },
            status_note,
        };
        let spawn = SpawnTools {
            store: self.backends.store.clone(),
            queue: self.backends.queue.clone(),
            config: self.config.clone(),
            caller: sessions.caller.clone(),
            account: job.inbound.account.clone(),
            reply_to: job.reply_to.clone(),
        };
        // Memory is the owner's: its tools are not offered in guest sessions.
        let memory = MemoryTools {
            workspace: setup.profile.workspace.clone(),
            indexes: self.memory.clone(),
        };
        // So are scheduled jobs: one runs with the owner's trust.
        let cron = CronTools {
            store: self.backends.store.clone(),
            queue: self.backends.queue.clone(),
            agent: setup.profile.id.clone(),
            here: job
                .reply_to
                .clone()
                .map_or(CronDelivery::Last, |target| CronDelivery::Chat {
                    account: job.inbound.account.clone(),
                    target,
                }),
        };
        let message = MessageTools {
            outbound: self.outbound.clone(),
            store: self.backends.store.clone(),
            job: job.clone(),
            work_id: work_id(job).to_string(),
            owner: self.settings.worker_id.clone(),
            lease: lease.clone(),
            marked: record.chunks_sent.clone(),
            // A session whose plan refuses tools (a guest on the host) has no files to send.
            workspace: setup
                .plan
                .refusal
                .is_none()
                .then(|| setup.plan.open_workspace().ok())
                .flatten(),
            sends: sends_so_far(transcript, &job.job_id).into(),
        };
        let web = WebTools {
            fetch: self.web.clone(),
            search: self.web_search.clone(),
            store: self.backends.store.clone(),
            session: job.session_key.clone(),
            calls_per_minute: self.config.limits.web_calls_per_minute,
        };
        // Skills are the owner's instructions: listed and loadable in owner sessions, when
        // the policy allows the `skill` tool.
        let skills = SkillTools {
            skills: if owner && setup.policy.allows("skill") {
                crate::skills::discover(&setup.profile.workspace, &self.config.skills)
            } else {
                Vec::new()
            },
        };
        // The owner's MCP servers: their tools listed now (connecting on first use).
        let mcp = match (&self.mcp, owner) {
            (Some(servers), true) => {
                // Stdio servers run in the sandbox: waiting for it here (only when some are
                // configured) so their tools are known before the first model call.
                let sandbox = match (servers.has_stdio(), setup.plan.sandboxed) {
                    (true, true) => Some(tools.get().await),
                    _ => None,
                };
                Some(McpTools::for_job(servers.clone(), sandbox.as_deref()).await)
            }
            _ => None,
        };
        JobTools {
            owner,
            sessions,
            spawn,
            memory,
            cron,
            message,
            web,
            skills,
            mcp,
        }
    }
}
