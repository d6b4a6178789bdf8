//! Skills: folders holding a `SKILL.md` (YAML front matter with `name` and `description`, then
//! the instructions), found under the agent workspace's `skills/` and the shared directories
//! (`~/.clawgate/skills`, then `skills.load.extraDirs`). Their names and descriptions go into
//! the system prompt; the model loads a skill's instructions with the `skill` tool when a task
//! matches, so a long skill costs nothing until it is used (OpenClaw's and the Agent Skills
//! format's progressive disclosure).
//!
//! Decisions:
//! - A name is looked up in the workspace first, then each shared directory in order; the
//!   first wins (a workspace can override a shared skill). `skills.entries.<name>.enabled:
//!   false` turns one off.
//! - Owner sessions only: a skill is the owner's instructions, and its text may name their
//!   things. The `skill` tool is `group:skills`, so a tool policy that leaves it out also
//!   leaves the skills out of the prompt.
//! - Files are read through the workspace resolver (`tools::fs::Workspace`, read-only), so a
//!   symlinked `SKILL.md` cannot carry a file from outside its directory into the prompt; a
//!   `SKILL.md` over [`MAX_SKILL_BYTES`], without a valid name or description, or not UTF-8 is
//!   skipped with a warning, never an error for the job.
//! - Front matter by `gray_matter` (maintained; YAML through `yaml-rust2`).

use std::path::{Path, PathBuf};

use gray_matter::engine::YAML;
use gray_matter::Matter;
use infra::config::SkillsConfig;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::tools::fs::Workspace;
use crate::tools::{ExtraTools, ToolOutcome, ToolSpec};

/// The largest `SKILL.md` read.
pub const MAX_SKILL_BYTES: u64 = 256 * 1024;
/// The most skills listed in a prompt (each costs a line of it).
pub const MAX_SKILLS: usize = 100;
/// The Agent Skills format's bounds on a name and a description.
const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// One skill, as the prompt lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    pub name: String,
    pub description: String,
    /// The directory it was found in (`<workspace>/skills` or a shared one).
    pub source: PathBuf,
    /// Its folder's name under `source`.
    folder: String,
}

#[derive(Deserialize)]
struct FrontMatter {
    name: Option<String>,
    description: Option<String>,
}

/// Every enabled skill for an agent whose workspace is `workspace`, workspace first.
pub fn discover(workspace: &Path, config: &SkillsConfig) -> Vec<Skill> {
    let sources = std::iter::once(workspace.join("skills")).chain(config.shared_dirs());
    let mut found: Vec<Skill> = Vec::new();
    for source in sources {
        for skill in in_dir(&source) {
            if found.len() >= MAX_SKILLS {
                return found;
            }
            if config.enabled(&skill.name) && !found.iter().any(|s| s.name == skill.name) {
                found.push(skill);
            }
        }
    }
    found
}

/// The skills in one directory, by folder name.
fn in_dir(source: &Path) -> Vec<Skill> {
    let Ok(entries) = std::fs::read_dir(source) else {
        return Vec::new();
    };
    let mut folders: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    folders.sort();
    let Ok(ws) = Workspace::new(source, &source.display().to_string(), true, None) else {
        return Vec::new();
    };
    folders
        .into_iter()
        .filter_map(|folder| match parse(&ws, &folder) {
            Ok((skill, _)) => Some(skill),
            Err(why) => {
                tracing::warn!(skill = %source.join(&folder).display(), %why, "skill skipped");
                None
            }
        })
        .collect()
}

/// The skill in `folder` of `ws`, and its instructions (the text after the front matter).
fn parse(ws: &Workspace, folder: &str) -> Result<(Skill, String), String> {
    let path = format!("{folder}/SKILL.md");
    let bytes = ws
        .read_bytes(&path, MAX_SKILL_BYTES)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "SKILL.md is not UTF-8".to_string())?;
    let parsed = Matter::<YAML>::new()
        .parse::<FrontMatter>(&text)
        .map_err(|e| format!("its front matter is not YAML: {e}"))?;
    let front = parsed
        .data
        .ok_or("SKILL.md has no front matter (---, name:, description:, ---)")?;
    let name = front.name.unwrap_or_default().trim().to_string();
    let valid_name = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_name {
        return Err(format!(
            "name {name:?} must be 1 to {MAX_NAME_CHARS} lowercase letters, digits and hyphens"
        ));
    }
    let description = front
        .description
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if description.is_empty() || description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "description must be 1 to {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    let skill = Skill {
        name,
        description,
        source: ws.root().to_path_buf(),
        folder: folder.to_string(),
    };
    Ok((skill, parsed.content.trim().to_string()))
}

/// The system prompt's skills section, or `None` without skills.
pub fn prompt_section(skills: &[Skill]) -> Option<String> {
    if skills.is_empty() {
        return None;
    }
    let mut text = String::from(
        "# Skills\n\nInstructions the owner installed for particular tasks. When a task matches a skill's description, load it with the skill tool before you start, then follow it.\n\n<available_skills>",
    );
    for skill in skills {
        text.push_str(&format!(
            "\n<skill><name>{}</name><description>{}</description></skill>",
            skill.name, skill.description
        ));
    }
    text.push_str("\n</available_skills>");
    Some(text)
}

/// The `skill` tool of one owner session: the skills its prompt lists.
pub struct SkillTools {
    pub skills: Vec<Skill>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    name: String,
}

