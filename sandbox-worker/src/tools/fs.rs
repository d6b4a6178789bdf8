//! The workspace as the file tools see it: every path a model gives is mapped into the workspace
//! or refused (`..` above the root, absolute paths elsewhere, symlinks that lead out), and the
//! `read`, `write` and `edit` tools on top of that.
//!
//! Decisions:
//! - File tools work on the host side of the workspace bind mount, for both backends: the same
//!   confinement code serves both, and a read costs no exec. Files written are handed to the
//!   container user, as the workspace itself is.
//! - A path is checked before use (lexically, then through every symlink on it) and the opened
//!   file is checked again through `/proc/self/fd`, so a symlink swapped in between the check
//!   and the open is caught; a file created outside by such a race is removed again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Files larger than this are not read or edited whole.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// The most text one `read` returns.
pub const MAX_READ_BYTES: usize = 256 * 1024;
pub const DEFAULT_READ_LINES: usize = 2000;
pub const MAX_LINE_CHARS: usize = 2000;

/// The workspace a session's tools are confined to.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Canonical host path.
    root: PathBuf,
    /// The workspace as commands see it (`/workspace` in a container).
    view: String,
    read_only: bool,
    owner: Option<(u32, u32)>,
}

/// Why a file tool refused or failed; the text goes back to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FsError(pub String);

fn io_error(path: &str, e: std::io::Error) -> FsError {
    FsError(format!("{path}: {e}"))
}

impl Workspace {
    /// Opens (creating) the workspace at `root`.
    pub fn new(
        root: &Path,
        view: &str,
        read_only: bool,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Workspace {
            root: root.canonicalize()?,
            view: view.trim_end_matches('/').to_string(),
            read_only,
            owner,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Maps a path as the model wrote it to a host path inside the workspace, or refuses it.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, FsError> {
        let outside = || FsError(format!("{path:?} is outside the workspace ({})", self.view));
        if path.is_empty() || path.contains('\0') {
            return Err(FsError(format!("{path:?} is not a valid path")));
        }
        let given = Path::new(path);
        let relative = if given.is_absolute() {
            if let Ok(rest) = given.strip_prefix(&self.view) {
                rest
            } else if let Ok(rest) = given.strip_prefix(&self.root) {
                rest
            } else {
                return Err(outside());
            }
        } else {
            given
        };
        let mut clean = PathBuf::new();
        for component in relative.components() {
            match component {
                Component::Normal(part) => clean.push(part),
                Component::CurDir => {}
                Component::ParentDir => {
                    if !clean.pop() {
                        return Err(outside());
                    }
                }
                Component::RootDir | Component::Prefix(_) => return Err(outside()),
            }
        }
        let full = self.root.join(&clean);
        self.check_symlinks(path, &full)?;
        Ok(full)
    }

    /// Follows every symlink on `full` as far as the path exists; all must stay inside.
    fn check_symlinks(&self, given: &str, full: &Path) -> Result<(), FsError> {
        let escape = || {
            FsError(format!(
                "{given:?} leads outside the workspace through a symlink"
            ))
        };
        let mut existing = full.to_path_buf();
        loop {
            match std::fs::symlink_metadata(&existing) {
                Ok(_) => break,
                Err(_) => {
                    if !existing.pop() {
                        return Err(escape());
                    }
                }
            }
        }
        match existing.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Ok(()),
            // A dangling symlink: where it points is not known to be inside.
            _ => Err(escape()),
        }
    }

    /// The workspace-view form of a host path inside it (for a command's working directory).
    pub fn view_path(&self, host: &Path) -> String {
        match host.strip_prefix(&self.root) {
            Ok(rest) if rest.as_os_str().is_empty() => self.view.clone(),
            Ok(rest) => format!("{}/{}", self.view, rest.display()),
            Err(_) => self.view.clone(),
        }
    }

    /// Checks that an open file really is inside the workspace (a symlink may have been swapped
    /// in after `resolve`).
    fn verify_open(&self, given: &str, file: &File) -> Result<(), FsError> {
        use std::os::fd::AsRawFd;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|e| io_error(given, e))?;
        if real.starts_with(&self.root) {
            Ok(())
        } else {
            Err(FsError(format!(
                "{given:?} leads outside the workspace through a symlink"
            )))
        }
    }

