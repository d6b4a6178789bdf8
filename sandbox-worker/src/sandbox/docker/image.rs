//! The sandbox image: `Dockerfile.sandbox` is compiled into the binary and built through the
//! Docker API, so `clawgate up`, `clawgate sandbox build` and the fleet's user data make the
//! image with nothing but the daemon: no checkout, no `docker` CLI.
//!
//! Decisions:
//! - The base image is a build argument (`BASE_IMAGE`, default `debian:bookworm-slim`): a host
//!   that cannot reach a registry passes one it has (`--base`, or `CLAWGATE_SANDBOX_BASE`).
//!   The daemon pulls the base if it lacks it; that is the only pull, and it is the daemon's.
//! - The image is labelled with the SHA-256 of the Dockerfile it came from, so `doctor` can
//!   tell an image built by an older clawgate.
//! - The classic builder: its `Step N/M` lines give a progress bar, and every daemon has it.

use std::collections::HashMap;

use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{docker_message, status_code, DockerSandboxes};
use crate::sandbox::SandboxError;

/// `Dockerfile.sandbox`, as this binary was built with it.
pub const DOCKERFILE: &str = include_str!("../../../../Dockerfile.sandbox");
/// The base image `Dockerfile.sandbox` starts from unless told otherwise.
pub const DEFAULT_BASE: &str = "debian:bookworm-slim";
/// Names the base image for every build on this host (a mirror, or a locally loaded image).
pub const BASE_ENV: &str = "CLAWGATE_SANDBOX_BASE";
/// The label holding the SHA-256 of the Dockerfile an image was built from.
pub const LABEL_DOCKERFILE: &str = "clawgate.dockerfile-sha256";
/// The label naming the base image an image was built from.
pub const LABEL_BASE: &str = "clawgate.base";

/// The base to build from: the explicit one, else `$CLAWGATE_SANDBOX_BASE`, else Debian.
pub fn base_image(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_string)
        .or_else(|| {
            std::env::var(BASE_ENV)
                .ok()
                .filter(|b| !b.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_BASE.to_string())
}

/// The SHA-256 of the compiled-in Dockerfile, hex.
pub fn dockerfile_digest() -> String {
    hex::encode(Sha256::digest(DOCKERFILE.as_bytes()))
}

/// What a build reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// The builder started instruction `index` of `total`.
    Step {
        index: u32,
        total: u32,
        instruction: String,
    },
    /// A line of output from the current step.
    Output(String),
}

/// What the daemon knows of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStatus {
    pub id: String,
    /// The Dockerfile digest it was built from, when clawgate built it.
    pub dockerfile_sha256: Option<String>,
    /// The base it was built from, when clawgate built it.
    pub base: Option<String>,
}

/// Parses the classic builder's `Step 3/7 : RUN …` line.
fn parse_step(line: &str) -> Option<BuildEvent> {
    let rest = line.trim_start().strip_prefix("Step ")?;
    let (counts, instruction) = rest.split_once(" : ")?;
    let (index, total) = counts.split_once('/')?;
    Some(BuildEvent::Step {
        index: index.trim().parse().ok()?,
        total: total.trim().parse().ok()?,
        instruction: instruction.trim().to_string(),
    })
}

/// The build context: a tar holding the Dockerfile alone (it copies nothing in).
fn context_tar() -> Result<Vec<u8>, std::io::Error> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(DOCKERFILE.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    archive.append_data(&mut header, "Dockerfile", DOCKERFILE.as_bytes())?;
    archive.into_inner()
}

