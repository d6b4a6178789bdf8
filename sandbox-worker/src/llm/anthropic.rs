//! Anthropic Messages API: `tool_use` / `tool_result` content blocks and `stop_reason`.

use async_trait::async_trait;
use std::sync::Arc;

use infra::model::{EntryBody, ThinkLevel, ToolCall};
use serde_json::{json, Value};

use super::{
    list_models, send_with_retry, KeyRing, LlmError, Model, ModelReply, ModelRequest, Probe,
    RetryPolicy,
};

pub const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    pub http: reqwest::Client,
    pub base_url: String,
    /// The API keys, rotated on rate limits ([`super::keys`]).
    pub keys: Arc<KeyRing>,
    pub model: String,
    pub retry: RetryPolicy,
}

/// The request body. Consecutive entries of one role become one message (the API wants turns
/// to alternate), and tool results travel as `tool_result` blocks in a user turn.
pub fn request_body(model: &str, request: &ModelRequest<'_>) -> Value {
    let mut messages: Vec<(String, Vec<Value>)> = Vec::new();
    let mut push = |role: &str, block: Value| match messages.last_mut() {
        Some((last, blocks)) if last == role => blocks.push(block),
        _ => messages.push((role.to_string(), vec![block])),
    };
    for entry in request.history {
        match &entry.body {
            EntryBody::User { text, .. } => {
                // Images first, then the text about them (as the API's guide has it).
                for image in request.images_for(entry.seq) {
                    push(
                        "user",
                        json!({"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}}),
                    );
                }
                push("user", json!({"type": "text", "text": text}))
            }
            EntryBody::Summary { text, .. } => push(
                "user",
                json!({"type": "text", "text": format!("Summary of the earlier conversation:\n{text}")}),
            ),
            EntryBody::Assistant {
                text,
                tool_calls,
                reasoning,
                ..
            } => {
                // Thinking blocks go back first, unchanged (their signature covers them).
                for block in reasoning {
                    push("assistant", block.clone());
                }
                if let Some(text) = text.as_ref().filter(|t| !t.is_empty()) {
                    push("assistant", json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    push(
                        "assistant",
                        json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}),
                    );
                }
            }
            EntryBody::ToolResult {
                call_id,
                output,
                is_error,
                ..
            } => push(
                "user",
                json!({"type": "tool_result", "tool_use_id": call_id, "content": output, "is_error": is_error}),
            ),
            // agent::context drops these; never sent
            EntryBody::Delivered { .. } | EntryBody::Options(_) => {}
        }
    }
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "system": request.system,
        "messages": messages.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect::<Vec<_>>(),
    });
    if !tools.is_empty() {
        body["tools"] = json!(tools);
    }
    // `/think`: extended thinking with a budget; `max_tokens` must exceed the budget, so the
    // answer keeps its own allowance on top.
    if let Some(budget) = request.thinking.and_then(thinking_budget) {
        body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        body["max_tokens"] = json!(request.max_tokens + budget);
    }
    body
}

/// The extended-thinking budget of a level (Anthropic's minimum is 1024 tokens).
pub fn thinking_budget(level: ThinkLevel) -> Option<u32> {
    match level {
        ThinkLevel::Off => None,
        ThinkLevel::Minimal => Some(1024),
        ThinkLevel::Low => Some(4096),
        ThinkLevel::Medium => Some(10_000),
        ThinkLevel::High => Some(32_000),
    }
}

pub fn parse_reply(body: &Value) -> Result<ModelReply, LlmError> {
    let blocks = body["content"]
        .as_array()
        .ok_or_else(|| LlmError::Malformed("no content array".into()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut reasoning = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("thinking" | "redacted_thinking") => reasoning.push(block.clone()),
            Some("text") => text.push_str(block["text"].as_str().unwrap_or("")),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or("").to_string(),
                name: block["name"].as_str().unwrap_or("").to_string(),
                input: block["input"].clone(),
            }),
            _ => {}
        }
    }
    Ok(ModelReply {
        text: (!text.is_empty()).then_some(text),
        tool_calls,
        stop: body["stop_reason"].as_str().unwrap_or("").to_string(),
        usage: super::usage_from_body(body),
        model: None,
        reasoning,
    })
}

#[async_trait]
impl Model for Anthropic {
    async fn complete(&self, request: &ModelRequest<'_>) -> Result<ModelReply, LlmError> {
        let body = request_body(&self.model, request);
        let url = format!("{}/v1/messages", self.base_url.trim_end_matches('/'));
        let reply = send_with_retry(&self.retry, &self.keys, |key| {
            self.http
                .post(&url)
                .header("x-api-key", key.map_or("", |k| k.expose()))
                .header("anthropic-version", API_VERSION)
                .json(&body)
        })
        .await?;
        parse_reply(&reply)
    }

    fn name(&self) -> String {
        format!("anthropic/{}", self.model)
    }

