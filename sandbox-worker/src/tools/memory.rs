//! `memory_search` and `memory_get`: the agent's memory files (`MEMORY.md` and
//! `memory/*.md`, OpenClaw's layout) searched by BM25 and read by line range.
//!
//! Decisions:
//! - The index is SQLite FTS5 (bundled with the `rusqlite` the store already uses), in memory,
//!   one per workspace, ranked with FTS5's `bm25()`. Files are cut into chunks at blank lines
//!   (at most `CHUNK_LINES` lines each), so a hit names a file and a line range.
//! - Kept in step with the files: every search first compares each memory file's size and
//!   modification time with what the index was built from and rebuilds on any change, so a
//!   note written a moment ago (by this worker, another worker on the same EFS workspace, or
//!   the owner's editor) is found by the next search. Memory files are small; a rebuild is a
//!   few milliseconds.
//! - The model's query is cut into words, each quoted, joined with OR: FTS5 query syntax from
//!   the model can never be an error or an injection, and BM25 ranks chunks holding more of
//!   the words higher.
//! - Files are read through the workspace's race-free resolver: a symlink out of the
//!   workspace is not followed, and `memory_get` reads only memory files.
//! - Offered in owner sessions only (the worker decides): memory is the owner's, and a group
//!   must not be able to search it, as it never sees `MEMORY.md` in its prompt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rusqlite::{params, Connection};
use serde::Deserialize;
use serde_json::{json, Value};

use super::fs::{FsError, Workspace};
use super::{ExtraTools, ToolOutcome};
use crate::llm::ToolSpec;
use crate::persona::MEMORY_FILE;

/// Where daily notes live (`memory/YYYY-MM-DD.md`).
pub const MEMORY_DIR: &str = "memory";
const CHUNK_LINES: usize = 12;
const SNIPPET_CHARS: usize = 700;
const DEFAULT_RESULTS: usize = 6;
const MAX_RESULTS: usize = 20;
const DEFAULT_GET_LINES: usize = 60;
const MAX_GET_LINES: usize = 400;

/// The files an index was built from: each path with its modification time and size.
type Stamp = Vec<(String, SystemTime, u64)>;

/// The memory indexes of every workspace this worker has searched, shared by its jobs.
#[derive(Default)]
pub struct MemoryIndexes {
    by_workspace: Mutex<HashMap<PathBuf, (Stamp, Connection)>>,
}

/// One ranked hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
    pub score: f64,
    pub text: String,
}

/// The memory files of `ws` and their stamps, `MEMORY.md` first.
fn memory_files(ws: &Workspace) -> Result<Stamp, FsError> {
    let mut files = Vec::new();
    if let Some((modified, len)) = ws.file_stamp(MEMORY_FILE) {
        files.push((MEMORY_FILE.to_string(), modified, len));
    }
    for (name, modified, len) in ws.list_files(MEMORY_DIR)? {
        if name.ends_with(".md") {
            files.push((format!("{MEMORY_DIR}/{name}"), modified, len));
        }
    }
    Ok(files)
}

/// Cuts a file into chunks at blank lines, each at most [`CHUNK_LINES`] lines:
/// `(first line, last line, text)`, lines counted from 1.
fn chunks(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() || current.len() == CHUNK_LINES {
            if !current.is_empty() {
                out.push((start, number - 1, current.join("\n")));
                current.clear();
            }
            if line.trim().is_empty() {
                continue;
            }
        }
        if current.is_empty() {
            start = number;
        }
        current.push(line);
    }
    if !current.is_empty() {
        out.push((start, start + current.len() - 1, current.join("\n")));
    }
    out
}

fn build_index(ws: &Workspace, files: &Stamp) -> rusqlite::Result<Connection> {
    let db = Connection::open_in_memory()?;
    db.execute_batch(
        "CREATE VIRTUAL TABLE chunks USING fts5(path UNINDEXED, start_line UNINDEXED, end_line UNINDEXED, text, tokenize = 'unicode61 remove_diacritics 2');",
    )?;
    {
        let mut insert = db.prepare(
            "INSERT INTO chunks (path, start_line, end_line, text) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (path, _, _) in files {
            // An unreadable file (binary, too big, a race) is left out, not an error.
            let Ok(text) = ws.read_text(path) else {
                continue;
            };
            for (start, end, chunk) in chunks(&text) {
                insert.execute(params![path, start as i64, end as i64, chunk])?;
            }
        }
    }
    Ok(db)
}

