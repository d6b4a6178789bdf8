//! A model provider's JSON answer, read as Anthropic's and as OpenAI's: a reply or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = sandbox_worker::llm::anthropic::parse_reply(&body);
        let _ = sandbox_worker::llm::openai::parse_reply(&body);
    }
});
