//! `apply_patch`: multi-file unified diffs (`--- a/x` / `+++ b/x` / `@@ -l,n +l,n @@`), as
//! `git diff` and `diff -u` write them, including new files and deletions via `/dev/null`.
//!
//! All or nothing: every path is confined and every hunk applied in memory first; only then are
//! files written, and a failed write restores what was already written. A hunk whose context is
//! not at its stated line is looked for nearby (models often get line numbers wrong), never
//! applied loosely: context and removed lines must match exactly.

use crate::fs::{FsError, Workspace};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Context(String),
    Remove(String),
    Add(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk {
    old_start: usize,
    lines: Vec<Line>,
    /// `\ No newline at end of file` after the new side's last line.
    new_no_newline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FilePatch {
    old_path: Option<String>,
    new_path: Option<String>,
    hunks: Vec<Hunk>,
}

fn patch_path(raw: &str) -> Option<String> {
    let raw = raw.split('\t').next().unwrap_or("").trim();
    if raw == "/dev/null" {
        return None;
    }
    let raw = raw
        .strip_prefix("a/")
        .or_else(|| raw.strip_prefix("b/"))
        .unwrap_or(raw);
    Some(raw.to_string())
}

/// `@@ -12,3 +12,4 @@ …` → (12, 3, 4); a missing count is 1.
fn hunk_header(line: &str) -> Option<(usize, usize, usize)> {
    let inner = line.strip_prefix("@@ -")?;
    let (ranges, _) = inner.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let range = |r: &str| -> Option<(usize, usize)> {
        match r.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (old_start, old_count) = range(old)?;
    let (_, new_count) = range(new)?;
    Some((old_start, old_count, new_count))
}

fn parse(patch: &str) -> Result<Vec<FilePatch>, String> {
    let lines: Vec<&str> = patch.lines().collect();
    let mut files = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(old) = lines[i].strip_prefix("--- ") else {
            i += 1; // `diff --git`, `index …` and other headers
            continue;
        };
        let Some(new) = lines.get(i + 1).and_then(|l| l.strip_prefix("+++ ")) else {
            return Err(format!("line {}: `--- ` is not followed by `+++ `", i + 1));
        };
        let mut file = FilePatch {
            old_path: patch_path(old),
            new_path: patch_path(new),
            hunks: Vec::new(),
        };
        i += 2;
        while let Some(line) = lines.get(i).filter(|l| l.starts_with("@@")) {
            let (old_start, mut old_left, mut new_left) = hunk_header(line)
                .ok_or_else(|| format!("line {}: bad hunk header {line:?}", i + 1))?;
            let mut hunk = Hunk {
                old_start,
                lines: Vec::new(),
                new_no_newline: false,
            };
            i += 1;
            while old_left > 0 || new_left > 0 {
                let Some(line) = lines.get(i) else {
                    return Err("the patch ends inside a hunk".into());
                };
                // The marker is one ASCII byte; a line that starts with anything else (a
                // multi-byte character included) is not a hunk line.
                let (kind, text) = match line.as_bytes().first() {
                    None => ("", ""),
                    Some(b) if b.is_ascii() => line.split_at(1),
                    Some(_) => ("?", *line),
                };
                match kind {
                    " " | "" => {
                        hunk.lines.push(Line::Context(text.to_string()));
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                    }
                    "-" => {
                        hunk.lines.push(Line::Remove(text.to_string()));
                        old_left = old_left.saturating_sub(1);
                    }
                    "+" => {
                        hunk.lines.push(Line::Add(text.to_string()));
                        new_left = new_left.saturating_sub(1);
                    }
                    "\\" => {}
                    _ => return Err(format!("line {}: unexpected {line:?} inside a hunk", i + 1)),
                }
                i += 1;
            }
            if let Some(marker) = lines.get(i).filter(|l| l.starts_with('\\')) {
                let _ = marker;
                hunk.new_no_newline =
                    matches!(hunk.lines.last(), Some(Line::Add(_) | Line::Context(_)));
                i += 1;
            }
            file.hunks.push(hunk);
        }
        if file.old_path.is_none() && file.new_path.is_none() {
            return Err("a file patch goes from /dev/null to /dev/null".into());
        }
        files.push(file);
    }
    if files.is_empty() {
        return Err("no file patches found: expected unified diff with `--- a/path` and `+++ b/path` headers".into());
    }
    Ok(files)
}

/// Applies hunks to `original`; the error names the hunk that did not fit.
fn apply_hunks(original: &str, hunks: &[Hunk], name: &str) -> Result<String, String> {
    let mut lines: Vec<String> = original.split('\n').map(str::to_string).collect();
    let mut final_newline = original.is_empty() || original.ends_with('\n');
    if original.ends_with('\n') || original.is_empty() {
        lines.pop();
    }
    let mut shift: isize = 0;
    let mut floor = 0usize;
    for (n, hunk) in hunks.iter().enumerate() {
        let old: Vec<&str> = hunk
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Context(t) | Line::Remove(t) => Some(t.as_str()),
                Line::Add(_) => None,
            })
            .collect();
        let new: Vec<String> = hunk
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Context(t) | Line::Add(t) => Some(t.clone()),
                Line::Remove(_) => None,
            })
            .collect();
        let stated = (hunk.old_start.saturating_sub(1) as isize + shift).max(0) as usize;
        let fits = |at: usize| {
            at >= floor && at + old.len() <= lines.len() && lines[at..at + old.len()] == old[..]
        };
        let at = if old.is_empty() {
            Some(stated.clamp(floor, lines.len()))
        } else {
            // The stated line first, then outward from it.
            (0..=lines.len())
                .flat_map(|d| [stated.checked_add(d), stated.checked_sub(d)])
                .flatten()
                .find(|&at| fits(at))
        };
        let Some(at) = at else {
            return Err(format!(
                "hunk {} of {name} does not apply: its context and removed lines are not in the file (read the file and make the patch again)",
                n + 1
            ));
        };
        let touches_end = at + old.len() == lines.len();
        lines.splice(at..at + old.len(), new.iter().cloned());
        shift += new.len() as isize - old.len() as isize;
        floor = at + new.len();
        if touches_end {
            final_newline = !hunk.new_no_newline;
        }
    }
    let mut text = lines.join("\n");
    if final_newline && !lines.is_empty() {
        text.push('\n');
    }
    Ok(text)
}