/// `"word" OR "word" …` from free text, or `None` when it has no words.
fn fts_query(query: &str) -> Option<String> {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(32)
        .map(|w| format!("\"{}\"", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

impl MemoryIndexes {
    /// The best `limit` chunks of the memory files of `ws` for `query`, best first.
    pub fn search(&self, ws: &Workspace, query: &str, limit: usize) -> Result<Vec<Hit>, String> {
        let Some(fts) = fts_query(query) else {
            return Err("the query has no words to search for".into());
        };
        let files = memory_files(ws).map_err(|e| e.to_string())?;
        let mut indexes = self.by_workspace.lock().unwrap_or_else(|p| p.into_inner());
        let key = ws.root().to_path_buf();
        let fresh = matches!(indexes.get(&key), Some((stamp, _)) if *stamp == files);
        if !fresh {
            let db = build_index(ws, &files).map_err(|e| format!("memory index: {e}"))?;
            indexes.insert(key.clone(), (files, db));
        }
        let (_, db) = indexes.get(&key).expect("just inserted");
        let mut query = db
            .prepare_cached(
                "SELECT path, start_line, end_line, text, bm25(chunks) FROM chunks WHERE chunks MATCH ?1 ORDER BY bm25(chunks) LIMIT ?2",
            )
            .map_err(|e| format!("memory index: {e}"))?;
        let rows = query
            .query_map(params![fts, limit as i64], |r| {
                Ok(Hit {
                    path: r.get(0)?,
                    start_line: r.get::<_, i64>(1)? as usize,
                    end_line: r.get::<_, i64>(2)? as usize,
                    text: r.get(3)?,
                    // bm25() is lower for better matches; the score shown is higher-is-better.
                    score: -r.get::<_, f64>(4)?,
                })
            })
            .map_err(|e| format!("memory search: {e}"))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| format!("memory search: {e}"))
    }
}

/// The memory tools of one session, over the agent's workspace on this host.
#[derive(Clone)]
pub struct MemoryTools {
    pub workspace: PathBuf,
    pub indexes: Arc<MemoryIndexes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SearchInput {
    query: String,
    #[serde(default)]
    max_results: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetInput {
    path: String,
    #[serde(default)]
    from: Option<usize>,
    #[serde(default)]
    lines: Option<usize>,
}

/// Whether `rel` (a workspace-relative path) is a memory file `memory_get` may read.
fn is_memory_file(rel: &Path) -> bool {
    if rel == Path::new(MEMORY_FILE) {
        return true;
    }
    let mut parts = rel.components();
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(dir), Some(_), None) if dir.as_os_str() == MEMORY_DIR
    ) && rel.extension().is_some_and(|e| e == "md")
}

impl MemoryTools {
    fn workspace(&self) -> Result<Workspace, ToolOutcome> {
        Workspace::new(
            &self.workspace,
            &self.workspace.display().to_string(),
            true,
            None,
        )
        .map_err(|e| ToolOutcome::error(format!("the workspace cannot be opened: {e}")))
    }

    fn search(&self, input: SearchInput) -> ToolOutcome {
        let ws = match self.workspace() {
            Ok(ws) => ws,
            Err(outcome) => return outcome,
        };
        let limit = input
            .max_results
            .unwrap_or(DEFAULT_RESULTS)
            .clamp(1, MAX_RESULTS);
        match self.indexes.search(&ws, &input.query, limit) {
            Err(e) => ToolOutcome::error(e),
            Ok(hits) if hits.is_empty() => ToolOutcome::ok(format!(
                "no memory matches {:?} (searched {MEMORY_FILE} and {MEMORY_DIR}/*.md)",
                input.query
            )),
            Ok(hits) => {
                let results: Vec<Value> = hits
                    .into_iter()
                    .map(|h| {
                        json!({
                            "path": h.path,
                            "startLine": h.start_line,
                            "endLine": h.end_line,
                            "score": (h.score * 1000.0).round() / 1000.0,
                            "snippet": h.text.chars().take(SNIPPET_CHARS).collect::<String>(),
                        })
                    })
                    .collect();
                ToolOutcome::ok(json!({ "results": results }).to_string())
            }
        }
    }

    fn get(&self, input: GetInput) -> ToolOutcome {
        let ws = match self.workspace() {
            Ok(ws) => ws,
            Err(outcome) => return outcome,
        };
        let rel = match ws.relative(&input.path) {
            Ok(rel) => rel,
            Err(e) => return ToolOutcome::error(e.to_string()),
        };
        if !is_memory_file(&rel) {
            return ToolOutcome::error(format!(
                "{:?} is not a memory file: memory_get reads {MEMORY_FILE} and {MEMORY_DIR}/<name>.md (use read for other files)",
                input.path
            ));
        }
        let text = match ws.read_text(&rel.to_string_lossy()) {
            Ok(text) => text,
            Err(e) => return ToolOutcome::error(e.to_string()),
        };
        let from = input.from.unwrap_or(1).max(1);
        let count = input
            .lines
            .unwrap_or(DEFAULT_GET_LINES)
            .clamp(1, MAX_GET_LINES);
        let total = text.lines().count();
        let lines: Vec<&str> = text.lines().skip(from - 1).take(count).collect();
        if lines.is_empty() {
            return ToolOutcome::ok(format!(
                "{} has {total} lines; nothing from line {from}",
                rel.display()
            ));
        }
        ToolOutcome::ok(format!(
            "{} lines {from}-{} of {total}:\n{}",
            rel.display(),
            from + lines.len() - 1,
            lines.join("\n")
        ))
    }
}

#[async_trait::async_trait]
impl ExtraTools for MemoryTools {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "memory_search".into(),
                description: "Search your memory files (MEMORY.md and memory/*.md) by keywords. Returns the best-matching passages with their file and line range, best first. Search before answering about anything you may have noted earlier.".into(),
                input_schema: json!({"type": "object", "properties": {
                    "query": {"type": "string", "description": "Words to look for"},
                    "maxResults": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS}
                }, "required": ["query"], "additionalProperties": false}),
            },
            ToolSpec {
                name: "memory_get".into(),
                description: "Read lines of a memory file (MEMORY.md or memory/<name>.md), e.g. around a memory_search hit.".into(),
                input_schema: json!({"type": "object", "properties": {
                    "path": {"type": "string"},
                    "from": {"type": "integer", "minimum": 1, "description": "First line, from 1"},
                    "lines": {"type": "integer", "minimum": 1, "maximum": MAX_GET_LINES}
                }, "required": ["path"], "additionalProperties": false}),
            },
        ]
    }

    async fn run(&self, name: &str, input: &Value) -> Option<ToolOutcome> {
        if !matches!(name, "memory_search" | "memory_get") {
            return None;
        }
        // File reads and the index are blocking work: off the async threads.
        let (tools, name, input) = (self.clone(), name.to_string(), input.clone());
        let outcome = tokio::task::spawn_blocking(move || tools.run_blocking(&name, &input))
            .await
            .unwrap_or_else(|_| ToolOutcome::error("the memory tool failed inside clawgate"));
        Some(outcome)
    }
}

