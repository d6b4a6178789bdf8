//! A session's history: transcript entries (user, assistant, tool result, summary, delivered
//! copy), capped before storing so every entry fits one table item, and saying so when cut.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Sender;

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub input: serde_json::Value,
}

/// One step of a session's history. `seq` is dense from 0 and guarded by the store, so two
/// writers can never both append step `n`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(flatten)]
    pub body: EntryBody,
}

/// What a transcript step says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum EntryBody {
    User {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<Sender>,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        /// Which model answered (`provider/model`), when known: a fallback, not the primary,
        /// may have.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// The call's tokens as the provider reported them: the session's and the job's usage,
        /// and the context size compaction reads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Tokens>,
        /// Reasoning blocks the provider wants sent back with this turn (Anthropic's
        /// `thinking` and `redacted_thinking`, signature included), kept opaque.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reasoning: Vec<serde_json::Value>,
    },
    ToolResult {
        call_id: String,
        name: String,
        output: String,
        #[serde(default)]
        is_error: bool,
    },
    /// A compaction: this summary stands for every entry up to and including `through_seq`.
    Summary { text: String, through_seq: u64 },
    /// A reply as it was delivered to a WebChat page: the answer, a command's answer, a
    /// failure notice. WebChat has no channel to post to, so its page reads these. Models
    /// never see them (the assistant's own words are its `Assistant` entries).
    Delivered { text: String },
    /// The session's options from here on (`/model`, `/think`): the whole set, so the latest
    /// such entry is the session's state. The store copies it onto the session's metadata in
    /// the same write, so a job that reads only the context after a compaction still has it.
    Options(SessionOptions),
}

/// A model call's tokens, or a sum of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Tokens {
    /// Every figure with its name, for counters and display.
    pub fn figures(&self) -> [(&'static str, u64); 4] {
        [
            ("input", self.input),
            ("output", self.output),
            ("cacheRead", self.cache_read),
            ("cacheWrite", self.cache_write),
        ]
    }

    pub fn is_zero(&self) -> bool {
        self.figures().iter().all(|(_, n)| *n == 0)
    }

    /// The prompt as the provider counted it: fresh input plus what came from or went to its
    /// prompt cache.
    pub fn prompt(&self) -> u64 {
        self.input + self.cache_read + self.cache_write
    }

    /// Adds `other` figure by figure.
    pub fn add(&mut self, other: &Tokens) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
    }
}

/// How hard the model thinks before it answers (`/think`): Anthropic's extended-thinking
/// budget, OpenAI's `reasoning_effort`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThinkLevel {
    #[default]
    Off,
    Minimal,
    Low,
    Medium,
    High,
}

impl ThinkLevel {
    pub const ALL: [ThinkLevel; 5] = [
        ThinkLevel::Off,
        ThinkLevel::Minimal,
        ThinkLevel::Low,
        ThinkLevel::Medium,
        ThinkLevel::High,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ThinkLevel::Off => "off",
            ThinkLevel::Minimal => "minimal",
            ThinkLevel::Low => "low",
            ThinkLevel::Medium => "medium",
            ThinkLevel::High => "high",
        }
    }

    /// The level a word names (`/think high`); `on` is `medium`, as in OpenClaw.
    pub fn parse(word: &str) -> Option<ThinkLevel> {
        match word.to_ascii_lowercase().as_str() {
            "on" => Some(ThinkLevel::Medium),
            w => ThinkLevel::ALL.into_iter().find(|l| l.as_str() == w),
        }
    }
}

/// What the owner set for one session with chat commands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SessionOptions {
    /// `/model <provider/model>`: the model tried first in this session, before the agent's
    /// fallbacks. `None` is the agent's own primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `/think <level>`; `None` is the config's default (off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkLevel>,
}

impl SessionOptions {
    pub fn is_default(&self) -> bool {
        *self == SessionOptions::default()
    }
}

/// The part of a session's history a job works on, and the seq its next entry takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    /// The seq the next appended entry must carry (the session's length).
    pub next_seq: u64,
    /// The entries loaded, oldest first: the whole history or its tail since a compaction.
    pub entries: Vec<TranscriptEntry>,
    /// The session's options: from its metadata, then any `Options` entry after.
    pub options: SessionOptions,
}

impl Transcript {
    /// Whether the message of job `job_id` is in (an earlier attempt appended it).
    pub fn has_message_of(&self, job_id: &str) -> bool {
        self.entries.iter().any(|e| {
            e.job_id.as_deref() == Some(job_id) && matches!(e.body, EntryBody::User { .. })
        })
    }

    /// A new entry that takes the next seq.
    pub fn next_entry(&self, job_id: Option<&str>, body: EntryBody) -> TranscriptEntry {
        TranscriptEntry {
            seq: self.next_seq,
            at: chrono::Utc::now(),
            job_id: job_id.map(str::to_string),
            body,
        }
    }

