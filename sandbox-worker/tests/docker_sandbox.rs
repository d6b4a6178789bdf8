//! The Docker sandbox against the real daemon, through the same `ToolBox` the agent uses:
//! hardening seen from inside, limits that hold, timeouts that kill trees, capped output,
//! container reuse and recreation, prune, and the refusals.

mod common;

use std::time::{Duration, SystemTime};

use infra::model::{Channel, SessionKey};
use sandbox_worker::sandbox::SandboxPlan;
use sandbox_worker::tools::ToolBox;
use serde_json::{json, Value};

use common::{docker_available, file_uid, ExecPath, Sandbox};

/// Runs a hardening check twice: through the in-sandbox agent and through `docker exec` (the
/// path of containers made before the agent, or without it).
macro_rules! on_both_paths {
    ($check:ident) => {
        mod $check {
            #[tokio::test]
            async fn through_the_agent() {
                super::$check(super::ExecPath::Agent).await
            }
            #[tokio::test]
            async fn through_docker_exec() {
                super::$check(super::ExecPath::DockerExec).await
            }
        }
    };
}

fn dm(peer: &str) -> SessionKey {
    SessionKey::dm("main", Channel::Telegram, peer)
}

async fn exec(tools: &ToolBox, command: &str, timeout: u64) -> (Value, bool) {
    let out = tools
        .run("exec", &json!({ "command": command, "timeout": timeout }))
        .await;
    let report: Value = serde_json::from_str(&out.output)
        .unwrap_or_else(|_| panic!("not a report: {}", out.output));
    (report, out.is_error)
}

async fn the_container_is_hardened_as_seen_from_inside(path: ExecPath) {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("", "");
    let tools = ToolBox::for_session(&sb.runtime_on(path), &config, "main", &dm("1")).await;
    assert!(
        tools.describe_backend().contains(path.described_as()),
        "{}",
        tools.describe_backend()
    );

    let (report, failed) = exec(
        &tools,
        "echo net=$(ls /sys/class/net | tr '\\n' ' '); grep CapEff /proc/self/status; echo uid=$(id -u);\
         touch /rootfs-probe 2>/dev/null && echo root=rw || echo root=ro;\
         echo pids=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max);\
         echo mem=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes);\
         echo cpu=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us);\
         echo nofile=$(ulimit -n)/$(ulimit -Hn); echo pid1=$(cat /proc/1/comm)",
        30,
    )
    .await;

    assert!(!failed, "{report}");
    let stdout = report["stdout"].as_str().unwrap();
    for expected in [
        "net=lo\n",
        "CapEff:\t0000000000000000",
        "uid=1000",
        "root=ro",
        "pids=64",
        "mem=67108864",
        "pid1=docker-init",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("cpu=100000"), "one CPU of quota: {stdout}");
    // The hard limit is the cap. Through the agent (the container's own process, which got the
    // configured limits) the soft one is as configured too. Through `docker exec` on Docker
    // 20.10 it is now and then raised to the hard limit (runc, a Go program, raises its own soft
    // limit and an exec's process can inherit it): seen as 2048/2048 in CI runs.
    let nofile = match path {
        ExecPath::Agent => vec!["nofile=1024/2048"],
        ExecPath::DockerExec => vec!["nofile=1024/2048", "nofile=2048/2048"],
    };
    assert!(
        nofile.iter().any(|n| stdout.contains(n)),
        "nofile not one of {nofile:?} in:\n{stdout}"
    );
}
on_both_paths!(the_container_is_hardened_as_seen_from_inside);

async fn a_fork_loop_hits_the_pids_limit_and_the_sandbox_stays_usable(path: ExecPath) {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let tools =
        ToolBox::for_session(&sb.runtime_on(path), &sb.config("", ""), "main", &dm("2")).await;

    let (report, failed) = exec(&tools, "while true; do sleep 100 & done", 10).await;
    let (after, after_failed) = exec(
        &tools,
        "echo alive; ps -o args | grep -c '^sleep 100' || true",
        10,
    )
    .await;

    assert!(failed, "{report}");
    assert!(
        report["stderr"].as_str().unwrap().contains("fork"),
        "the loop met the limit: {report}"
    );
    assert!(!after_failed, "{after}");
    assert!(
        after["stdout"].as_str().unwrap().starts_with("alive\n0"),
        "no sleeper survived: {after}"
    );
}
on_both_paths!(a_fork_loop_hits_the_pids_limit_and_the_sandbox_stays_usable);

