//! `clawgate pairing list|approve`, against the SQLite state a worker writes.

use std::process::Command;
use std::time::Duration;

use infra::store::sqlite::SqliteStore;
use infra::store::SenderStore;

fn clawgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .env_remove("CLAWGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_pending_code_is_listed_approved_once_and_its_sender_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clawgate.json");
    std::fs::write(&config, "{}").unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let request = store
        .request_pairing(
            "telegram",
            "default",
            "12345",
            Some("Ada"),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let (cfg, state) = (config.to_str().unwrap(), dir.path().to_str().unwrap());

    let (list_code, listed, _) = clawgate(&[
        "--config",
        cfg,
        "pairing",
        "--state-dir",
        state,
        "list",
        "telegram",
    ]);
    let lower = request.code.to_lowercase();
    let (ok_code, approved, _) = clawgate(&[
        "--config",
        cfg,
        "pairing",
        "--state-dir",
        state,
        "approve",
        "telegram",
        &lower,
    ]);
    let (again_code, _, again_err) = clawgate(&[
        "--config",
        cfg,
        "pairing",
        "--state-dir",
        state,
        "approve",
        "telegram",
        &lower,
    ]);

    assert_eq!(list_code, 0);
    assert!(
        listed.starts_with(&format!("{}  12345 Ada", request.code)),
        "{listed}"
    );
    assert_eq!(ok_code, 0);
    assert!(approved.contains("approved 12345 Ada"), "{approved}");
    assert_eq!(again_code, 1, "a code works once");
    assert!(again_err.contains("no pending request"), "{again_err}");
    assert!(store
        .is_allowed("telegram", "default", "12345")
        .await
        .unwrap());
}