    fn writable(&self, given: &str) -> Result<(), FsError> {
        if self.read_only {
            return Err(FsError(format!(
                "cannot write {given:?}: the workspace is mounted read-only (workspaceAccess: \"ro\")"
            )));
        }
        Ok(())
    }

    /// Reads a whole text file (≤ [`MAX_FILE_BYTES`]).
    pub fn read_text(&self, given: &str) -> Result<String, FsError> {
        let path = self.resolve(given)?;
        // Symlinks inside the workspace are fine to follow; where the open really landed is
        // checked right after.
        let mut file = File::open(&path).map_err(|e| io_error(given, e))?;
        self.verify_open(given, &file)?;
        let meta = file.metadata().map_err(|e| io_error(given, e))?;
        if meta.is_dir() {
            return Err(FsError(format!(
                "{given:?} is a directory; list it with exec (ls)"
            )));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(FsError(format!(
                "{given:?} is {} bytes, over the {MAX_FILE_BYTES}-byte limit; use exec (head, sed, rg) on it",
                meta.len()
            )));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error(given, e))?;
        if bytes[..bytes.len().min(8192)].contains(&0) {
            return Err(FsError(format!(
                "{given:?} is a binary file ({} bytes)",
                bytes.len()
            )));
        }
        String::from_utf8(bytes).map_err(|_| FsError(format!("{given:?} is not UTF-8 text")))
    }

    /// Writes `content`, creating parent directories; both end up owned by the sandbox user.
    pub fn write_text(&self, given: &str, content: &str) -> Result<(), FsError> {
        self.writable(given)?;
        if content.len() as u64 > MAX_FILE_BYTES {
            return Err(FsError(format!(
                "content is over the {MAX_FILE_BYTES}-byte limit"
            )));
        }
        let mut path = self.resolve(given)?;
        if path.is_symlink() {
            // Known to lead inside (resolve checked): write its target, never through a link.
            path = path.canonicalize().map_err(|e| io_error(given, e))?;
        }
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        let mut created = Vec::new();
        let mut dir = parent.clone();
        while !dir.exists() && dir.starts_with(&self.root) {
            created.push(dir.clone());
            if !dir.pop() {
                break;
            }
        }
        std::fs::create_dir_all(&parent).map_err(|e| io_error(given, e))?;
        // Re-check now that the parents exist: one of them may be a symlink made meanwhile.
        self.check_symlinks(given, &path)?;
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| io_error(given, e))?;
        if let Err(e) = self.verify_open(given, &file) {
            if !existed {
                let _ = std::fs::remove_file(&path);
            }
            return Err(e);
        }
        file.write_all(content.as_bytes())
            .map_err(|e| io_error(given, e))?;
        if let Some((uid, gid)) = self.owner {
            for dir in created.iter().chain(std::iter::once(&path)) {
                let _ = std::os::unix::fs::chown(dir, Some(uid), Some(gid));
            }
        }
        Ok(())
    }

    /// Deletes a file (for patches that remove one).
    pub fn remove_file(&self, given: &str) -> Result<(), FsError> {
        self.writable(given)?;
        let path = self.resolve(given)?;
        std::fs::remove_file(&path).map_err(|e| io_error(given, e))
    }

    pub fn check_writable(&self, given: &str) -> Result<PathBuf, FsError> {
        self.writable(given)?;
        self.resolve(given)
    }
}