async fn a_memory_hog_is_killed_and_reported_while_the_sandbox_carries_on(path: ExecPath) {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let tools =
        ToolBox::for_session(&sb.runtime_on(path), &sb.config("", ""), "main", &dm("3")).await;

    let (report, failed) = exec(
        &tools,
        "a=$(yes | head -c 200000000); echo survived ${#a}",
        60,
    )
    .await;
    let (after, after_failed) = exec(&tools, "echo fine", 10).await;

    assert!(failed, "{report}");
    assert_eq!(report["exit_code"], 137, "{report}");
    assert!(
        report["note"].as_str().unwrap().contains("memory"),
        "{report}"
    );
    assert!(!report["stdout"].as_str().unwrap().contains("survived"));
    assert!(!after_failed && after["stdout"] == "fine\n", "{after}");
}
on_both_paths!(a_memory_hog_is_killed_and_reported_while_the_sandbox_carries_on);

async fn a_timeout_kills_the_command_with_its_children(path: ExecPath) {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let tools =
        ToolBox::for_session(&sb.runtime_on(path), &sb.config("", ""), "main", &dm("4")).await;

    let (report, failed) = exec(
        &tools,
        "(sleep 2; touch /workspace/child-alive) & setsid sleep 60 & sleep 60",
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ps, _) = exec(&tools, "ps -o args | grep -c '^sleep 60' || true", 10).await;

    assert!(failed && report["timed_out"] == true, "{report}");
    assert!(report["note"].as_str().unwrap().contains("timeout"));
    assert!(
        !sb.workspace().join("child-alive").exists(),
        "a child outlived the timeout"
    );
    assert_eq!(ps["stdout"], "0\n", "even the setsid child is gone: {ps}");
}
on_both_paths!(a_timeout_kills_the_command_with_its_children);

async fn ten_megabytes_of_output_come_back_capped_with_the_real_exit_code(path: ExecPath) {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let tools =
        ToolBox::for_session(&sb.runtime_on(path), &sb.config("", ""), "main", &dm("5")).await;

    let (report, failed) = exec(
        &tools,
        "yes 0123456789 | head -c 10000000; echo tail-marker; exit 3",
        60,
    )
    .await;

    assert!(failed);
    assert_eq!(report["exit_code"], 3);
    let stdout = report["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("0123456789\n0123456789\n"));
    assert!(stdout.ends_with("tail-marker\n"), "the tail is kept");
    assert!(stdout.contains("bytes omitted"));
    assert!(stdout.len() < 40 * 1024, "{}", stdout.len());
}
on_both_paths!(ten_megabytes_of_output_come_back_capped_with_the_real_exit_code);

#[tokio::test]
async fn a_restarted_worker_reuses_the_labelled_container() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("", "setupCommand: \"echo ran >> /workspace/setup.log\",");
    let plan = SandboxPlan::for_session(&config, "main", &dm("6"));

    let first = sb
        .runtime()
        .docker(plan.mode)
        .await
        .unwrap()
        .ensure(&plan)
        .await
        .unwrap();
    // A new runtime is what a restarted worker has: nothing in memory.
    let second = sb
        .runtime()
        .docker(plan.mode)
        .await
        .unwrap()
        .ensure(&plan)
        .await
        .unwrap();

    assert!(first.created && !second.created);
    assert_eq!(first.id, second.id);
    assert_eq!(
        std::fs::read_to_string(sb.workspace().join("setup.log")).unwrap(),
        "ran\n",
        "setupCommand ran once"
    );
    assert_eq!(
        file_uid(&sb.workspace()),
        1000,
        "the workspace belongs to the container user"
    );
}

#[tokio::test]
async fn a_config_change_recreates_the_idle_container() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let before = SandboxPlan::for_session(&sb.config("", ""), "main", &dm("7"));
    let after = SandboxPlan::for_session(
        &sb.config("", "env: { MODE: \"changed\" },"),
        "main",
        &dm("7"),
    );
    let sandboxes = sb.runtime().docker(before.mode).await.unwrap();

    let old = sandboxes.ensure(&before).await.unwrap();
    let new = sandboxes.ensure(&after).await.unwrap();

    assert_eq!(before.container_name, after.container_name);
    assert_ne!(old.id, new.id);
    assert!(new.created);
    assert_eq!(
        sb.containers(),
        vec![before.container_name.clone()],
        "the old one is gone"
    );
}

