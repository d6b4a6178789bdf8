//! The tools through the host backend (sandbox mode `off`), and what happens when the sandbox
//! is required but Docker cannot be reached. No Docker daemon needed.

use std::path::Path;

use infra::config::Config;
use infra::model::{Channel, SessionKey};
use sandbox_worker::sandbox::SandboxRuntime;
use sandbox_worker::tools::ToolBox;
use serde_json::{json, Value};

fn config(dir: &Path, mode: &str) -> Config {
    Config::parse(&format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ mode: "{mode}", workspaceRoot: "{}" }} }} }} }}"#,
        dir.join("ws").display(),
        dir.join("sbx").display()
    ))
    .unwrap()
}

fn session() -> SessionKey {
    SessionKey::dm("main", Channel::Telegram, "42")
}

#[tokio::test]
async fn host_tools_run_in_the_workspace_and_round_trip_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SandboxRuntime::new(None, dir.path().join("activity"));
    let tools =
        ToolBox::for_session(&runtime, &config(dir.path(), "off"), "main", &session()).await;

    let wrote = tools
        .run(
            "write",
            &json!({"path": "src/main.txt", "content": "alpha\nbeta\n"}),
        )
        .await;
    let edited = tools
        .run(
            "edit",
            &json!({"path": "src/main.txt", "oldText": "beta", "newText": "gamma"}),
        )
        .await;
    let patched = tools
        .run("apply_patch", &json!({"patch": "--- a/src/main.txt\n+++ b/src/main.txt\n@@ -1,2 +1,2 @@\n-alpha\n+ALPHA\n gamma\n"}))
        .await;
    let listed = tools
        .run(
            "exec",
            &json!({"command": "cat src/main.txt; pwd", "workdir": "."}),
        )
        .await;

    for out in [&wrote, &edited, &patched, &listed] {
        assert!(!out.is_error, "{}", out.output);
    }
    let report: Value = serde_json::from_str(&listed.output).unwrap();
    let ws = dir.path().join("ws").canonicalize().unwrap();
    assert_eq!(
        report["stdout"],
        format!("ALPHA\ngamma\n{}\n", ws.display())
    );
    assert!(tools.describe_backend().starts_with("host"));
}

#[tokio::test]
async fn host_tools_refuse_every_path_that_leaves_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SandboxRuntime::new(None, dir.path().join("activity"));
    let tools =
        ToolBox::for_session(&runtime, &config(dir.path(), "off"), "main", &session()).await;
    let ws = dir.path().join("ws");
    std::os::unix::fs::symlink("/etc/passwd", ws.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink(dir.path(), ws.join("up")).unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "do not read\n").unwrap();

    let attempts = [
        ("read", json!({"path": "../../etc/passwd"})),
        ("read", json!({"path": "/etc/passwd"})),
        ("read", json!({"path": "passwd-link"})),
        ("read", json!({"path": "up/secret.txt"})),
        ("write", json!({"path": "../escape.txt", "content": "x"})),
        ("write", json!({"path": "up/escape.txt", "content": "x"})),
        (
            "edit",
            json!({"path": "up/secret.txt", "oldText": "do", "newText": "did"}),
        ),
        (
            "apply_patch",
            json!({"patch": "--- a/../secret.txt\n+++ b/../secret.txt\n@@ -1 +1 @@\n-do not read\n+pwned\n"}),
        ),
        ("exec", json!({"command": "true", "workdir": "../"})),
    ];
    for (tool, input) in attempts {
        let out = tools.run(tool, &input).await;
        assert!(out.is_error, "{tool} {input} was allowed: {}", out.output);
        assert!(
            out.output.contains("outside the workspace"),
            "{tool}: {}",
            out.output
        );
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "do not read\n");
    assert!(!dir.path().join("escape.txt").exists());
}

#[tokio::test]
async fn docker_unreachable_fails_every_tool_naming_the_socket_and_never_runs_on_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("no-such-docker.sock");
    let runtime = SandboxRuntime::new(
        Some(socket.display().to_string()),
        dir.path().join("activity"),
    );
    let tools =
        ToolBox::for_session(&runtime, &config(dir.path(), "all"), "main", &session()).await;
    let marker = dir.path().join("ran-on-host");

    let exec = tools
        .run(
            "exec",
            &json!({"command": format!("touch {}", marker.display())}),
        )
        .await;
    let write = tools
        .run("write", &json!({"path": "f.txt", "content": "x"}))
        .await;

    for out in [&exec, &write] {
        assert!(out.is_error);
        assert!(
            out.output.contains(&socket.display().to_string()),
            "{}",
            out.output
        );
        assert!(
            out.output.contains("Docker is unreachable"),
            "{}",
            out.output
        );
    }
    assert!(!marker.exists(), "the command ran on the host");
    assert!(!dir.path().join("ws/f.txt").exists());
}

#[tokio::test]
async fn malformed_tool_input_is_an_error_for_the_model_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SandboxRuntime::new(None, dir.path().join("activity"));
    let tools =
        ToolBox::for_session(&runtime, &config(dir.path(), "off"), "main", &session()).await;

    for (tool, input) in [
        ("exec", json!({"cmd": "ls"})),
        ("exec", json!({"command": "env", "env": {"BAD-NAME": "x"}})),
        (
            "exec",
            json!({"command": "env", "env": {"CLAWGATE_EXEC_ID": "spoof"}}),
        ),
        ("read", json!({"path": 7})),
        ("edit", json!({"path": "f", "oldText": "", "newText": "x"})),
        ("no_such_tool", json!({})),
    ] {
        let out = tools.run(tool, &input).await;
        assert!(out.is_error, "{tool} {input}: {}", out.output);
    }
}

#[tokio::test]
async fn a_background_process_on_the_host_runs_in_the_workspace_and_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SandboxRuntime::new(None, dir.path().join("activity"));
    let tools =
        ToolBox::for_session(&runtime, &config(dir.path(), "off"), "main", &session()).await;

    let started = tools
        .run(
            "process",
            &json!({"action": "start", "command": "sleep 0.3; pwd; echo done"}),
        )
        .await;
    let id = serde_json::from_str::<Value>(&started.output).unwrap()["id"].clone();
    let waited = tools
        .run(
            "process",
            &json!({"action": "wait", "id": id, "timeout": 10}),
        )
        .await;
    let report: Value = serde_json::from_str(&waited.output).unwrap();

    assert!(!started.is_error, "{}", started.output);
    assert_eq!(report["state"], "exited with 0", "{report}");
    let ws = dir.path().join("ws").canonicalize().unwrap();
    assert_eq!(report["output"], format!("{}\ndone\n", ws.display()));
}
