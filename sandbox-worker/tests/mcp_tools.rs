//! MCP tools against a fake streamable-HTTP MCP server on loopback (real HTTP, JSON-RPC, the
//! session header): tools listed under `mcp__<server>__`, a call's result marked untrusted, a
//! tool-level error kept an error, and the egress guard between the worker and the server; and
//! a stdio server (busybox sh) started inside a real Docker sandbox through its agent.

mod common;
mod fakes;

use fakes::mcp::FakeMcp;
use infra::config::{Config, WebToolsConfig};
use sandbox_worker::tools::mcp::{McpServers, McpTools};
use sandbox_worker::tools::{ExtraTools, ToolBox};
use serde_json::json;

fn servers(url: &str, allow_loopback: bool) -> McpServers {
    let config = Config::parse(&format!(
        r#"{{ mcp: {{ servers: {{ calc: {{ url: "{url}", timeoutSeconds: 5 }} }} }} }}"#
    ))
    .unwrap();
    McpServers::from_config(&config.mcp, &WebToolsConfig::default(), allow_loopback)
        .unwrap()
        .expect("one server")
}

#[tokio::test]
async fn a_server_s_tools_are_offered_by_prefix_and_a_call_s_result_comes_back_marked() {
    let server = FakeMcp::start().await;
    let tools = McpTools::for_job(servers(&server.url, true).into(), None).await;

    let names: Vec<String> = tools.specs().iter().map(|s| s.name.to_string()).collect();
    let added = tools
        .run("mcp__calc__add", &json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    let failed = tools.run("mcp__calc__fail", &json!({})).await.unwrap();
    let bad = tools
        .run("mcp__calc__add", &json!({"a": "two"}))
        .await
        .unwrap();
    let elsewhere = tools.run("exec", &json!({"command": "ls"})).await;

    assert_eq!(names, ["mcp__calc__add", "mcp__calc__fail"]);
    assert!(!added.is_error, "{}", added.output);
    assert_eq!(
        added.output,
        "<<<EXTERNAL_UNTRUSTED_CONTENT source=mcp:calc>>>\n42\n<<<END_EXTERNAL_UNTRUSTED_CONTENT>>>"
    );
    assert!(failed.is_error && failed.output.contains("failed on purpose"));
    assert!(
        bad.is_error && bad.output.contains("a and b must be numbers"),
        "{}",
        bad.output
    );
    assert!(elsewhere.is_none(), "not an MCP tool");
    assert_eq!(server.calls().len(), 3);
    assert_eq!(
        server.calls()[0],
        ("add".to_string(), json!({"a": 2, "b": 40}))
    );
}

#[tokio::test]
async fn a_server_on_loopback_is_refused_by_the_egress_guard_and_offers_nothing() {
    let server = FakeMcp::start().await;

    let tools = McpTools::for_job(servers(&server.url, false).into(), None).await;
    let call = tools.run("mcp__calc__add", &json!({"a": 1, "b": 1})).await;

    assert!(tools.specs().is_empty());
    assert!(call.is_none());
    assert!(server.calls().is_empty());
}

#[test]
fn a_server_needs_a_url_or_a_command_and_not_both() {
    let config = Config::parse(
        r#"{ mcp: { servers: { both: { url: "https://x.test/mcp", command: "npx" }, neither: {} } } }"#,
    )
    .unwrap();
    let message = format!("{:?}", config.validate().expect_err("refused"));
    assert!(
        message.contains("mcp.servers.both") && message.contains("not both"),
        "{message}"
    );
    assert!(message.contains("mcp.servers.neither"), "{message}");
}

/// A stdio MCP server in busybox sh: one JSON-RPC message a line, enough of the protocol for a
/// client (initialize, tools/list, tools/call, anything else with an id answered empty).
const SH_SERVER: &str = r#"while IFS= read -r line; do
  rest=${line#*\"id\":}; id=${rest%%,*}
  case "$line" in
    *'"method":"initialize"'*)
      rest=${line#*\"protocolVersion\":\"}; v=${rest%%\"*}
      printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"%s","capabilities":{"tools":{}},"serverInfo":{"name":"sh-mcp","version":"1.0.0"}}}\n' "$id" "$v";;
    *'"method":"tools/list"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"whoami","description":"The uid the server runs as","inputSchema":{"type":"object"}}]}}\n' "$id";;
    *'"method":"tools/call"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"uid %s in %s"}]}}\n' "$id" "$(id -u)" "$(pwd)";;
    *'"id":'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id";;
  esac
done
"#;

#[tokio::test]
async fn a_stdio_server_runs_inside_the_sandbox_as_its_user_for_the_job() {
    if !common::docker_available() {
        return;
    }
    let sb = common::Sandbox::new();
    let session = infra::model::SessionKey::dm("main", infra::model::Channel::Telegram, "m1");
    let toolbox = ToolBox::for_session(&sb.runtime(), &sb.config("", ""), "main", &session).await;
    let wrote = toolbox
        .run("write", &json!({"path": "mcp.sh", "content": SH_SERVER}))
        .await;
    assert!(!wrote.is_error, "{}", wrote.output);
    let mcp = Config::parse(
        r#"{ mcp: { servers: { shell: { command: "sh", args: ["/workspace/mcp.sh"], timeoutSeconds: 10 } } } }"#,
    )
    .unwrap()
    .mcp;
    let servers = McpServers::from_config(&mcp, &WebToolsConfig::default(), false)
        .unwrap()
        .expect("one server");

    let tools = McpTools::for_job(servers.into(), Some(&toolbox)).await;
    let names: Vec<String> = tools.specs().iter().map(|s| s.name.to_string()).collect();
    let answer = tools.run("mcp__shell__whoami", &json!({})).await.unwrap();
    drop(tools);

    assert_eq!(names, ["mcp__shell__whoami"]);
    assert!(!answer.is_error, "{}", answer.output);
    assert!(
        answer.output.contains("uid 1000 in /workspace"),
        "{}",
        answer.output
    );
}
