//! Helpers for the sandbox tests: the FROM-scratch busybox image (built once, never pulled),
//! a config pointing at it, and clean-up of every container a test made, even on panic.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use infra::config::Config;
use sandbox_worker::sandbox::SandboxRuntime;

pub const TEST_IMAGE: &str = "clawgate-test-sandbox:busybox";

/// True when a daemon answers. `scripts/test` sets `CLAWGATE_REQUIRE_DOCKER=1`, which turns a
/// missing daemon into a failure so CI cannot pass by skipping.
pub fn docker_available() -> bool {
    let up = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        if std::env::var("CLAWGATE_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
            panic!("CLAWGATE_REQUIRE_DOCKER=1 but no Docker daemon answers");
        }
        eprintln!("skipped: no Docker daemon (scripts/test starts one)");
    }
    up
}

/// [`docker_available`], for a test that returns early without it.
pub fn docker_or_skip() -> bool {
    docker_available()
}

/// Builds the test image from the static busybox, once per test process. `/tmp` is 1777 as in
/// Debian (the real image), so the tmpfs mounted there is writable by the sandbox user.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy("/bin/busybox", dir.path().join("busybox"))
            .expect("/bin/busybox (Debian's busybox-static) is needed for the test image");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\n\
             COPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             RUN [\"/bin/busybox\", \"mkdir\", \"-p\", \"/workspace\", \"/tmp\", \"/run\", \"/var/tmp\"]\n\
             RUN [\"/bin/busybox\", \"chmod\", \"1777\", \"/tmp\", \"/var/tmp\"]\n",
        )
        .unwrap();
        let out = Command::new("docker")
            .args(["build", "-q", "-t", TEST_IMAGE])
            .arg(dir.path())
            .output()
            .expect("run docker build");
        assert!(out.status.success(), "docker build failed: {}", String::from_utf8_lossy(&out.stderr));
    });
    TEST_IMAGE
}

/// How a sandbox's commands and file tools are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecPath {
    /// Through the agent inside the container (containers made by this version).
    Agent,
    /// Through `docker exec`, and the file tools on the host side of the mount (containers made
    /// without the agent).
    DockerExec,
}

impl ExecPath {
    /// What `ToolBox::describe_backend` says for this path.
    pub fn described_as(self) -> &'static str {
        match self {
            ExecPath::Agent => "its agent",
            ExecPath::DockerExec => "docker exec",
        }
    }
}

/// The static agent binary: `$CLAWGATE_SANDBOX_AGENT`, which `scripts/test` sets after
/// building it with `scripts/build-sandbox-agent`.
pub fn agent_binary() -> PathBuf {
    let path = std::env::var_os("CLAWGATE_SANDBOX_AGENT")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    path.unwrap_or_else(|| {
        panic!("CLAWGATE_SANDBOX_AGENT must name the static agent: run scripts/build-sandbox-agent and export its output (scripts/test does)")
    })
}

/// A temp dir, a unique container prefix, and a runtime; removes the prefix's containers on drop.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub prefix: String,
}

impl Sandbox {
    pub fn new() -> Self {
        test_image();
        let id = ulid::Ulid::new().to_string().to_lowercase();
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
            prefix: format!("cgt-{}-", &id[id.len() - 10..]),
        }
    }

    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    /// The runtime every test uses: new containers run the in-sandbox agent.
    pub fn runtime(&self) -> SandboxRuntime {
        self.runtime_on(ExecPath::Agent)
    }

    /// A runtime whose new containers use `path`.
    pub fn runtime_on(&self, path: ExecPath) -> SandboxRuntime {
        let runtime = SandboxRuntime::new(None, self.dir.path().join("activity"));
        match path {
            ExecPath::Agent => runtime.with_agent(Some(agent_binary())),
            ExecPath::DockerExec => runtime.with_agent(None),
        }
    }

    /// A config for the test image with small limits; `extra` is spliced into `docker: {…}`.
    pub fn config(&self, sandbox_extra: &str, docker_extra: &str) -> Config {
        let text = format!(
            r#"{{ agents: {{ defaults: {{ workspace: "{ws}", sandbox: {{
                 mode: "all", scope: "session", workspaceAccess: "rw", workspaceRoot: "{root}", {sandbox_extra}
                 docker: {{ image: "{image}", containerPrefix: "{prefix}", memory: "64m", memorySwap: "64m",
                            pidsLimit: 64, cpus: 1, {docker_extra} }} }} }} }} }}"#,
            ws = self.workspace().display(),
            root = self.dir.path().join("sbx").display(),
            image = TEST_IMAGE,
            prefix = self.prefix,
        );
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        config.validate().unwrap();
        config
    }

    /// Names of this test's containers, running or not.
    pub fn containers(&self) -> Vec<String> {
        self.containers_where(&["-a"])
    }

    /// Names of this test's containers that `docker ps` lists with `args` (`--filter …`).
    pub fn containers_where(&self, args: &[&str]) -> Vec<String> {
        let out = Command::new("docker")
            .args(["ps", "--format", "{{.Names}}", "--filter"])
            .arg(format!("name=^{}", self.prefix))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn container_id(&self, name: &str) -> String {
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.Id}}", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let names = self.containers();
        if !names.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&names)
                .output();
        }
    }
}

pub fn file_uid(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().uid()
}

/// Latencies in microseconds, read as percentiles in milliseconds (the benchmarks).
pub struct Stat(hdrhistogram::Histogram<u64>);

impl Stat {
    pub fn new() -> Self {
        Stat(hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).unwrap())
    }
    pub fn record(&mut self, d: std::time::Duration) {
        self.0.saturating_record(d.as_micros().max(1) as u64);
    }
    pub fn p50_ms(&self) -> f64 {
        self.0.value_at_quantile(0.5) as f64 / 1000.0
    }
    pub fn p95_ms(&self) -> f64 {
        self.0.value_at_quantile(0.95) as f64 / 1000.0
    }
}
