//! The in-sandbox agent against the real daemon, through the `ToolBox` the agent loop uses:
//! the sandbox attacking its own agent (killing it, replacing its socket with a link to a host
//! socket), the file tools running as the sandbox user inside the container, and `/stop`.

mod common;

use std::time::{Duration, Instant};

use infra::model::{Channel, SessionKey};
use sandbox_worker::sandbox::Cancel;
use sandbox_worker::tools::ToolBox;
use sandbox_worker::web::egress::EgressProxy;
use sandbox_worker::web::guard::EgressPolicy;
use serde_json::{json, Value};

use common::{docker_available, ExecPath, Sandbox};

fn dm(peer: &str) -> SessionKey {
    SessionKey::dm("main", Channel::Telegram, peer)
}

async fn exec(tools: &ToolBox, command: &str) -> Value {
    let out = tools
        .run("exec", &json!({ "command": command, "timeout": 20 }))
        .await;
    serde_json::from_str(&out.output).unwrap_or_else(|_| panic!("not a report: {}", out.output))
}

#[tokio::test]
async fn a_command_that_kills_the_agent_costs_that_call_and_not_the_session() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let tools = ToolBox::for_session(&sb.runtime(), &sb.config("", ""), "main", &dm("a1")).await;
    let kept = exec(&tools, "echo kept > /workspace/kept.txt").await;
    assert_eq!(kept["exit_code"], 0, "{kept}");

    // The agent is the command's grandparent: `killall` takes it by name.
    let _ = tools
        .run("exec", &json!({ "command": "killall -9 agent; sleep 1" }))
        .await;
    let after = exec(&tools, "cat /workspace/kept.txt").await;

    assert_eq!(after["exit_code"], 0, "{after}");
    assert_eq!(
        after["stdout"], "kept\n",
        "same workspace, agent back: {after}"
    );
}

#[tokio::test]
async fn a_socket_swapped_for_a_link_to_a_host_socket_is_never_followed() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let tools = ToolBox::for_session(&sb.runtime(), &sb.config("", ""), "main", &dm("a2")).await;
    // A host socket the sandbox would like the worker to talk to; it counts connections.
    let host = tempfile::tempdir().unwrap();
    let canary = host.path().join("canary.sock");
    let listener = std::os::unix::net::UnixListener::bind(&canary).unwrap();
    listener.set_nonblocking(true).unwrap();

    let swap = exec(
        &tools,
        &format!(
            "rm -f /.clawgate/run/agent.sock && ln -s {} /.clawgate/run/agent.sock && echo swapped",
            canary.display()
        ),
    )
    .await;
    let after = exec(&tools, "echo answered").await;

    assert_eq!(swap["stdout"], "swapped\n", "{swap}");
    assert_eq!(
        after["stdout"], "answered\n",
        "the container was restarted and its agent came back: {after}"
    );
    assert!(
        listener.accept().is_err(),
        "the worker never connected to the host socket the link named"
    );
}

#[tokio::test]
async fn the_file_tools_run_inside_the_container_as_the_sandbox_user() {
    if !docker_available() {
        return;
    }
    // A workspace file only root can read: the worker (root here) could, the sandbox user
    // cannot. Through the agent the tools have the sandbox user's rights; without it (host
    // side) they have the worker's.
    for (path, peer) in [(ExecPath::Agent, "a3"), (ExecPath::DockerExec, "a4")] {
        let sb = Sandbox::new();
        let tools =
            ToolBox::for_session(&sb.runtime_on(path), &sb.config("", ""), "main", &dm(peer)).await;
        let secret = sb.workspace().join("root-only.txt");
        std::fs::write(&secret, "for root").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();

        let read = tools.run("read", &json!({"path": "root-only.txt"})).await;
        let written = tools
            .run(
                "write",
                &json!({"path": "made/by/tool.txt", "content": "hi"}),
            )
            .await;

        match path {
            ExecPath::Agent => assert!(
                read.is_error && read.output.contains("ermission denied"),
                "{read:?}"
            ),
            ExecPath::DockerExec => assert!(!read.is_error && read.output.contains("for root")),
        }
        assert!(!written.is_error, "{written:?}");
        assert_eq!(
            common::file_uid(&sb.workspace().join("made/by/tool.txt")),
            1000
        );
    }
}

