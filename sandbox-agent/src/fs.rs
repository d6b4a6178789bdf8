//! The workspace as the file tools see it, on the host side of the sandbox's bind mount:
//! every path a model gives is mapped into the workspace or refused, and the `read`, `write`
//! and `edit` tools on top of that.
//!
//! Decisions (docs/security.md):
//! - Every path is resolved beneath the workspace by `cap-std` (`openat2` with
//!   `RESOLVE_BENEATH` where the kernel has it, else one `O_NOFOLLOW` step per component):
//!   no component, parent directories included, can lead out, however a process in the
//!   sandbox swaps directories for symlinks meanwhile. Parents are created the same way.
//!   Relative symlinks that stay inside are followed; absolute ones never are (they name a
//!   host path here and a container path in the sandbox). The last component of a write is
//!   never a link: a link inside the workspace is written through its resolved target.
//! - Only regular files are opened for content: a FIFO, socket or device is refused before
//!   opening, and the open itself is non-blocking and checked again on the open descriptor,
//!   so a node swapped in between is refused too and nothing can block the worker.
//! - Writes open without truncating, check the descriptor, then truncate and write; files and
//!   directories created are handed to the sandbox user through their descriptors (`fchown`),
//!   never through a path that a link could redirect.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cap_fs_ext::{
    FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, OpenOptionsSyncExt,
};
use cap_std::fs::{Dir, File, OpenOptions};

/// Files larger than this are not read or edited whole.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// The most text one `read` returns.
pub const MAX_READ_BYTES: usize = 256 * 1024;
pub const DEFAULT_READ_LINES: usize = 2000;
pub const MAX_LINE_CHARS: usize = 2000;

