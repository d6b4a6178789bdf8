//! MCP tools against a fake streamable-HTTP MCP server on loopback (real HTTP, JSON-RPC, the
//! session header): tools listed under `mcp__<server>__`, a call's result marked untrusted, a
//! tool-level error kept an error, and the egress guard between the worker and the server.

mod fakes;

use fakes::mcp::FakeMcp;
use infra::config::{Config, WebToolsConfig};
use sandbox_worker::tools::mcp::{McpServers, McpTools};
use sandbox_worker::tools::ExtraTools;
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
    let tools = McpTools::for_job(servers(&server.url, true).into()).await;

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

    let tools = McpTools::for_job(servers(&server.url, false).into()).await;
    let call = tools.run("mcp__calc__add", &json!({"a": 1, "b": 1})).await;

    assert!(tools.specs().is_empty());
    assert!(call.is_none());
    assert!(server.calls().is_empty());
}

#[test]
fn a_stdio_server_is_refused_by_validation_with_the_reason() {
    let config =
        Config::parse(r#"{ mcp: { servers: { local: { command: "npx", args: ["x"] } } } }"#)
            .unwrap();
    let message = format!("{:?}", config.validate().expect_err("refused"));
    assert!(
        message.contains("mcp.servers.local.command") && message.contains("stdio"),
        "{message}"
    );
}
