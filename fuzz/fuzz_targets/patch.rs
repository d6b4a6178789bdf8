//! `apply_patch`'s parser and hunk matcher on any text: an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (original, patch) = text.split_once('\u{0}').unwrap_or(("a\nb\nc\n", text));
        let _ = sandbox_worker::tools::patch::parse_and_apply(original, patch);
    }
});
