//! `clawgate sandbox explain|exec|list|prune`, run as a user runs them.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

fn clawgate(home: &Path, config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("CLAWGATE_HOME", home)
        .env_remove("CLAWGATE_CONFIG")
        .output()
        .expect("run clawgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("clawgate.json");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn explain_says_where_a_session_runs_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        r#"{ agents: { defaults: { sandbox: { mode: "non-main", scope: "session" } } },
             tools: { sandbox: { tools: { allow: ["group:fs", "group:runtime"], deny: ["exec"] } } } }"#,
    );

    let (main_code, main, _) = clawgate(
        dir.path(),
        &config,
        &["sandbox", "explain", "--session", "agent:main:main"],
    );
    let (dm_code, dm, _) = clawgate(
        dir.path(),
        &config,
        &[
            "sandbox",
            "explain",
            "--session",
            "agent:main:telegram:dm:42",
        ],
    );

    assert_eq!((main_code, dm_code), (0, 0));
    assert!(main.contains("runs in:    the host"), "{main}");
    assert!(main.contains("is the agent's main session"), "{main}");
    assert!(dm.contains("runs in:    a Docker container"), "{dm}");
    assert!(
        dm.contains("container:  clawgate-sbx-agent-main-telegram-dm-42-"),
        "{dm}"
    );
    assert!(
        dm.contains("image:      clawgate-sandbox:bookworm-slim"),
        "{dm}"
    );
    assert!(dm.contains("network none, user 1000:1000"), "{dm}");
    assert!(dm.contains("exec         denied (by \"exec\")"), "{dm}");
    assert!(
        dm.contains("read         allowed (by \"group:fs\")"),
        "{dm}"
    );
}

#[test]
fn explain_refuses_a_malformed_session_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "{}");

    let (code, _, stderr) = clawgate(
        dir.path(),
        &config,
        &["sandbox", "explain", "--session", "agent:main"],
    );

    assert_eq!(code, 1);
    assert!(stderr.contains("invalid session key"), "{stderr}");
}

#[test]
fn exec_in_mode_off_runs_in_the_workspace_and_passes_the_exit_code_through() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let config = write(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ mode: "off" }} }} }} }}"#,
            ws.display()
        ),
    );

    let (code, stdout, _) = clawgate(
        dir.path(),
        &config,
        &[
            "sandbox",
            "exec",
            "--session",
            "agent:main:main",
            "--",
            "sh",
            "-c",
            "pwd; echo hi; exit 4",
        ],
    );
    // Each argument stays one word, as with `docker exec`: two spaces survive, `*` is not a glob.
    let (words_code, words, _) = clawgate(
        dir.path(),
        &config,
        &[
            "sandbox",
            "exec",
            "--session",
            "agent:main:main",
            "--",
            "printf",
            "[%s]",
            "a  b",
            "*",
            "$HOME",
        ],
    );

    assert_eq!(words_code, 0);
    assert_eq!(words, "[a  b][*][$HOME]");
    assert_eq!(code, 4);
    assert_eq!(
        stdout,
        format!("{}\nhi\n", ws.canonicalize().unwrap().display())
    );
}

#[test]
fn exec_then_list_then_prune_against_the_docker_daemon() {
    if !common::docker_available() {
        return;
    }
    let sb = common::Sandbox::new();
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ mode: "all", scope: "session",
             docker: {{ image: "{}", containerPrefix: "{}" }} }} }} }} }}"#,
        sb.workspace().display(),
        common::TEST_IMAGE,
        sb.prefix
    );
    let config = write(sb.dir.path(), &text);
    let home = sb.dir.path();

    let (exec_code, exec_out, exec_err) = clawgate(
        home,
        &config,
        &[
            "sandbox",
            "exec",
            "--session",
            "agent:main:slack:dm:U1",
            "--",
            "sh",
            "-c",
            "echo hi from $(id -u)",
        ],
    );
    let (_, one_two, _) = clawgate(
        home,
        &config,
        &[
            "sandbox",
            "exec",
            "--session",
            "agent:main:slack:dm:U1",
            "--",
            "sh",
            "-c",
            "echo one two",
        ],
    );
    let made = sb.containers();
    let (_, listed, _) = clawgate(home, &config, &["sandbox", "list"]);
    let (prune_code, pruned, _) = clawgate(home, &config, &["sandbox", "prune", "--all"]);

    assert_eq!(exec_code, 0, "{exec_err}");
    assert_eq!(exec_out, "hi from 1000\n");
    assert_eq!(one_two, "one two\n");
    assert_eq!(made.len(), 1, "{made:?}");
    let row = listed
        .lines()
        .find(|l| l.contains(&made[0]))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(row.starts_with("agent:main:slack:dm:U1"), "{row}");
    assert!(
        row.contains(common::TEST_IMAGE) && row.contains("running"),
        "{row}"
    );
    assert_eq!(prune_code, 0);
    assert_eq!(pruned, format!("removed {}\n", made[0]));
    assert!(sb.containers().is_empty());
}
