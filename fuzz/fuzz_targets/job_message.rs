//! A queued body: a job this build runs, or a reason it does not.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(job) = infra::model::JobMessage::decode(text) {
            let _ = job.encode();
        }
    }
});
