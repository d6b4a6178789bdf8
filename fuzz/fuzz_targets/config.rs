//! The config file: parsed and validated, or a list of problems, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = infra::config::Config::parse(text) {
            let _ = config.validate();
            let _ = config.agent_profile(config.default_agent());
        }
    }
});