#[tokio::test]
async fn a_failing_setup_command_leaves_no_container() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let plan = SandboxPlan::for_session(
        &sb.config("", "setupCommand: \"exit 9\","),
        "main",
        &dm("8"),
    );

    let err = sb
        .runtime()
        .docker(plan.mode)
        .await
        .unwrap()
        .ensure(&plan)
        .await
        .unwrap_err();

    assert!(err.to_string().contains("setup command failed"), "{err}");
    assert!(sb.containers().is_empty());
}

#[tokio::test]
async fn prune_removes_what_is_idle_or_old_and_nothing_else() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("", "");
    let idle = SandboxPlan::for_session(&config, "main", &dm("idle"));
    let fresh = SandboxPlan::for_session(&config, "main", &dm("fresh"));
    let sandboxes = sb.runtime().docker(idle.mode).await.unwrap();
    sandboxes.ensure(&idle).await.unwrap();
    sandboxes.ensure(&fresh).await.unwrap();
    let bystander = format!("{}bystander", sb.prefix);
    let status = std::process::Command::new("docker")
        .args(["create", "--name", &bystander, common::TEST_IMAGE, "true"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(sb.dir.path().join("activity").join(&idle.container_name))
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let (hour, month) = (Duration::from_secs(3600), Duration::from_secs(30 * 86400));

    let mine = Some(sb.prefix.as_str());
    let by_idle = sandboxes
        .prune(mine, hour, month, SystemTime::now(), false)
        .await
        .unwrap();
    let in_two_days = SystemTime::now() + Duration::from_secs(2 * 86400);
    let by_age = sandboxes
        .prune(mine, month, Duration::from_secs(86400), in_two_days, false)
        .await
        .unwrap();

    assert_eq!(by_idle, vec![idle.container_name.clone()]);
    assert_eq!(by_age, vec![fresh.container_name.clone()]);
    assert_eq!(
        sb.containers(),
        vec![bystander],
        "a container without the label is never touched"
    );
}

#[tokio::test]
async fn file_tools_refuse_paths_that_leave_the_workspace_in_the_docker_backend() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let tools = ToolBox::for_session(&sb.runtime(), &sb.config("", ""), "main", &dm("9")).await;
    // The container makes a link that, seen from the host side of the mount, points out.
    let (made, _) = exec(
        &tools,
        "ln -s /etc/passwd /workspace/passwd-link && ln -s /etc /workspace/etc-link",
        10,
    )
    .await;
    assert_eq!(made["exit_code"], 0, "{made}");

    let attempts = [
        ("read", json!({"path": "../../etc/passwd"})),
        ("read", json!({"path": "/etc/passwd"})),
        ("read", json!({"path": "passwd-link"})),
        ("write", json!({"path": "etc-link/pwned", "content": "x"})),
        (
            "write",
            json!({"path": "/workspace/../etc/pwned", "content": "x"}),
        ),
        (
            "edit",
            json!({"path": "passwd-link", "oldText": "root", "newText": "toor"}),
        ),
        (
            "apply_patch",
            json!({"patch": "--- /dev/null\n+++ b/../../tmp/pwned\n@@ -0,0 +1 @@\n+x\n"}),
        ),
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
    assert!(!std::path::Path::new("/etc/pwned").exists());
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[tokio::test]
async fn files_written_by_tools_are_usable_by_the_container_user() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let tools = ToolBox::for_session(&sb.runtime(), &sb.config("", ""), "main", &dm("10")).await;

    let wrote = tools
        .run(
            "write",
            &json!({"path": "notes/todo.txt", "content": "one\n"}),
        )
        .await;
    let (report, failed) = exec(
        &tools,
        "echo two >> notes/todo.txt && cat notes/todo.txt && stat -c %u notes",
        10,
    )
    .await;

    assert!(!wrote.is_error, "{}", wrote.output);
    assert!(!failed, "{report}");
    assert_eq!(report["stdout"], "one\ntwo\n1000\n");
}

#[tokio::test]
async fn a_denied_tool_never_runs_whatever_the_model_asks() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let mut config = sb.config("", "");
    config.tools.sandbox.tools.deny.push("exec".into());
    let tools = ToolBox::for_session(&sb.runtime(), &config, "main", &dm("11")).await;

    let out = tools
        .run("EXEC", &json!({"command": "touch /workspace/pwned"}))
        .await;

    assert!(out.is_error);
    assert!(out.output.contains("not allowed"), "{}", out.output);
    assert!(!sb.workspace().join("pwned").exists());
    assert!(
        tools.specs().iter().all(|s| s.name != "exec"),
        "a denied tool is not offered either"
    );
}