#[tokio::test]
async fn stop_kills_a_running_command_through_the_agent_and_keeps_its_output() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let cancel = Cancel::default();
    let tools = ToolBox::for_session(&sb.runtime(), &sb.config("", ""), "main", &dm("a5"))
        .await
        .with_cancel(cancel.clone());
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
    });

    let started = Instant::now();
    let report = exec(&tools, "echo working; sleep 30; echo never").await;
    stopper.await.unwrap();
    // The cancel stays set for that box (the job is stopped); look with a fresh one.
    let look = ToolBox::for_session(&sb.runtime(), &sb.config("", ""), "main", &dm("a5")).await;
    let ps = exec(&look, "ps -o args | grep -c '^sleep 30' || true").await;

    assert_eq!(report["timed_out"], true, "{report}");
    assert_eq!(report["stdout"], "working\n", "{report}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ps["stdout"], "0\n", "the sleeper is gone: {ps}");
}

/// The running pooled containers of this test (label `clawgate.pool`).
fn pooled(sb: &Sandbox) -> Vec<String> {
    sb.containers_where(&["--filter", "label=clawgate.pool"])
}

async fn wait_for_pool(sb: &Sandbox, size: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names = pooled(sb);
        if names.len() >= size || Instant::now() > deadline {
            return names;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_new_session_takes_a_warm_container_and_the_pool_refills() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("warmPool: 2, workspaceAccess: \"none\",", "");
    let runtime = sb.runtime();
    let first = ToolBox::for_session(&runtime, &config, "main", &dm("p1")).await;
    assert_eq!(exec(&first, "echo one").await["stdout"], "one\n");
    let warm = wait_for_pool(&sb, 2).await;
    assert_eq!(warm.len(), 2, "the first use filled the pool: {warm:?}");

    let session = dm("p2");
    let plan = sandbox_worker::sandbox::SandboxPlan::for_session(&config, "main", &session);
    assert_eq!(plan.workspace_access, infra::config::WorkspaceAccess::None);
    let second = ToolBox::for_session(&runtime, &config, "main", &session).await;
    let wrote = exec(&second, "echo mine > /workspace/p2.txt && echo ok").await;

    assert_eq!(wrote["stdout"], "ok\n", "{wrote}");
    let names = sb.containers();
    assert!(names.contains(&plan.container_name), "{names:?}");
    let taken: Vec<_> = warm.iter().filter(|n| !names.contains(n)).collect();
    assert_eq!(
        taken.len(),
        1,
        "one pooled container became the session's: {names:?}"
    );
    assert_eq!(
        std::fs::read_to_string(plan.workspace.join("p2.txt")).unwrap(),
        "mine\n",
        "the claimed container mounts the session's own scratch workspace"
    );
    assert_eq!(wait_for_pool(&sb, 2).await.len(), 2, "refilled");
}

#[tokio::test]
async fn a_session_with_files_of_its_own_never_takes_a_warm_container() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("warmPool: 1, workspaceAccess: \"none\",", "");
    let runtime = sb.runtime();
    let first = ToolBox::for_session(&runtime, &config, "main", &dm("q1")).await;
    assert_eq!(exec(&first, "echo one").await["stdout"], "one\n");
    let warm = wait_for_pool(&sb, 1).await;
    assert_eq!(warm.len(), 1);
    // A session whose container was pruned: its scratch workspace is still there.
    let session = dm("q2");
    let plan = sandbox_worker::sandbox::SandboxPlan::for_session(&config, "main", &session);
    std::fs::create_dir_all(&plan.workspace).unwrap();
    std::fs::write(plan.workspace.join("old.txt"), "from before").unwrap();

    let tools = ToolBox::for_session(&runtime, &config, "main", &session).await;
    let read = exec(&tools, "cat /workspace/old.txt").await;

    assert_eq!(read["stdout"], "from before", "{read}");
    assert!(
        pooled(&sb).contains(&warm[0]),
        "the pooled container was left alone: {:?} of {:?}",
        pooled(&sb),
        sb.containers()
    );
}

fn started_at(name: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.StartedAt}}", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn another_worker_with_its_own_state_dir_finds_the_agent_by_its_label() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("", "");
    let session = dm("w1");
    let name =
        sandbox_worker::sandbox::SandboxPlan::for_session(&config, "main", &session).container_name;
    let first = ToolBox::for_session(&sb.runtime(), &config, "main", &session).await;
    assert_eq!(exec(&first, "echo first").await["stdout"], "first\n");
    let started = started_at(&name);

    let elsewhere = tempfile::tempdir().unwrap();
    let other =
        sandbox_worker::sandbox::SandboxRuntime::new(None, elsewhere.path().join("activity"))
            .with_agent(Some(common::agent_binary()));
    let second = ToolBox::for_session(&other, &config, "main", &session).await;
    let out = exec(&second, "echo second").await;

    assert_eq!(out["stdout"], "second\n", "{out}");
    assert!(second.describe_backend().contains("its agent"));
    assert_eq!(
        started_at(&name),
        started,
        "the container was not restarted"
    );
}