/// Parses `patch` and applies each file's hunks to `original`, in memory: the parser and
/// matcher of [`apply_patch`] without a workspace (for `scripts/fuzz`). Returns each file's
/// patched text.
#[doc(hidden)]
pub fn parse_and_apply(original: &str, patch: &str) -> Result<Vec<String>, String> {
    parse(patch)?
        .iter()
        .map(|file| apply_hunks(original, &file.hunks, "fuzzed"))
        .collect()
}

/// One file's planned change.
enum Change {
    Write {
        path: String,
        content: String,
        created: bool,
    },
    Delete {
        path: String,
    },
}

/// Applies a multi-file patch to the workspace, all or nothing; returns a summary per file.
pub fn apply_patch(ws: &Workspace, patch: &str) -> Result<String, FsError> {
    let files = parse(patch).map_err(|e| FsError(format!("cannot parse the patch: {e}")))?;
    let mut changes = Vec::new();
    let mut summary = Vec::new();
    for file in &files {
        for path in file.old_path.iter().chain(&file.new_path) {
            ws.check_writable(path)?;
        }
        let original = match &file.old_path {
            Some(p) => ws.read_text(p)?,
            None => String::new(),
        };
        let name = file
            .new_path
            .as_deref()
            .or(file.old_path.as_deref())
            .unwrap_or("?");
        let patched = apply_hunks(&original, &file.hunks, name).map_err(FsError)?;
        let added: usize = file
            .hunks
            .iter()
            .map(|h| h.lines.iter().filter(|l| matches!(l, Line::Add(_))).count())
            .sum();
        let removed: usize = file
            .hunks
            .iter()
            .map(|h| {
                h.lines
                    .iter()
                    .filter(|l| matches!(l, Line::Remove(_)))
                    .count()
            })
            .sum();
        match (&file.old_path, &file.new_path) {
            (Some(old), None) => {
                if !patched.is_empty() {
                    return Err(FsError(format!(
                        "the patch deletes {old} but does not remove all of its lines"
                    )));
                }
                changes.push(Change::Delete { path: old.clone() });
                summary.push(format!("deleted {old}"));
            }
            (old, Some(new)) => {
                if old.as_deref().is_some_and(|o| o != new) {
                    changes.push(Change::Delete {
                        path: old.clone().expect("checked"),
                    });
                }
                if old.is_none() && ws.exists(new)? {
                    return Err(FsError(format!(
                        "the patch creates {new}, which already exists"
                    )));
                }
                changes.push(Change::Write {
                    path: new.clone(),
                    content: patched,
                    created: old.is_none(),
                });
                summary.push(match old {
                    None => format!("created {new} (+{added})"),
                    Some(o) if o != new => format!("renamed {o} to {new} (+{added} -{removed})"),
                    Some(_) => format!("patched {new} (+{added} -{removed})"),
                });
            }
            (None, None) => unreachable!("refused by parse"),
        }
    }
    // Everything applied in memory; now write, remembering how to undo.
    let mut undo: Vec<(String, Option<String>)> = Vec::new();
    for change in &changes {
        let (path, result) = match change {
            Change::Write {
                path,
                content,
                created,
            } => {
                let before = if *created {
                    None
                } else {
                    ws.read_text(path).ok()
                };
                undo.push((path.clone(), before));
                (path, ws.write_text(path, content))
            }
            Change::Delete { path } => {
                undo.push((path.clone(), ws.read_text(path).ok()));
                (path, ws.remove_file(path))
            }
        };
        if let Err(e) = result {
            for (p, before) in undo.iter().rev() {
                let _ = match before {
                    Some(text) => ws.write_text(p, text),
                    None => ws.remove_file(p),
                };
            }
            return Err(FsError(format!(
                "writing {path} failed, nothing was changed: {e}"
            )));
        }
    }
    Ok(summary.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(&dir.path().join("ws"), "/workspace", false, None).unwrap();
        (dir, ws)
    }

    fn file(ws: &Workspace, p: &str) -> String {
        std::fs::read_to_string(ws.root().join(p)).unwrap()
    }

    #[test]
    fn a_multi_file_patch_edits_creates_and_deletes() {
        let (_d, ws) = ws();
        ws.write_text("src/a.txt", "one\ntwo\nthree\nfour\n")
            .unwrap();
        ws.write_text("old.txt", "bye\n").unwrap();
        let patch = "\
diff --git a/src/a.txt b/src/a.txt
--- a/src/a.txt
+++ b/src/a.txt
@@ -1,4 +1,4 @@
 one
-two
+TWO
 three
 four
--- /dev/null
+++ b/new/b.txt
@@ -0,0 +1,2 @@
+hello
+world
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
";
        let summary = apply_patch(&ws, patch).unwrap();
        assert_eq!(file(&ws, "src/a.txt"), "one\nTWO\nthree\nfour\n");
        assert_eq!(file(&ws, "new/b.txt"), "hello\nworld\n");
        assert!(!ws.root().join("old.txt").exists());
        assert_eq!(
            summary,
            "patched src/a.txt (+1 -1)\ncreated new/b.txt (+2)\ndeleted old.txt"
        );
    }

    #[test]
    fn a_hunk_with_a_wrong_line_number_is_found_nearby() {
        let (_d, ws) = ws();
        ws.write_text("f", "a\nb\nc\nd\ne\n").unwrap();
        let patch = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n d\n-e\n+E\n";
        apply_patch(&ws, patch).unwrap();
        assert_eq!(file(&ws, "f"), "a\nb\nc\nd\nE\n");
    }

    #[test]
    fn a_failing_hunk_changes_no_file() {
        let (_d, ws) = ws();
        ws.write_text("a", "1\n2\n").unwrap();
        ws.write_text("b", "x\n").unwrap();
        let patch = "--- a/a\n+++ b/a\n@@ -1 +1 @@\n-1\n+one\n--- a/b\n+++ b/b\n@@ -1 +1 @@\n-not there\n+y\n";
        let err = apply_patch(&ws, patch).unwrap_err();
        assert!(err.0.contains("hunk 1 of b does not apply"), "{err}");
        assert_eq!(file(&ws, "a"), "1\n2\n");
    }

    #[test]
    fn no_newline_at_end_of_file_is_kept() {
        let (_d, ws) = ws();
        ws.write_text("f", "a\nb").unwrap();
        let patch = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n";
        apply_patch(&ws, patch).unwrap();
        assert_eq!(file(&ws, "f"), "a\nc");
    }

    #[test]
    fn paths_outside_the_workspace_are_refused_before_anything_is_written() {
        let (dir, ws) = ws();
        ws.write_text("a", "1\n").unwrap();
        for target in ["../../etc/passwd", "/etc/passwd", "../outside.txt"] {
            let patch = format!("--- a/a\n+++ b/a\n@@ -1 +1 @@\n-1\n+2\n--- /dev/null\n+++ {target}\n@@ -0,0 +1 @@\n+pwned\n");
            let err = apply_patch(&ws, &patch).unwrap_err();
            assert!(err.0.contains("outside the workspace"), "{target}: {err}");
        }
        assert_eq!(file(&ws, "a"), "1\n");
        assert!(!dir.path().join("outside.txt").exists());
    }

    #[test]
    fn a_hunk_line_starting_with_a_multibyte_character_is_an_error_not_a_crash() {
        let (_d, ws) = ws();
        ws.write_text("f", "a\n").unwrap();
        for patch in [
            "--- a/f\n+++ b/f\n@@ -1 +1 @@\né\n",
            "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n😀\n",
        ] {
            let err = apply_patch(&ws, patch).unwrap_err();
            assert!(err.0.contains("unexpected"), "{err}");
        }
        assert_eq!(file(&ws, "f"), "a\n");
    }

    #[test]
    fn garbage_is_not_a_patch() {
        let (_d, ws) = ws();
        assert!(apply_patch(&ws, "please change the file")
            .unwrap_err()
            .0
            .contains("no file patches"));
        assert!(apply_patch(&ws, "--- a/x\n@@ -1 +1 @@\n")
            .unwrap_err()
            .0
            .contains("not followed by"));
    }
}