#[tokio::test]
async fn a_read_only_workspace_is_read_only_inside_and_out() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.workspace()).unwrap();
    std::fs::write(sb.workspace().join("given.txt"), "data\n").unwrap();
    let tools = ToolBox::for_session(
        &sb.runtime(),
        &sb.config("workspaceAccess: \"ro\",", ""),
        "main",
        &dm("12"),
    )
    .await;

    let (report, failed) = exec(&tools, "cat given.txt; touch new.txt", 10).await;
    let wrote = tools
        .run("write", &json!({"path": "x.txt", "content": "y"}))
        .await;

    assert!(failed && report["stdout"] == "data\n", "{report}");
    assert!(
        report["stderr"].as_str().unwrap().contains("Read-only"),
        "{report}"
    );
    assert!(wrote.is_error && wrote.output.contains("read-only"));
}

#[tokio::test]
async fn the_prune_loop_removes_an_idle_container_on_its_own() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("prune: { idleHours: 0.5, maxAgeDays: 7 },", "");
    let plan = SandboxPlan::for_session(&config, "main", &dm("loop"));
    let sandboxes = sb.runtime().docker(plan.mode).await.unwrap();
    sandboxes.ensure(&plan).await.unwrap();
    std::fs::File::options()
        .write(true)
        .open(sb.dir.path().join("activity").join(&plan.container_name))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();

    let task =
        sandboxes.spawn_prune_loop(sb.prefix.clone(), &plan.prune, Duration::from_millis(100));
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if sb.containers().is_empty() {
            gone = true;
            break;
        }
    }
    task.abort();

    assert!(gone, "the loop did not prune the idle container");
}

#[tokio::test]
async fn a_build_from_a_base_the_daemon_cannot_have_fails_naming_the_fix() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let docker = sb
        .runtime()
        .docker(infra::config::SandboxMode::All)
        .await
        .expect("docker");
    let tag = format!("clawgate-test/never-built:{}", sb.prefix.trim_matches('-'));

    let built = docker
        .build_image(&tag, "clawgate-test/no-such-base:none", |_| {})
        .await;

    let message = built.expect_err("no such base").to_string();
    assert!(
        message.contains("clawgate-test/no-such-base:none"),
        "{message}"
    );
    assert!(message.contains("--base IMAGE"), "{message}");
    assert_eq!(docker.image_status(&tag).await.expect("inspect"), None);
}

#[tokio::test]
async fn a_missing_image_names_the_command_that_builds_it() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let mut plan_config = sb.config("", "");
    plan_config.agents.defaults.sandbox.docker.image = "clawgate-test/absent:none".into();
    let tools = ToolBox::for_session(&sb.runtime(), &plan_config, "main", &dm("u-missing")).await;

    let out = tools
        .run("exec", &json!({ "command": "true", "timeout": 5 }))
        .await;

    assert!(out.is_error);
    assert!(
        out.output
            .contains("clawgate sandbox build --tag clawgate-test/absent:none"),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn past_the_cap_the_least_recently_used_idle_container_goes_and_comes_back_fresh() {
    if !docker_available() {
        return;
    }
    let sb = Sandbox::new();
    let config = sb.config("prune: { maxContainers: 2 },", "");
    let runtime = sb.runtime();
    let name = |peer: &str| SandboxPlan::for_session(&config, "main", &dm(peer)).container_name;
    let open = |peer: &'static str| {
        let (runtime, config) = (&runtime, &config);
        async move { ToolBox::for_session(runtime, config, "main", &dm(peer)).await }
    };
    let a = open("lru-a").await;
    exec(&a, "echo kept > /workspace/lru-note", 30).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    open("lru-b").await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    // A third session: the cap is 2, and `lru-a` is the least recently used.
    open("lru-c").await;
    let after_c = sb.containers();
    // `lru-a` again: a fresh container over the same workspace, and now `lru-b` goes.
    let a_again = open("lru-a").await;
    let (report, failed) = exec(&a_again, "cat /workspace/lru-note", 30).await;
    let after_a = sb.containers();

    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(after_c), sorted(vec![name("lru-b"), name("lru-c")]));
    assert!(!failed, "{report}");
    assert_eq!(
        report["stdout"], "kept\n",
        "the workspace outlived the container"
    );
    assert_eq!(sorted(after_a), sorted(vec![name("lru-a"), name("lru-c")]));
}
