//! `clawgate config validate|show`, run as a user runs them: the real binary, a real file.

use std::process::Command;

fn clawgate(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    cmd.args(args)
        .env_remove("CLAWGATE_CONFIG")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("ANTHROPIC_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run clawgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawgate.json");
    std::fs::write(&path, text).unwrap();
    let path = path.to_string_lossy().into_owned();
    (dir, path)
}

#[test]
fn validate_accepts_the_documented_example() {
    let (_dir, path) = write_config(include_str!("../infra/fixtures/clawgate.example.json5"));

    let (code, stdout, _) = clawgate(&["config", "validate", "--config", &path], &[]);

    assert_eq!(code, 0);
    assert!(stdout.contains("is valid"));
    // The example lists one Telegram group and limits groups to one sender.
    assert!(
        stdout.contains("telegram groups: any group; in them senders 4242"),
        "{stdout}"
    );
    assert!(
        stdout.contains("slack groups: groups C024BE91L"),
        "{stdout}"
    );
}

#[test]
fn validate_lists_every_bad_key_with_its_path_and_exits_1() {
    let (_dir, path) = write_config(
        r#"{
          agents: { defaults: { sandbox: { mdoe: "all", scope: "galaxy" } } },
          queue: { backend: "kafka" },
        }"#,
    );

    let (code, _, stderr) = clawgate(&["config", "validate", "--config", &path], &[]);

    assert_eq!(code, 1);
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("agents.defaults.sandbox.mdoe: unknown key"),
        "{stderr}"
    );
    assert!(stderr.contains("agents.defaults.sandbox.scope"), "{stderr}");
    assert!(stderr.contains("queue.backend"), "{stderr}");
    assert!(
        stderr.contains("expected `sqlite` or `sqs`"),
        "allowed values are listed: {stderr}"
    );
}

#[test]
fn validate_reports_a_syntax_error_and_a_missing_file() {
    let (_dir, path) = write_config("{ agents: ");

    let (bad_syntax, _, syntax_err) = clawgate(&["config", "validate", "--config", &path], &[]);
    let (missing, _, missing_err) = clawgate(
        &["config", "validate", "--config", "/nonexistent/x.json"],
        &[],
    );

    assert_eq!((bad_syntax, missing), (1, 1));
    assert!(syntax_err.contains("not valid JSON5"), "{syntax_err}");
    assert!(missing_err.contains("/nonexistent/x.json"), "{missing_err}");
}

#[test]
fn show_prints_the_effective_config_with_secrets_redacted() {
    let (_dir, path) =
        write_config(r#"{ channels: { telegram: { botToken: "123:file-token" } } }"#);

    let (code, stdout, _) = clawgate(
        &["config", "show", "--config", &path],
        &[("ANTHROPIC_API_KEY", "sk-ant-very-secret")],
    );

    assert_eq!(code, 0);
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["channels"]["telegram"]["botToken"], "<redacted>");
    assert_eq!(
        shown["models"]["providers"]["anthropic"]["apiKey"],
        "<redacted>"
    );
    assert_eq!(
        shown["agents"]["defaults"]["sandbox"]["docker"]["network"],
        "none"
    );
    assert!(!stdout.contains("file-token") && !stdout.contains("very-secret"));
}