/// The workspace a session's tools are confined to. Cloning shares the directory handle.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Canonical host path (for display and working directories).
    root: PathBuf,
    /// The open workspace directory every path is resolved beneath.
    dir: Arc<Dir>,
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
    // cap-std reports a path that would leave the directory as permission denied ("a path
    // led outside of the filesystem"); say what happened in the workspace's terms.
    if e.to_string().contains("outside of the filesystem") {
        return FsError(format!(
            "{path:?} leads outside the workspace through a symlink"
        ));
    }
    if e.raw_os_error() == Some(libc::ELOOP) {
        return FsError(format!(
            "{path:?} leads outside the workspace through a symlink"
        ));
    }
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
        let root = root.canonicalize()?;
        let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority())?;
        Ok(Workspace {
            root,
            dir: Arc::new(dir),
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

    /// Maps a path as the model wrote it to a path relative to the workspace, or refuses it.
    /// Lexical only: what it names on disk is resolved beneath the workspace when used.
    pub fn relative(&self, path: &str) -> Result<PathBuf, FsError> {
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
        Ok(clean)
    }

    /// A directory inside the workspace as commands see it (`workdir` of `exec`).
    pub fn view_dir(&self, given: &str) -> Result<String, FsError> {
        let rel = self.relative(given)?;
        if rel.as_os_str().is_empty() {
            return Ok(self.view.clone());
        }
        let meta = self.dir.metadata(&rel).map_err(|e| io_error(given, e))?;
        if !meta.is_dir() {
            return Err(FsError(format!("workdir {given:?} is not a directory")));
        }
        Ok(format!("{}/{}", self.view, rel.display()))
    }

    /// The workspace root as commands see it.
    pub fn view_root(&self) -> &str {
        &self.view
    }

    /// True when `given` names something inside the workspace (links followed inside only).
    pub fn exists(&self, given: &str) -> Result<bool, FsError> {
        let rel = self.relative(given)?;
        match self.dir.symlink_metadata(&rel) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(given, e)),
        }
    }

    /// The regular files directly in directory `given` (symlinks and special files left out),
    /// with their modification time and size; an absent directory has none.
    pub fn list_files(
        &self,
        given: &str,
    ) -> Result<Vec<(String, std::time::SystemTime, u64)>, FsError> {
        let rel = self.relative(given)?;
        let entries = match self.dir.read_dir(&rel) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_error(given, e)),
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !kind.is_file() {
                continue;
            }
            let (Ok(meta), Ok(name)) = (entry.metadata(), entry.file_name().into_string()) else {
                continue;
            };
            let modified = meta
                .modified()
                .map(|t| t.into_std())
                .unwrap_or(std::time::UNIX_EPOCH);
            files.push((name, modified, meta.len()));
        }
        files.sort();
        Ok(files)
    }

    /// The modification time and size of regular file `given`, if there is one.
    pub fn file_stamp(&self, given: &str) -> Option<(std::time::SystemTime, u64)> {
        let rel = self.relative(given).ok()?;
        let meta = self.dir.symlink_metadata(&rel).ok()?;
        meta.is_file().then(|| {
            let modified = meta
                .modified()
                .map(|t| t.into_std())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, meta.len())
        })
    }

    fn writable(&self, given: &str) -> Result<(), FsError> {
        if self.read_only {
            return Err(FsError(format!(
                "cannot write {given:?}: the workspace is mounted read-only (workspaceAccess: \"ro\")"
            )));
        }
        Ok(())
    }

    /// Opens a regular file for reading: refused when it is anything else, before opening
    /// and again on the descriptor.
    fn open_regular(&self, given: &str, rel: &Path) -> Result<File, FsError> {
        let meta = self.dir.metadata(rel).map_err(|e| io_error(given, e))?;
        not_special(given, &meta)?;
        let mut options = OpenOptions::new();
        options.read(true).nonblock(true);
        let file = self
            .dir
            .open_with(rel, &options)
            .map_err(|e| io_error(given, e))?;
        let meta = file.metadata().map_err(|e| io_error(given, e))?;
        not_special(given, &meta)?;
        Ok(file)
    }

    /// Reads a whole text file (≤ [`MAX_FILE_BYTES`]).
    pub fn read_text(&self, given: &str) -> Result<String, FsError> {
        let bytes = self.read_bytes(given, MAX_FILE_BYTES)?;
        if bytes[..bytes.len().min(8192)].contains(&0) {
            return Err(FsError(format!(
                "{given:?} is a binary file ({} bytes)",
                bytes.len()
            )));
        }
        String::from_utf8(bytes).map_err(|_| FsError(format!("{given:?} is not UTF-8 text")))
    }

    /// Reads a whole regular file of at most `max` bytes.
    pub fn read_bytes(&self, given: &str, max: u64) -> Result<Vec<u8>, FsError> {
        let rel = self.relative(given)?;
        let mut file = self.open_regular(given, &rel)?;
        let len = file.metadata().map_err(|e| io_error(given, e))?.len();
        if len > max {
            return Err(FsError(format!(
                "{given:?} is {len} bytes, over the {max}-byte limit; use exec (head, sed, rg) on it"
            )));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        (&mut file)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(given, e))?;
        Ok(bytes)
    }

    /// Writes `content`, creating parent directories; both end up owned by the sandbox user.
    pub fn write_text(&self, given: &str, content: &str) -> Result<(), FsError> {
        self.write_bytes(given, content.as_bytes(), MAX_FILE_BYTES)
    }

    /// [`Workspace::write_text`] for any bytes, up to `max`.
    pub fn write_bytes(&self, given: &str, content: &[u8], max: u64) -> Result<(), FsError> {
        self.writable(given)?;
        if content.len() as u64 > max {
            return Err(FsError(format!("content is over the {max}-byte limit")));
        }
        let mut rel = self.relative(given)?;
        if rel.as_os_str().is_empty() {
            return Err(FsError(format!(
                "{given:?} is the workspace itself, not a file"
            )));
        }
        // A link inside the workspace is written through its target (resolved beneath).
        if self
            .dir
            .symlink_metadata(&rel)
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            rel = self
                .dir
                .canonicalize(&rel)
                .map_err(|e| io_error(given, e))?;
        }
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.create_parents(given, parent)?;
        }
        let mut options = OpenOptions::new();
        options
            .write(true)
            .create(true)
            .nonblock(true)
            .follow(FollowSymlinks::No);
        let mut file = self
            .dir
            .open_with(&rel, &options)
            .map_err(|e| io_error(given, e))?;
        let meta = file.metadata().map_err(|e| io_error(given, e))?;
        not_special(given, &meta)?;
        file.set_len(0).map_err(|e| io_error(given, e))?;
        file.write_all(content).map_err(|e| io_error(given, e))?;
        self.hand_over(&file);
        Ok(())
    }

    /// Creates each missing directory of `parent` beneath the workspace, one component at a
    /// time (links are not followed), and hands each new one to the sandbox user.
    fn create_parents(&self, given: &str, parent: &Path) -> Result<(), FsError> {
        let mut at = PathBuf::new();
        for part in parent.components() {
            at.push(part);
            match self.dir.create_dir(&at) {
                Ok(()) => {
                    // A real descriptor (not `O_PATH`), so `fchown` works on it.
                    let mut options = OpenOptions::new();
                    options
                        .read(true)
                        .maybe_dir(true)
                        .follow(FollowSymlinks::No);
                    let created = self
                        .dir
                        .open_with(&at, &options)
                        .map_err(|e| io_error(given, e))?;
                    self.hand_over(&created);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(given, e)),
            }
        }
        Ok(())
    }

    /// Gives an open file or directory to the sandbox user, through its descriptor.
    fn hand_over(&self, handle: &impl AsFd) {
        if let Some((uid, gid)) = self.owner {
            let _ = std::os::unix::fs::fchown(handle, Some(uid), Some(gid));
        }
    }

    /// Deletes a file (for patches that remove one); a link is removed, never its target.
    pub fn remove_file(&self, given: &str) -> Result<(), FsError> {
        self.writable(given)?;
        let rel = self.relative(given)?;
        self.dir.remove_file(&rel).map_err(|e| io_error(given, e))
    }

    pub fn check_writable(&self, given: &str) -> Result<PathBuf, FsError> {
        self.writable(given)?;
        self.relative(given)
    }
}

