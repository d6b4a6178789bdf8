//! The WebChat gateway's view of the conversations' workspaces (uploads in, the `message`
//! tool's files out), through the worker's own resolver: the same workspace a session's tools
//! see, written and read beneath it, never through a symlink out.

use std::sync::Arc;

use functions::webchat_files::SessionFiles;
use infra::config::Config;
use infra::model::SessionKey;
use sandbox_worker::media::safe_file_name;
use sandbox_worker::profile::SessionSetup;
use sandbox_worker::tools::fs::Workspace;

/// Workspaces on this machine (`clawgate up`: the gateway and the worker share them).
pub struct LocalWorkspaces {
    pub config: Arc<Config>,
}

impl LocalWorkspaces {
    fn workspace(&self, session: &SessionKey) -> Result<Workspace, String> {
        let agent = session.agent(self.config.default_agent());
        let setup = SessionSetup::resolve(&self.config, agent, session);
        if let Some(refusal) = &setup.plan.refusal {
            return Err(refusal.clone());
        }
        setup
            .plan
            .open_workspace()
            .map_err(|e| format!("no workspace: {e}"))
    }
}

impl SessionFiles for LocalWorkspaces {
    fn save_upload(
        &self,
        session: &SessionKey,
        name: &str,
        bytes: &[u8],
    ) -> Result<String, String> {
        let ws = self.workspace(session)?;
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let name = safe_file_name(name).unwrap_or_else(|| "upload.bin".into());
        let path = format!("inbound/up-{id}-{name}");
        ws.write_bytes(&path, bytes, bytes.len() as u64)
            .map_err(|e| e.to_string())?;
        Ok(path)
    }

    fn read(&self, session: &SessionKey, path: &str, max: u64) -> Result<Vec<u8>, String> {
        self.workspace(session)?
            .read_bytes(path, max)
            .map_err(|e| e.to_string())
    }
}
