//! OpenAI-compatible Chat Completions (OpenAI, Ollama, vLLM, LM Studio): `tool_calls`,
//! `role: "tool"` results and `finish_reason`.

use async_trait::async_trait;
use std::sync::Arc;

use infra::model::{EntryBody, ThinkLevel, ToolCall};
use serde_json::{json, Value};

use super::{
    list_models, send_with_retry, KeyRing, LlmError, Model, ModelReply, ModelRequest, Probe,
    RetryPolicy,
};

pub struct OpenAi {
    pub http: reqwest::Client,
    /// Up to and including `/v1` (e.g. `http://127.0.0.1:11434/v1` for Ollama).
    pub base_url: String,
    /// Optional (local servers often need none); several rotate on rate limits.
    pub keys: Arc<KeyRing>,
    pub model: String,
    pub retry: RetryPolicy,
}

pub fn request_body(model: &str, request: &ModelRequest<'_>) -> Value {
    let mut messages = vec![json!({"role": "system", "content": request.system})];
    for entry in request.history {
        messages.push(match &entry.body {
            // agent::context drops these; never sent
            EntryBody::Delivered { .. } | EntryBody::Options(_) => continue,
            EntryBody::User { text, .. } => {
                let images = request.images_for(entry.seq);
                if images.is_empty() {
                    json!({"role": "user", "content": text})
                } else {
                    let mut parts = vec![json!({"type": "text", "text": text})];
                    parts.extend(images.iter().map(|i| {
                        json!({"type": "image_url", "image_url": {"url": format!("data:{};base64,{}", i.media_type, i.data)}})
                    }));
                    json!({"role": "user", "content": parts})
                }
            }
            EntryBody::Summary { text, .. } => {
                json!({"role": "user", "content": format!("Summary of the earlier conversation:\n{text}")})
            }
            EntryBody::Assistant { text, tool_calls, .. } => {
                let mut message = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    message["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.input.to_string()}}))
                        .collect();
                }
                message
            }
            EntryBody::ToolResult { call_id, output, .. } => {
                json!({"role": "tool", "tool_call_id": call_id, "content": output})
            }
        });
    }
    let mut body = json!({"model": model, "max_tokens": request.max_tokens, "messages": messages});
    // `/think`: OpenAI's reasoning models take an effort; off sends nothing, so models
    // without reasoning (and servers that refuse the key) are untouched.
    if let Some(effort) = request.thinking.filter(|t| *t != ThinkLevel::Off) {
        body["reasoning_effort"] = json!(effort.as_str());
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}))
            .collect();
    }
    body
}

pub fn parse_reply(body: &Value) -> Result<ModelReply, LlmError> {
    let choice = &body["choices"][0];
    let message = choice
        .get("message")
        .ok_or_else(|| LlmError::Malformed("no choices[0].message".into()))?;
    let mut tool_calls = Vec::new();
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        tool_calls.push(ToolCall {
            id: call["id"].as_str().unwrap_or("").to_string(),
            name: call["function"]["name"].as_str().unwrap_or("").to_string(),
            // A model that writes broken JSON gets the raw text back as the input, and the
            // tool's input check tells it what is wrong.
            input: serde_json::from_str(arguments)
                .unwrap_or_else(|_| json!({"_unparsed_arguments": arguments})),
        });
    }
    Ok(ModelReply {
        text: message["content"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        tool_calls,
        stop: choice["finish_reason"].as_str().unwrap_or("").to_string(),
        usage: super::usage_from_body(body),
        model: None,
        reasoning: vec![],
    })
}

#[async_trait]
impl Model for OpenAi {
    async fn complete(&self, request: &ModelRequest<'_>) -> Result<ModelReply, LlmError> {
        let body = request_body(&self.model, request);
        let url = format!("{}/chat/completions", self.base_url.trim_end_matches('/'));
        let reply = send_with_retry(&self.retry, &self.keys, |key| {
            let builder = self.http.post(&url).json(&body);
            match key {
                Some(key) => builder.bearer_auth(key.expose()),
                None => builder,
            }
        })
        .await?;
        parse_reply(&reply)
    }