impl DockerSandboxes {
    /// The image's id and provenance, or `None` when the daemon has no such image.
    pub async fn image_status(&self, image: &str) -> Result<Option<ImageStatus>, SandboxError> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => {
                let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
                Ok(Some(ImageStatus {
                    id: inspect.id.unwrap_or_default(),
                    dockerfile_sha256: labels.get(LABEL_DOCKERFILE).cloned(),
                    base: labels.get(LABEL_BASE).cloned(),
                }))
            }
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(SandboxError::Docker {
                container: image.to_string(),
                message: docker_message(&e),
            }),
        }
    }

    /// Builds the compiled-in `Dockerfile.sandbox` as `tag` from `base`, reporting each step
    /// and output line to `on_event`. Returns the image id.
    pub async fn build_image(
        &self,
        tag: &str,
        base: &str,
        mut on_event: impl FnMut(BuildEvent),
    ) -> Result<String, SandboxError> {
        let failed = |message: String| SandboxError::ImageBuild {
            image: tag.to_string(),
            message,
        };
        let context = context_tar().map_err(|e| failed(e.to_string()))?;
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .buildargs(&HashMap::from([("BASE_IMAGE", base)]))
            .labels(&HashMap::from([
                (LABEL_DOCKERFILE, dockerfile_digest()),
                (LABEL_BASE, base.to_string()),
            ]))
            .build();
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(context.into())));
        let mut current = String::new();
        let mut image_id = None;
        // A failure names the step; at FROM it is the base, which a user can replace.
        let explain = |message: String, current: &str| {
            failed(if current.starts_with("FROM") {
                format!("{message} (the base image {base} could not be had: `docker load` one, or pass --base IMAGE / set {BASE_ENV} to an image this daemon has)")
            } else {
                format!("{message} (at `{current}`)")
            })
        };
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(explain(error, &current))
                }
                Err(e) => return Err(explain(docker_message(&e), &current)),
            };
            if let Some(detail) = info.error_detail {
                let message = detail.message.unwrap_or_else(|| "unknown error".into());
                return Err(explain(message, &current));
            }
            if let Some(id) = info.aux.and_then(|aux| aux.id) {
                image_id = Some(id);
            }
            let Some(text) = info.stream else { continue };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match parse_step(line) {
                    Some(step) => {
                        if let BuildEvent::Step { instruction, .. } = &step {
                            current = instruction.clone();
                        }
                        on_event(step);
                    }
                    None => on_event(BuildEvent::Output(line.to_string())),
                }
            }
        }
        match image_id {
            Some(id) => Ok(id),
            // Daemons before API 1.30 send no aux id: the tag is what counts.
            None => self
                .image_status(tag)
                .await?
                .map(|status| status.id)
                .ok_or_else(|| failed("the build ended without an image".into())),
        }
    }

    /// `clawgate sandbox build` and `sandbox-worker build-image`: builds `tag` from the base
    /// ([`base_image`]), or, with `if_missing`, leaves an existing image be. Says what it does
    /// on stderr.
    pub async fn build_command(
        &self,
        tag: &str,
        base: Option<&str>,
        if_missing: bool,
    ) -> Result<(), SandboxError> {
        if if_missing && self.image_status(tag).await?.is_some() {
            eprintln!("{tag} is present");
            return Ok(());
        }
        let base = base_image(base);
        eprintln!("building {tag} from {base} (Dockerfile.sandbox)…");
        let id = self.build_image_with_progress(tag, &base).await?;
        eprintln!("built {tag} ({id})");
        Ok(())
    }

    /// [`build_image`](Self::build_image) with a progress bar on a terminal, or one line per
    /// step elsewhere (the fleet's logs).
    pub async fn build_image_with_progress(
        &self,
        tag: &str,
        base: &str,
    ) -> Result<String, SandboxError> {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        let bar = indicatif::ProgressBar::new(0);
        if terminal {
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "  {spinner} [{bar:24}] step {pos}/{len} {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        } else {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let outcome = self
            .build_image(tag, base, |event| match event {
                BuildEvent::Step {
                    index,
                    total,
                    instruction,
                } => {
                    bar.set_length(u64::from(total));
                    bar.set_position(u64::from(index.saturating_sub(1)));
                    bar.set_message(instruction.clone());
                    if !terminal {
                        eprintln!("  step {index}/{total}: {instruction}");
                    }
                }
                BuildEvent::Output(line) => {
                    if terminal {
                        bar.set_message(line);
                    }
                }
            })
            .await;
        bar.finish_and_clear();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_parse_and_others_do_not() {
        assert_eq!(
            parse_step("Step 3/7 : RUN apt-get update"),
            Some(BuildEvent::Step {
                index: 3,
                total: 7,
                instruction: "RUN apt-get update".into()
            })
        );
        assert_eq!(parse_step(" ---> Running in 1f2e"), None);
        assert_eq!(parse_step("Step x/7 : RUN"), None);
        assert_eq!(parse_step("Step 3 : RUN"), None);
    }

    #[test]
    fn the_context_holds_the_dockerfile_and_its_base_is_an_argument() {
        let tar = context_tar().expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["Dockerfile"]);
        assert!(DOCKERFILE.contains("ARG BASE_IMAGE=debian:bookworm-slim"));
        assert!(DOCKERFILE.contains("FROM ${BASE_IMAGE}"));
        assert_eq!(dockerfile_digest().len(), 64);
    }

    #[test]
    fn an_explicit_base_wins() {
        assert_eq!(base_image(Some("mirror/debian:12")), "mirror/debian:12");
    }
}