    /// A transcript holding the whole history `entries` (the next seq follows the last).
    pub fn whole(entries: Vec<TranscriptEntry>) -> Transcript {
        let options = entries
            .iter()
            .rev()
            .find_map(|e| match &e.body {
                EntryBody::Options(o) => Some(o.clone()),
                _ => None,
            })
            .unwrap_or_default();
        Transcript {
            next_seq: entries.last().map_or(0, |e| e.seq + 1),
            entries,
            options,
        }
    }

    /// Records an entry the store accepted.
    pub fn push(&mut self, stored: TranscriptEntry) {
        self.next_seq = self.next_seq.max(stored.seq + 1);
        if let EntryBody::Options(options) = &stored.body {
            self.options = options.clone();
        }
        self.entries.push(stored);
    }
}

const TRUNCATION_MARK: &str = "\n…[truncated by clawgate: ";

/// Cuts `text` so that it shrinks by at least `excess` bytes, on a char boundary, and says so.
fn truncate_by(text: &mut String, excess: usize) {
    let note_budget = TRUNCATION_MARK.len() + 32;
    let keep = text.len().saturating_sub(excess + note_budget);
    let mut cut = keep;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(TRUNCATION_MARK);
    text.push_str(&format!("{dropped} bytes]"));
}

impl TranscriptEntry {
    /// The entry's stored size: its JSON encoding.
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
    }

    /// Shrinks the entry until its JSON fits in `max_bytes`: the long text fields are cut with a
    /// marker that says how much went; tool-call inputs too large to keep are replaced by a
    /// note. The model and the user see the marker, so nothing vanishes silently.
    pub fn cap_to(&mut self, max_bytes: usize) {
        let len = self.encoded_len();
        if len <= max_bytes {
            return;
        }
        match &mut self.body {
            EntryBody::User { text, .. }
            | EntryBody::Summary { text, .. }
            | EntryBody::Delivered { text } => truncate_by(text, len - max_bytes),
            EntryBody::ToolResult { output, .. } => truncate_by(output, len - max_bytes),
            // Small by construction: `/model` takes only a configured model's name.
            EntryBody::Options(_) => {}
            EntryBody::Assistant {
                tool_calls,
                reasoning,
                ..
            } => {
                // Reasoning blocks cannot be cut (their signature covers them): an oversized
                // set goes whole. Anthropic accepts a turn without them once the tool loop
                // that made them has ended.
                let reasoning_size: usize = reasoning.iter().map(|b| b.to_string().len()).sum();
                if reasoning_size > max_bytes / 2 {
                    reasoning.clear();
                }
                for call in tool_calls.iter_mut() {
                    let size = call.input.to_string().len();
                    if size > 1024 {
                        call.input = serde_json::json!({
                            "_clawgate_truncated": format!("tool input of {size} bytes not stored")
                        });
                    }
                }
                let len = self.encoded_len();
                if let EntryBody::Assistant {
                    text: Some(text), ..
                } = &mut self.body
                {
                    if len > max_bytes {
                        truncate_by(text, len - max_bytes);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn transcript_entries_round_trip_from_fixtures() {
        let text = fixture("transcript.jsonl");
        let entries: Vec<TranscriptEntry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 4);
        assert!(matches!(
            &entries[1].body,
            EntryBody::Assistant { tool_calls, .. } if tool_calls[0].name == "exec"
        ));
        for (line, entry) in text.lines().zip(&entries) {
            let back: serde_json::Value = serde_json::to_value(entry).unwrap();
            let orig: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(back, orig);
        }
    }

    #[test]
    fn capping_a_huge_tool_result_keeps_it_under_the_limit_and_says_so() {
        let mut entry = TranscriptEntry {
            seq: 3,
            at: Utc::now(),
            job_id: None,
            body: EntryBody::ToolResult {
                call_id: "c1".into(),
                name: "exec".into(),
                output: "é".repeat(300_000),
                is_error: false,
            },
        };
        entry.cap_to(100_000);
        assert!(entry.encoded_len() <= 100_000, "{}", entry.encoded_len());
        let EntryBody::ToolResult { output, .. } = &entry.body else {
            unreachable!()
        };
        assert!(output.contains("truncated by clawgate"));
        assert!(output.starts_with("éé"));
    }

    #[test]
    fn capping_an_assistant_turn_replaces_a_huge_tool_input() {
        let mut entry = TranscriptEntry {
            seq: 1,
            at: Utc::now(),
            job_id: None,
            body: EntryBody::Assistant {
                text: Some("writing".into()),
                tool_calls: vec![ToolCall {
                    id: "t".into(),
                    name: "write".into(),
                    input: serde_json::json!({"path":"a","content":"x".repeat(500_000)}),
                }],
                model: None,
                usage: None,
                reasoning: vec![],
            },
        };
        entry.cap_to(350_000);
        assert!(entry.encoded_len() <= 350_000);
        let EntryBody::Assistant { tool_calls, .. } = &entry.body else {
            unreachable!()
        };
        assert!(tool_calls[0].input["_clawgate_truncated"].is_string());
    }
}
