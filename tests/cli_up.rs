//! `clawgate up` refusing to start: each problem is one line naming it and the fix, exit 1.

use std::path::Path;
use std::process::Command;

fn up(config_text: &str, args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let config = dir.join("clawgate.json5");
    std::fs::write(&config, config_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .arg("--config")
        .arg(&config)
        .arg("up")
        .args(args)
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    lines[0]
}

#[test]
fn a_broken_config_is_one_line_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    let (code, stderr) = up(
        r#"{ agents: { defaults: { sandbox: { mdoe: "all" } } } }"#,
        &["--port", "0", "--state-dir", state.to_str().unwrap()],
        dir.path(),
    );

    assert_eq!(code, Some(1));
    let line = one_line(&stderr);
    assert!(line.contains("agents.defaults.sandbox.mdoe"), "{line}");
    assert!(line.contains("clawgate config validate"), "{line}");
}

#[test]
fn a_port_in_use_is_one_line_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let state = dir.path().join("state");

    let (code, stderr) = up(
        "{}",
        &["--port", &port, "--state-dir", state.to_str().unwrap()],
        dir.path(),
    );

    assert_eq!(code, Some(1));
    let line = one_line(&stderr);
    assert!(line.contains(&port) && line.contains("--port"), "{line}");
}

#[test]
fn an_unwritable_state_dir_is_one_line_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // A path under a regular file cannot be a directory, even for root.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let state = file.join("state");

    let (code, stderr) = up(
        "{}",
        &["--port", "0", "--state-dir", state.to_str().unwrap()],
        dir.path(),
    );

    assert_eq!(code, Some(1));
    let line = one_line(&stderr);
    assert!(
        line.contains("not writable") && line.contains("--state-dir"),
        "{line}"
    );
}

#[test]
fn a_public_bind_without_a_gateway_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    let (code, stderr) = up(
        "{}",
        &[
            "--bind",
            "0.0.0.0",
            "--port",
            "0",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        dir.path(),
    );

    assert_eq!(code, Some(1));
    let line = one_line(&stderr);
    assert!(line.contains("gateway token"), "{line}");
}

#[test]
fn what_is_missing_is_listed_with_its_fix_and_up_still_starts() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clawgate.json5");
    std::fs::write(&config, "{}").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .arg("--config")
        .arg(&config)
        .args(["up", "--port", "0", "--state-dir"])
        .arg(dir.path().join("state"))
        // No model key, no Docker, no channels.
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no-docker.sock", dir.path().display()),
        )
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut report = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C to stop");
        report.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let report = report.join("\n");

    assert!(
        report.contains("clawgate is up: WebChat at http://127.0.0.1:"),
        "{report}"
    );
    let line = |needle: &str| {
        report
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{report}"))
            .to_string()
    };
    assert!(line("ANTHROPIC_API_KEY").contains('✗'));
    assert!(line("OPENAI_BASE_URL").contains('✗'));
    let docker = line("Docker");
    assert!(
        docker.contains('✗') && docker.contains("sandbox.mode"),
        "{docker}"
    );
    assert!(line("TELEGRAM_BOT_TOKEN").contains('✗'));
    assert!(line("SLACK_BOT_TOKEN").contains('✗'));
}

#[test]
fn the_state_directory_and_its_files_are_private() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("clawgate.json5");
    std::fs::write(
        &config,
        r#"{ agents: { defaults: { sandbox: { mode: "off" } } } }"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .arg("--config")
        .arg(&config)
        .args(["up", "--port", "0", "--state-dir"])
        .arg(&state)
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut printed = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "the state directory");
    for file in ["state.db", "queue.db", "gateway-token"] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    let token = std::fs::read_to_string(state.join("gateway-token")).unwrap();
    let shown: Vec<&String> = printed
        .iter()
        .filter(|l| l.contains(token.trim()))
        .collect();
    assert_eq!(
        shown.len(),
        1,
        "the token is printed once, in the page's address: {printed:?}"
    );
    assert!(shown[0].contains("/#token="), "{}", shown[0]);
}
