//! Session keys: a key that parses prints back to the same text and parses again to itself.
#![no_main]
use infra::model::SessionKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = text.parse::<SessionKey>() {
            let printed = key.to_string();
            assert_eq!(printed, text);
            assert_eq!(printed.parse::<SessionKey>().ok(), Some(key));
        }
    }
});