impl MemoryTools {
    fn run_blocking(&self, name: &str, input: &Value) -> ToolOutcome {
        match name {
            "memory_search" => match serde_json::from_value(input.clone()) {
                Ok(input) => self.search(input),
                Err(e) => ToolOutcome::error(format!("memory_search input: {e}")),
            },
            "memory_get" => match serde_json::from_value(input.clone()) {
                Ok(input) => self.get(input),
                Err(e) => ToolOutcome::error(format!("memory_get input: {e}")),
            },
            _ => ToolOutcome::error(format!("{name:?} is not a memory tool")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(dir: &Path) -> MemoryTools {
        MemoryTools {
            workspace: dir.to_path_buf(),
            indexes: Arc::default(),
        }
    }

    async fn call(tools: &MemoryTools, name: &str, input: Value) -> ToolOutcome {
        tools.run(name, &input).await.expect("a memory tool")
    }

    #[test]
    fn files_are_cut_at_blank_lines_with_their_line_numbers() {
        let long: String = (1..=15).map(|i| format!("l{i}\n")).collect();
        let text = format!("a\nb\n\n\nc\n{long}");
        let chunks = chunks(&text);
        assert_eq!(chunks[0], (1, 2, "a\nb".to_string()));
        assert_eq!(chunks[1].0, 5);
        assert_eq!(chunks[1].1 - chunks[1].0 + 1, CHUNK_LINES);
        assert_eq!(chunks[2], (17, 20, "l12\nl13\nl14\nl15".to_string()));
    }

    #[tokio::test]
    async fn search_ranks_the_passage_with_more_of_the_words_first_and_names_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(
            dir.path().join("MEMORY.md"),
            "# Memory\n\nAda likes green tea.\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("memory/2026-12-01.md"),
            "Met Bob.\n\nThe garage door code is 4711; the garden door code is 1234.\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("notes.md"),
            "door code 9999 (not a memory file)",
        )
        .unwrap();
        let tools = tools(dir.path());

        let found = call(
            &tools,
            "memory_search",
            json!({"query": "garage door code?"}),
        )
        .await;

        assert!(!found.is_error, "{}", found.output);
        let results: Value = serde_json::from_str(&found.output).unwrap();
        let first = &results["results"][0];
        assert_eq!(first["path"], "memory/2026-12-01.md");
        assert_eq!(
            (first["startLine"].as_u64(), first["endLine"].as_u64()),
            (Some(3), Some(3))
        );
        assert!(first["snippet"].as_str().unwrap().contains("4711"));
        assert!(!found.output.contains("9999"));
    }

    #[tokio::test]
    async fn a_note_written_after_a_search_is_found_by_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("MEMORY.md"), "nothing yet\n").unwrap();
        let tools = tools(dir.path());
        let before = call(&tools, "memory_search", json!({"query": "parcel"})).await;

        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(
            dir.path().join("memory/today.md"),
            "The parcel arrives Friday.\n",
        )
        .unwrap();
        let after = call(&tools, "memory_search", json!({"query": "parcel"})).await;

        assert!(
            before.output.starts_with("no memory matches"),
            "{}",
            before.output
        );
        assert!(after.output.contains("Friday"), "{}", after.output);
    }

