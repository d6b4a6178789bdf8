//! The Control UI's and WebChat's API from outside: no token, a wrong token, a foreign page's
//! `Origin`, a DNS-rebound `Host`, a form post, a malformed session key, and a request to
//! "recreate" a container that is not a clawgate sandbox. Each is refused and nothing changes.

#[path = "../sandbox-worker/tests/common/mod.rs"]
mod common;
#[path = "../sandbox-worker/tests/fakes/mod.rs"]
mod fakes;
mod stack;

use std::process::Command;

use serde_json::json;
use stack::{spawn_stack, write_then_list, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_refuses_strangers_pages_and_foreign_containers() {
    if !common::docker_available() {
        return;
    }
    let stack = spawn_stack(write_then_list(), StackOptions::default()).await;
    let (base, token, http) = (&stack.base_url, stack.token(), &stack.http);
    let image = common::test_image();
    let bystander = format!(
        "not-clawgate-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let made = Command::new("docker")
        .args(["run", "-d", "--name", &bystander, image, "sleep", "600"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let get = |path: &str| http.get(format!("{base}{path}"));
    let post = |path: &str| http.post(format!("{base}{path}"));

    let no_token = get("/control/api/overview").send().await.unwrap().status();
    let wrong_token = get("/control/api/overview")
        .bearer_auth("x".repeat(64))
        .send()
        .await
        .unwrap()
        .status();
    let events_no_token = get("/webchat/events?conversation=c1&after=0")
        .send()
        .await
        .unwrap()
        .status();
    let foreign_origin = post("/control/api/sandbox-prune")
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status();
    let rebound_host = get("/control/api/overview")
        .bearer_auth(&token)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap()
        .status();
    let form_post = post("/control/api/dlq-discard")
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("messageId=x")
        .send()
        .await
        .unwrap()
        .status();
    let bad_key = get("/control/api/session?key=..%2F..%2Fetc%2Fpasswd")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    let foreign_container = post("/control/api/sandbox-recreate")
        .bearer_auth(&token)
        .json(&json!({ "container": bystander }))
        .send()
        .await
        .unwrap()
        .status();
    let unknown_field = post("/control/api/pairing-approve")
        .bearer_auth(&token)
        .json(&json!({ "channel": "telegram", "code": "X", "admin": true }))
        .send()
        .await
        .unwrap()
        .status();
    let still_there = Command::new("docker")
        .args(["inspect", "--format", "{{.State.Running}}", &bystander])
        .output()
        .unwrap();
    let _ = Command::new("docker")
        .args(["rm", "-f", &bystander])
        .output();

    assert_eq!(no_token, 401);
    assert_eq!(wrong_token, 401);
    assert_eq!(events_no_token, 401);
    assert_eq!(foreign_origin, 403);
    assert_eq!(rebound_host, 403);
    assert_eq!(form_post, 415);
    assert_eq!(bad_key, 400);
    assert_eq!(
        foreign_container, 404,
        "only clawgate sandboxes can be removed"
    );
    assert_eq!(String::from_utf8_lossy(&still_there.stdout).trim(), "true");
    assert_eq!(unknown_field, 400);
}