/// `read`: lines `offset..offset+limit` (1-based), long lines and large outputs cut, with a
/// note saying how to read on.
pub fn read(
    ws: &Workspace,
    path: &str,
    offset: Option<usize>,
    limit: Option<usize>,
) -> Result<String, FsError> {
    let text = ws.read_text(path)?;
    let offset = offset.unwrap_or(1).max(1);
    let limit = limit.unwrap_or(DEFAULT_READ_LINES).max(1);
    let total = text.lines().count();
    let mut out = String::new();
    let mut last = offset - 1;
    for (i, line) in text.lines().enumerate().skip(offset - 1).take(limit) {
        if out.len() + line.len() > MAX_READ_BYTES {
            break;
        }
        if line.chars().count() > MAX_LINE_CHARS {
            out.extend(line.chars().take(MAX_LINE_CHARS));
            out.push_str("…[line cut]");
        } else {
            out.push_str(line);
        }
        out.push('\n');
        last = i + 1;
    }
    if last < total {
        out.push_str(&format!(
            "\n[showing lines {offset}-{last} of {total}; continue with offset={}]\n",
            last + 1
        ));
    }
    Ok(out)
}

/// `edit`: replaces the one exact occurrence of `old` with `new`; returns a short diff.
pub fn edit(ws: &Workspace, path: &str, old: &str, new: &str) -> Result<String, FsError> {
    ws.check_writable(path)?;
    if old.is_empty() {
        return Err(FsError(
            "oldText is empty; use write to create or replace a whole file".into(),
        ));
    }
    let text = ws.read_text(path)?;
    let count = text.matches(old).count();
    let at = match count {
        0 => return Err(FsError(format!("oldText was not found in {path:?}; read the file and copy the text exactly"))),
        1 => text.find(old).expect("counted once"),
        n => {
            return Err(FsError(format!(
                "oldText occurs {n} times in {path:?}; include more surrounding text so it matches once"
            )))
        }
    };
    let updated = format!("{}{new}{}", &text[..at], &text[at + old.len()..]);
    ws.write_text(path, &updated)?;
    Ok(short_diff(path, &text[..at], old, new))
}