#[tokio::test]
async fn concurrent_calls_in_one_container_all_answer_without_a_restart() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("", "");
    let session = dm("c1");
    let name =
        sandbox_worker::sandbox::SandboxPlan::for_session(&config, "main", &session).container_name;
    let tools =
        std::sync::Arc::new(ToolBox::for_session(&sb.runtime(), &config, "main", &session).await);
    assert_eq!(exec(&tools, "echo warm").await["stdout"], "warm\n");
    let started = started_at(&name);

    let mut calls = Vec::new();
    for i in 0..40 {
        let tools = tools.clone();
        calls.push(tokio::spawn(async move {
            let out = exec(&tools, &format!("echo {i}")).await;
            (i, out)
        }));
        if i % 4 == 3 {
            for call in calls.drain(..) {
                let (i, out) = call.await.unwrap();
                assert_eq!(out["stdout"], format!("{i}\n"), "{out}");
            }
        }
    }

    assert_eq!(
        started_at(&name),
        started,
        "the container was not restarted"
    );
}

#[tokio::test]
async fn a_container_whose_socket_directory_is_gone_is_made_again() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("", "");
    let session = dm("o1");
    let name =
        sandbox_worker::sandbox::SandboxPlan::for_session(&config, "main", &session).container_name;
    let first = ToolBox::for_session(&sb.runtime(), &config, "main", &session).await;
    assert_eq!(exec(&first, "echo first").await["stdout"], "first\n");
    let before = sb.container_id(&name);
    let label = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{index .Config.Labels \"clawgate.agent\"}}",
            &name,
        ])
        .output()
        .unwrap();
    let run_dir = String::from_utf8_lossy(&label.stdout).trim().to_string();
    assert!(run_dir.ends_with(&format!(".agent/{name}")), "{run_dir}");
    std::fs::remove_dir_all(&run_dir).unwrap();

    let again = ToolBox::for_session(&sb.runtime(), &config, "main", &session).await;
    let out = exec(&again, "echo again").await;

    assert_eq!(out["stdout"], "again\n", "{out}");
    assert_ne!(sb.container_id(&name), before, "a new container");
}

#[tokio::test]
async fn an_egress_sandbox_reaches_an_allowed_host_through_the_proxy_and_nothing_else() {
    if !docker_available() {
        return;
    }
    // Arrange: a page on the host's loopback, which only the tests' exception lets the proxy
    // reach, and a sandbox in the egress mode (no network; its agent relays to the proxy).
    let app = axum::Router::new().route(
        "/page",
        axum::routing::get(|| async { "hello through the proxy" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sb = Sandbox::new();
    let runtime = sb
        .runtime_on(ExecPath::Agent)
        .with_egress(EgressProxy::new(EgressPolicy {
            allow_loopback: true,
            deny_domains: vec!["denied.test".into()],
            ..Default::default()
        }));
    let config = sb.config("", r#"network: "egress","#);
    let tools = ToolBox::for_session(&runtime, &config, "main", &dm("e1")).await;

    // Act
    let allowed = exec(&tools, &format!("wget -q -O- http://localhost:{port}/page")).await;
    let denied = exec(&tools, "wget -q -O- http://denied.test/ 2>&1").await;
    let metadata = exec(
        &tools,
        "wget -q -O- http://169.254.169.254/latest/meta-data/ 2>&1",
    )
    .await;
    let around = exec(
        &tools,
        &format!("wget -q -Y off -O- http://127.0.0.1:{port}/page 2>&1"),
    )
    .await;

    // Assert
    assert_eq!(allowed["stdout"], "hello through the proxy", "{allowed}");
    assert_ne!(denied["exit_code"], 0);
    let said = denied["stdout"].as_str().unwrap_or("");
    assert!(
        said.contains("clawgate egress") && said.contains("denyDomains"),
        "{denied}"
    );
    assert_ne!(metadata["exit_code"], 0);
    assert!(
        metadata["stdout"]
            .as_str()
            .unwrap_or("")
            .contains("169.254.169.254"),
        "{metadata}"
    );
    assert_ne!(around["exit_code"], 0, "no way out but the proxy: {around}");
    let network = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.HostConfig.NetworkMode}}"])
        .arg(&sb.containers()[0])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&network.stdout).trim(), "none");
}

#[tokio::test]
async fn an_egress_sandbox_without_the_agent_gets_no_tools() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let runtime = sb
        .runtime_on(ExecPath::DockerExec)
        .with_egress(EgressProxy::new(EgressPolicy::default()));
    let config = sb.config("", r#"network: "egress","#);
    let tools = ToolBox::for_session(&runtime, &config, "main", &dm("e2")).await;

    let out = tools.run("exec", &json!({"command": "echo hi"})).await;

    assert!(
        out.is_error && out.output.contains("egress"),
        "{}",
        out.output
    );
}
