//! `skills`: where the worker looks for skills besides the agent workspace's `skills/`, and
//! which are turned off, with OpenClaw's key names (`skills.load.extraDirs`,
//! `skills.entries.<name>.enabled`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{default_dir, expand_home};

/// `skills`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SkillsConfig {
    pub load: SkillsLoad,
    /// Per skill, by name.
    pub entries: BTreeMap<String, SkillEntry>,
}

/// `skills.load`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SkillsLoad {
    /// More directories of skill folders, looked at after the workspace's and
    /// `~/.clawgate/skills`.
    pub extra_dirs: Vec<String>,
}

/// `skills.entries.<name>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SkillEntry {
    pub enabled: bool,
}

impl Default for SkillEntry {
    fn default() -> Self {
        SkillEntry { enabled: true }
    }
}

impl SkillsConfig {
    /// The shared skill directories, in the order a name is looked up after the workspace's:
    /// `~/.clawgate/skills` (or `$CLAWGATE_HOME/skills`), then `load.extraDirs`.
    pub fn shared_dirs(&self) -> Vec<PathBuf> {
        std::iter::once(default_dir().join("skills"))
            .chain(self.load.extra_dirs.iter().map(|d| expand_home(d)))
            .collect()
    }

    /// Whether the skill `name` is on (every skill is, unless its entry says otherwise).
    pub fn enabled(&self, name: &str) -> bool {
        self.entries.get(name).is_none_or(|e| e.enabled)
    }
}