    fn name(&self) -> String {
        format!("openai/{}", self.model)
    }

    async fn probe(&self) -> Result<Probe, LlmError> {
        let url = format!("{}/models", self.base_url.trim_end_matches('/'));
        let request = self.http.get(url);
        list_models(match self.keys.pick().map(|(_, k)| k) {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        })
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

    #[test]
    fn tool_calls_are_parsed_with_their_json_arguments() {
        let reply = parse_reply(&fixture("openai_tool_calls.json")).unwrap();
        assert_eq!(reply.stop, "tool_calls");
        assert!(reply.text.is_none());
        assert_eq!(reply.tool_calls[0].input, json!({"command": "ls -la"}));
        assert_eq!(reply.tool_calls[1].name, "read");
        let done = parse_reply(&fixture("openai_stop.json")).unwrap();
        assert_eq!(done.text.as_deref(), Some("The workspace has two files."));
    }

    #[test]
    fn history_maps_to_tool_role_messages() {
        let history = vec![
            TranscriptEntry {
                seq: 0,
                at: Utc::now(),
                job_id: None,
                body: EntryBody::User {
                    text: "hi".into(),
                    sender: None,
                },
            },
            TranscriptEntry {
                seq: 1,
                at: Utc::now(),
                job_id: None,
                body: EntryBody::Assistant {
                    text: None,
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "exec".into(),
                        input: json!({"command": "ls"}),
                    }],
                    model: None,
                    usage: None,
                    reasoning: vec![],
                },
            },
            TranscriptEntry {
                seq: 2,
                at: Utc::now(),
                job_id: None,
                body: EntryBody::ToolResult {
                    call_id: "call_1".into(),
                    name: "exec".into(),
                    output: "a b".into(),
                    is_error: false,
                },
            },
        ];
        let body = request_body(
            "m",
            &ModelRequest {
                system: "sys",
                history: &history,
                tools: &[],
                max_tokens: 5,
                thinking: None,
                images: None,
            },
        );
        let m = body["messages"].as_array().unwrap();
        assert_eq!(m[0]["role"], "system");
        assert_eq!(
            m[2]["tool_calls"][0]["function"]["arguments"],
            "{\"command\":\"ls\"}"
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "a b"})
        );
    }

    #[test]
    fn images_go_with_their_user_message_as_data_urls() {
        let history = vec![TranscriptEntry {
            seq: 7,
            at: Utc::now(),
            job_id: None,
            body: EntryBody::User {
                text: "what is this?".into(),
                sender: None,
            },
        }];
        let images = [crate::llm::InlineImage {
            media_type: "image/png".into(),
            data: "iVBORw0K".into(),
        }];
        let ask = |at| {
            request_body(
                "m",
                &ModelRequest {
                    system: "s",
                    history: &history,
                    tools: &[],
                    max_tokens: 5,
                    thinking: None,
                    images: Some((at, &images)),
                },
            )
        };

        let with = ask(7);
        let elsewhere = ask(8);

        assert_eq!(with["messages"][1]["content"][0]["text"], "what is this?");
        assert_eq!(
            with["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBORw0K"
        );
        assert_eq!(elsewhere["messages"][1]["content"], "what is this?");
    }

    #[test]
    fn thinking_is_a_reasoning_effort_and_off_sends_none() {
        let ask = |thinking| {
            request_body(
                "o",
                &ModelRequest {
                    system: "s",
                    history: &[],
                    tools: &[],
                    max_tokens: 5,
                    thinking,
                    images: None,
                },
            )
        };
        assert_eq!(ask(Some(ThinkLevel::Low))["reasoning_effort"], "low");
        assert_eq!(ask(Some(ThinkLevel::High))["reasoning_effort"], "high");
        assert!(ask(Some(ThinkLevel::Off)).get("reasoning_effort").is_none());
        assert!(ask(None).get("reasoning_effort").is_none());
    }
}