    async fn probe(&self) -> Result<Probe, LlmError> {
        let url = format!(
            "{}/v1/models?limit=1000",
            self.base_url.trim_end_matches('/')
        );
        list_models(
            self.http
                .get(url)
                .header(
                    "x-api-key",
                    self.keys.pick().map_or("", |(_, k)| k.expose()),
                )
                .header("anthropic-version", API_VERSION),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use infra::model::TranscriptEntry;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn entry(seq: u64, body: EntryBody) -> TranscriptEntry {
        TranscriptEntry {
            seq,
            at: Utc::now(),
            job_id: None,
            body,
        }
    }

    #[test]
    fn a_tool_use_reply_gives_every_call_in_order() {
        let reply = parse_reply(&fixture("anthropic_tool_use.json")).unwrap();
        assert_eq!(reply.stop, "tool_use");
        assert_eq!(reply.text.as_deref(), Some("I'll list the files."));
        assert_eq!(reply.tool_calls.len(), 2);
        assert_eq!(reply.tool_calls[0].name, "exec");
        assert_eq!(reply.tool_calls[0].input["command"], "ls -la");
        assert_eq!(reply.tool_calls[1].id, "toolu_01B");
        let done = parse_reply(&fixture("anthropic_end_turn.json")).unwrap();
        assert!(done.tool_calls.is_empty() && done.stop == "end_turn");
    }

    #[test]
    fn history_maps_to_alternating_turns_with_tool_result_blocks() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "exec".into(),
            input: json!({"command": "ls"}),
        };
        let history = vec![
            entry(
                0,
                EntryBody::User {
                    text: "list files".into(),
                    sender: None,
                },
            ),
            entry(
                1,
                EntryBody::Assistant {
                    text: Some("ok".into()),
                    tool_calls: vec![call("a"), call("b")],
                    model: None,
                    usage: None,
                    reasoning: vec![],
                },
            ),
            entry(
                2,
                EntryBody::ToolResult {
                    call_id: "a".into(),
                    name: "exec".into(),
                    output: "x".into(),
                    is_error: false,
                },
            ),
            entry(
                3,
                EntryBody::ToolResult {
                    call_id: "b".into(),
                    name: "exec".into(),
                    output: "y".into(),
                    is_error: true,
                },
            ),
        ];
        let body = request_body(
            "m",
            &ModelRequest {
                system: "sys",
                history: &history,
                tools: &[],
                max_tokens: 10,
                thinking: None,
                images: None,
            },
        );
        let messages = body["messages"].as_array().unwrap();
        let roles: Vec<_> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(messages[1]["content"][1]["type"], "tool_use");
        assert_eq!(messages[2]["content"][1]["tool_use_id"], "b");
        assert_eq!(messages[2]["content"][1]["is_error"], true);
        assert_eq!(body["system"], "sys");
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn images_go_first_in_their_user_message_as_base64_blocks() {
        let history = vec![
            entry(
                3,
                EntryBody::User {
                    text: "earlier".into(),
                    sender: None,
                },
            ),
            entry(
                4,
                EntryBody::User {
                    text: "what is in this picture?".into(),
                    sender: None,
                },
            ),
        ];
        let images = [crate::llm::InlineImage {
            media_type: "image/jpeg".into(),
            data: "/9j/4AAQ".into(),
        }];

        let body = request_body(
            "m",
            &ModelRequest {
                system: "s",
                history: &history,
                tools: &[],
                max_tokens: 10,
                thinking: None,
                images: Some((4, &images)),
            },
        );

        let blocks = body["messages"][0]["content"].as_array().unwrap();
        let kinds: Vec<_> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["text", "image", "text"],
            "the image goes with entry 4 only"
        );
        assert_eq!(blocks[1]["source"]["type"], "base64");
        assert_eq!(blocks[1]["source"]["media_type"], "image/jpeg");
        assert_eq!(blocks[1]["source"]["data"], "/9j/4AAQ");
    }

    #[test]
    fn thinking_asks_for_a_budget_and_its_blocks_go_back_first_unchanged() {
        let reply = parse_reply(&json!({
            "content": [
                {"type": "thinking", "thinking": "the user wants x", "signature": "sig=="},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "t1", "name": "exec", "input": {"command": "ls"}}
            ],
            "stop_reason": "tool_use"
        }))
        .unwrap();
        assert_eq!(reply.reasoning.len(), 2);
        let history = vec![
            entry(
                0,
                EntryBody::User {
                    text: "go".into(),
                    sender: None,
                },
            ),
            entry(
                1,
                EntryBody::Assistant {
                    text: None,
                    tool_calls: reply.tool_calls.clone(),
                    model: None,
                    usage: None,
                    reasoning: reply.reasoning.clone(),
                },
            ),
        ];

        let body = request_body(
            "m",
            &ModelRequest {
                system: "sys",
                history: &history,
                tools: &[],
                max_tokens: 4096,
                thinking: Some(ThinkLevel::High),
                images: None,
            },
        );

        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 32000})
        );
        assert_eq!(
            body["max_tokens"], 36096,
            "the answer keeps its own 4096 on top of the budget"
        );
        let turn = &body["messages"][1]["content"];
        assert_eq!(
            turn[0],
            json!({"type": "thinking", "thinking": "the user wants x", "signature": "sig=="})
        );
        assert_eq!(turn[1]["type"], "redacted_thinking");
        assert_eq!(turn[2]["type"], "tool_use");
        let off = request_body(
            "m",
            &ModelRequest {
                system: "s",
                history: &history,
                tools: &[],
                max_tokens: 10,
                thinking: Some(ThinkLevel::Off),
                images: None,
            },
        );
        assert!(off.get("thinking").is_none() && off["max_tokens"] == 10);
    }
}