#[async_trait::async_trait]
impl ExtraTools for SkillTools {
    fn specs(&self) -> Vec<ToolSpec> {
        if self.skills.is_empty() {
            return Vec::new();
        }
        vec![ToolSpec {
            name: "skill".into(),
            description: "Load an installed skill's instructions by name (the names are in the Skills section of your instructions).".into(),
            input_schema: json!({"type": "object", "properties": {
                "name": {"type": "string"}
            }, "required": ["name"], "additionalProperties": false}),
        }]
    }

    async fn run(&self, name: &str, input: &Value) -> Option<ToolOutcome> {
        if name != "skill" {
            return None;
        }
        let input: Input = match sandbox_agent::file_tools::parse("skill", input) {
            Ok(input) => input,
            Err(e) => return Some(ToolOutcome::error(e)),
        };
        let Some(skill) = self.skills.iter().find(|s| s.name == input.name).cloned() else {
            let names: Vec<&str> = self.skills.iter().map(|s| s.name.as_str()).collect();
            return Some(ToolOutcome::error(format!(
                "no skill named {:?}; installed: {}",
                input.name,
                names.join(", ")
            )));
        };
        // Blocking file reads, off the async threads.
        let loaded = tokio::task::spawn_blocking(move || {
            let ws = Workspace::new(
                &skill.source,
                &skill.source.display().to_string(),
                true,
                None,
            )
            .map_err(|e| e.to_string())?;
            parse(&ws, &skill.folder).map(|(_, body)| body)
        })
        .await
        .unwrap_or_else(|_| Err("the skill could not be read".into()));
        Some(match loaded {
            Ok(body) => ToolOutcome::ok(format!(
                "# Skill: {}\n(from {})\n\n{body}",
                input.name,
                self.skills
                    .iter()
                    .find(|s| s.name == input.name)
                    .map(|s| s.source.join(&s.folder).display().to_string())
                    .unwrap_or_default()
            )),
            Err(why) => ToolOutcome::error(format!("skill {:?}: {why}", input.name)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, folder: &str, text: &str) {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        std::fs::write(dir.join(folder).join("SKILL.md"), text).unwrap();
    }

    fn skill_md(name: &str, description: &str) -> String {
        format!("---\nname: {name}\ndescription: {description}\n---\n\n# {name}\n\nStep one.\n")
    }

    fn config(extra: &Path) -> SkillsConfig {
        let mut config = SkillsConfig::default();
        config.load.extra_dirs = vec![extra.display().to_string()];
        config
    }

    #[test]
    fn the_workspace_wins_over_a_shared_dir_and_a_disabled_or_broken_skill_is_left_out() {
        let ws = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        write(
            &ws.path().join("skills"),
            "pdf",
            &skill_md("pdf", "Mine, fill PDF forms"),
        );
        write(
            shared.path(),
            "pdf",
            &skill_md("pdf", "Shared, fill PDF forms"),
        );
        write(
            shared.path(),
            "weather",
            &skill_md("weather", "Look up the weather"),
        );
        write(shared.path(), "off", &skill_md("off", "Turned off"));
        write(shared.path(), "bad", "no front matter here");
        write(shared.path(), "Caps", &skill_md("Bad Name", "bad name"));
        let mut config = config(shared.path());
        config
            .entries
            .insert("off".into(), infra::config::SkillEntry { enabled: false });

        let skills = discover(ws.path(), &config);

        let listed: Vec<(&str, &str)> = skills
            .iter()
            .map(|s| (s.name.as_str(), s.description.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("pdf", "Mine, fill PDF forms"),
                ("weather", "Look up the weather")
            ]
        );
        let section = prompt_section(&skills).unwrap();
        assert!(section.contains(
            "<skill><name>weather</name><description>Look up the weather</description></skill>"
        ));
        assert_eq!(prompt_section(&[]), None);
    }

    #[test]
    fn a_skill_md_linked_from_outside_its_directory_is_not_read() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(
            outside.path().join("secret.md"),
            skill_md("leak", "should never be listed"),
        )
        .unwrap();
        let folder = ws.path().join("skills").join("leak");
        std::fs::create_dir_all(&folder).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.md"), folder.join("SKILL.md"))
            .unwrap();

        let skills = discover(ws.path(), &SkillsConfig::default());

        assert!(skills.iter().all(|s| s.name != "leak"), "{skills:?}");
    }

    #[tokio::test]
    async fn the_tool_loads_the_instructions_and_names_what_is_installed_otherwise() {
        let ws = tempfile::tempdir().unwrap();
        write(
            &ws.path().join("skills"),
            "pdf",
            &skill_md("pdf", "Fill PDF forms"),
        );
        let tools = SkillTools {
            skills: discover(ws.path(), &SkillsConfig::default()),
        };

        let loaded = tools.run("skill", &json!({"name": "pdf"})).await.unwrap();
        let missing = tools.run("skill", &json!({"name": "nope"})).await.unwrap();

        assert!(!loaded.is_error, "{}", loaded.output);
        assert!(
            loaded.output.contains("# pdf\n\nStep one."),
            "{}",
            loaded.output
        );
        assert!(!loaded.output.contains("description:"));
        assert!(missing.is_error && missing.output.contains("installed: pdf"));
        assert!(SkillTools { skills: vec![] }.specs().is_empty());
    }
}
