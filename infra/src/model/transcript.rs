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
}

/// The part of a session's history a job works on, and the seq its next entry takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    /// The seq the next appended entry must carry (the session's length).
    pub next_seq: u64,
    /// The entries loaded, oldest first: the whole history or its tail since a compaction.
    pub entries: Vec<TranscriptEntry>,
}

impl Transcript {
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
        Transcript {
            next_seq: entries.last().map_or(0, |e| e.seq + 1),
            entries,
        }
    }

    /// Records an entry the store accepted.
    pub fn push(&mut self, stored: TranscriptEntry) {
        self.next_seq = self.next_seq.max(stored.seq + 1);
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
            EntryBody::Assistant { tool_calls, .. } => {
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