/// Refuses what is not a regular file: a directory, a FIFO, a socket, a device.
fn not_special(given: &str, meta: &cap_std::fs::Metadata) -> Result<(), FsError> {
    if meta.is_dir() {
        return Err(FsError(format!(
            "{given:?} is a directory; list it with exec (ls)"
        )));
    }
    if !meta.is_file() {
        return Err(FsError(format!(
            "{given:?} is not a regular file (a FIFO, socket or device); the file tools only open regular files"
        )));
    }
    Ok(())
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
    use std::os::unix::fs::FileTypeExt;

    fn ws() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(&dir.path().join("ws"), "/workspace", false, None).unwrap();
        (dir, ws)
    }

    #[test]
    fn paths_map_into_the_workspace() {
        let (_d, ws) = ws();
        assert_eq!(ws.relative("a/b.txt").unwrap(), Path::new("a/b.txt"));
        assert_eq!(
            ws.relative("/workspace/a/./b.txt").unwrap(),
            Path::new("a/b.txt")
        );
        assert_eq!(ws.relative("a/../c").unwrap(), Path::new("c"));
        let host_abs = ws.root().join("x").display().to_string();
        assert_eq!(ws.relative(&host_abs).unwrap(), Path::new("x"));
        std::fs::create_dir(ws.root().join("sub")).unwrap();
        assert_eq!(ws.view_dir("sub").unwrap(), "/workspace/sub");
        assert_eq!(ws.view_dir(".").unwrap(), "/workspace");
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
            let err = ws.relative(path).unwrap_err();
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
        std::os::unix::fs::symlink("inside.txt", ws.root().join("inner-link")).unwrap();
        // An absolute link names a host path here and a container path in the sandbox: it is
        // never followed, even when it happens to point inside.
        std::os::unix::fs::symlink(ws.root().join("inside.txt"), ws.root().join("abs-link"))
            .unwrap();

        for path in [
            "etc-link/passwd",
            "passwd",
            "dangling",
            "etc-link/new-file",
            "abs-link",
        ] {
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
    fn a_fifo_or_socket_is_refused_at_once_and_never_blocks() {
        let (_d, ws) = ws();
        let fifo = ws.root().join("p");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::os::unix::net::UnixListener::bind(ws.root().join("s")).unwrap();
        let started = std::time::Instant::now();

        for path in ["p", "s"] {
            let read_err = read(&ws, path, None, None).unwrap_err();
            let write_err = ws.write_text(path, "x").unwrap_err();
            assert!(read_err.0.contains("not a regular file"), "{read_err}");
            assert!(!write_err.0.is_empty());
        }

        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
    }

    #[test]
    fn swapping_a_directory_for_a_symlink_never_reaches_outside() {
        // What a process left in the sandbox can do through the bind mount: flip `sub` between
        // a directory and a link to a host directory while the worker writes into it.
        let (dir, ws) = ws();
        let canary = dir.path().join("canary");
        std::fs::create_dir(&canary).unwrap();
        std::fs::write(canary.join("keep"), "precious").unwrap();
        let root = ws.root().to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, canary) = (stop.clone(), canary.clone());
            std::thread::spawn(move || {
                let sub = root.join("sub");
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::remove_dir_all(&sub);
                    let _ = std::fs::remove_file(&sub);
                    let _ = std::fs::create_dir(&sub);
                    let _ = std::fs::remove_dir_all(&sub);
                    let _ = std::os::unix::fs::symlink(&canary, &sub);
                }
            })
        };

        for _ in 0..1000 {
            let _ = ws.write_text("sub/keep", "overwritten");
            let _ = ws.write_text("sub/new/deep.txt", "planted");
            let _ = ws.remove_file("sub/keep");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();

        let left: Vec<_> = std::fs::read_dir(&canary)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["keep"], "nothing was created in the host directory");
        assert_eq!(
            std::fs::read_to_string(canary.join("keep")).unwrap(),
            "precious"
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