    #[tokio::test]
    async fn query_syntax_from_the_model_is_only_words() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("MEMORY.md"), "alpha beta\n").unwrap();
        let tools = tools(dir.path());
        for hostile in [
            "\"alpha) OR *",
            "NEAR(alpha beta",
            "alpha:beta -x ^y",
            "' ; DROP TABLE chunks; --",
        ] {
            let outcome = call(&tools, "memory_search", json!({"query": hostile})).await;
            assert!(!outcome.is_error, "{hostile}: {}", outcome.output);
        }
        let empty = call(&tools, "memory_search", json!({"query": "()*"})).await;
        assert!(empty.is_error);
    }

    #[tokio::test]
    async fn memory_get_reads_memory_files_only_and_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.md"), "the host's secret").unwrap();
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(dir.path().join("memory/a.md"), "one\ntwo\nthree\nfour\n").unwrap();
        std::fs::write(dir.path().join("SOUL.md"), "soul").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.md"),
            dir.path().join("memory/link.md"),
        )
        .unwrap();
        let tools = tools(dir.path());

        let lines = call(
            &tools,
            "memory_get",
            json!({"path": "memory/a.md", "from": 2, "lines": 2}),
        )
        .await;
        let refused: Vec<ToolOutcome> = futures_util::future::join_all(
            [
                "SOUL.md",
                "memory/../SOUL.md",
                "../secret.md",
                "memory/link.md",
                "/etc/passwd",
            ]
            .map(|path| call(&tools, "memory_get", json!({"path": path}))),
        )
        .await;
        let searched = call(&tools, "memory_search", json!({"query": "secret"})).await;

        assert_eq!(lines.output, "memory/a.md lines 2-3 of 4:\ntwo\nthree");
        for outcome in refused {
            assert!(outcome.is_error, "{}", outcome.output);
            assert!(!outcome.output.contains("the host's secret"));
        }
        assert!(
            searched.output.starts_with("no memory matches"),
            "{}",
            searched.output
        );
    }
}