/// A unified-style diff of one replacement, at most 40 lines a side.
fn short_diff(path: &str, before: &str, old: &str, new: &str) -> String {
    let line = before.matches('\n').count() + 1;
    let mut out = format!("--- {path}\n+++ {path}\n@@ line {line} @@\n");
    for (sign, text) in [('-', old), ('+', new)] {
        let lines: Vec<&str> = text.lines().collect();
        for l in lines.iter().take(40) {
            out.push(sign);
            out.push_str(l);
            out.push('\n');
        }
        if lines.len() > 40 {
            out.push_str(&format!("{sign}…[{} more lines]\n", lines.len() - 40));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(&dir.path().join("ws"), "/workspace", false, None).unwrap();
        (dir, ws)
    }

    #[test]
    fn paths_map_into_the_workspace() {
        let (_d, ws) = ws();
        assert_eq!(ws.resolve("a/b.txt").unwrap(), ws.root().join("a/b.txt"));
        assert_eq!(
            ws.resolve("/workspace/a/./b.txt").unwrap(),
            ws.root().join("a/b.txt")
        );
        assert_eq!(ws.resolve("a/../c").unwrap(), ws.root().join("c"));
        let host_abs = ws.root().join("x").display().to_string();
        assert_eq!(ws.resolve(&host_abs).unwrap(), ws.root().join("x"));
        assert_eq!(ws.view_path(&ws.root().join("sub")), "/workspace/sub");
    }

    #[test]
    fn traversal_and_outside_paths_are_refused() {
        let (_d, ws) = ws();
        for path in [
            "../../etc/passwd",
            "/etc/passwd",
            "a/../../x",
            "/workspace/../etc/passwd",
            "",
            "/workspacex/a",
        ] {
            let err = ws.resolve(path).unwrap_err();
            assert!(
                err.0.contains("outside the workspace") || err.0.contains("not a valid"),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn symlinks_that_leave_the_workspace_are_refused() {
        let (dir, ws) = ws();
        std::os::unix::fs::symlink("/etc", ws.root().join("etc-link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ws.root().join("passwd")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), ws.root().join("dangling")).unwrap();
        std::fs::write(ws.root().join("inside.txt"), "ok\n").unwrap();
        std::os::unix::fs::symlink(ws.root().join("inside.txt"), ws.root().join("inner-link"))
            .unwrap();

        for path in ["etc-link/passwd", "passwd", "dangling", "etc-link/new-file"] {
            assert!(
                read(&ws, path, None, None)
                    .unwrap_err()
                    .0
                    .contains("symlink"),
                "read {path}"
            );
            assert!(
                ws.write_text(path, "x").unwrap_err().0.contains("symlink"),
                "write {path}"
            );
        }
        assert!(
            !dir.path().join("nowhere").exists(),
            "nothing was created through the dangling link"
        );
        assert_eq!(read(&ws, "inner-link", None, None).unwrap(), "ok\n");
        ws.write_text("inner-link", "changed").unwrap();
        assert_eq!(
            std::fs::read_to_string(ws.root().join("inside.txt")).unwrap(),
            "changed"
        );
    }

    #[test]
    fn read_pages_by_lines_and_says_how_to_continue() {
        let (_d, ws) = ws();
        let text: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        ws.write_text("f.txt", &text).unwrap();
        let page = read(&ws, "f.txt", Some(3), Some(2)).unwrap();
        assert!(page.starts_with("line 3\nline 4\n"));
        assert!(page.contains("continue with offset=5"));
        assert_eq!(
            read(&ws, "f.txt", Some(9), None).unwrap(),
            "line 9\nline 10\n"
        );
    }

    #[test]
    fn read_refuses_binary_and_directories() {
        let (_d, ws) = ws();
        std::fs::write(ws.root().join("bin"), [0u8, 1, 2, 3]).unwrap();
        std::fs::create_dir(ws.root().join("d")).unwrap();
        assert!(read(&ws, "bin", None, None)
            .unwrap_err()
            .0
            .contains("binary"));
        assert!(read(&ws, "d", None, None)
            .unwrap_err()
            .0
            .contains("directory"));
    }

    #[test]
    fn write_creates_parents() {
        let (_d, ws) = ws();
        ws.write_text("deep/er/f.txt", "hello").unwrap();
        assert_eq!(
            std::fs::read_to_string(ws.root().join("deep/er/f.txt")).unwrap(),
            "hello"
        );
    }

    #[test]
    fn edit_needs_exactly_one_match_and_returns_a_diff() {
        let (_d, ws) = ws();
        ws.write_text("f.rs", "fn a() {}\nfn b() {}\nfn b() {}\n")
            .unwrap();
        let diff = edit(&ws, "f.rs", "fn a() {}", "fn a() { 1 }").unwrap();
        assert!(
            diff.contains("@@ line 1 @@\n-fn a() {}\n+fn a() { 1 }"),
            "{diff}"
        );
        assert!(edit(&ws, "f.rs", "fn b() {}", "x")
            .unwrap_err()
            .0
            .contains("2 times"));
        assert!(edit(&ws, "f.rs", "fn z()", "x")
            .unwrap_err()
            .0
            .contains("not found"));
        assert_eq!(
            std::fs::read_to_string(ws.root().join("f.rs")).unwrap(),
            "fn a() { 1 }\nfn b() {}\nfn b() {}\n"
        );
    }

    #[test]
    fn a_read_only_workspace_refuses_writes_and_edits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let ws = Workspace::new(dir.path(), "/workspace", true, None).unwrap();
        assert!(ws.write_text("g", "y").unwrap_err().0.contains("read-only"));
        assert!(edit(&ws, "f", "x", "y")
            .unwrap_err()
            .0
            .contains("read-only"));
        assert_eq!(read(&ws, "f", None, None).unwrap(), "x\n");
    }
}
