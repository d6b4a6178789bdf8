//! Several API keys for one provider (OpenClaw's auth profiles, as plain keys), rotated on
//! rate limits.
//!
//! Decisions:
//! - A key that answers 429 cools down for what the provider advised (`retry-after`), else a
//!   minute; the call moves at once to the next key that is not cooling down, without the
//!   retry backoff. Only when every key is cooling down does the backoff apply, and the key
//!   whose cool-down ends first is tried.
//! - The rings live as long as the worker ([`KeyRings`]), so one job's 429 spares the next job
//!   the same refusal; they are per process, not shared across a fleet (a cool-down is a
//!   minute or so, not worth a store round trip per call).
//! - Keys are picked round-robin from where the last rotation left off, so the load spreads
//!   when every key is healthy only after a rotation: a healthy first key keeps the provider's
//!   prompt cache warm.
//! - A spend limit or a refused key is not rotated away from: it is the account's state, and
//!   the model failover (`Failover`) is what handles it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infra::config::Secret;

/// How long a rate-limited key rests when the provider gives no advice.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(60);

/// One provider's keys and their cool-downs.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<Secret>,
    state: Mutex<RingState>,
}

#[derive(Debug)]
struct RingState {
    next: usize,
    cooling_until: Vec<Option<Instant>>,
}

impl KeyRing {
    pub fn new(keys: Vec<Secret>) -> Self {
        let n = keys.len();
        KeyRing {
            keys,
            state: Mutex::new(RingState {
                next: 0,
                cooling_until: vec![None; n],
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key to use now and its index: the first from the cursor that is not cooling down,
    /// else the one that is ready soonest. `None` for a provider without keys.
    pub fn pick(&self) -> Option<(usize, &Secret)> {
        if self.keys.is_empty() {
            return None;
        }
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let n = self.keys.len();
        let ready = (0..n)
            .map(|i| (state.next + i) % n)
            .find(|&i| state.cooling_until[i].is_none_or(|t| t <= now));
        let i = ready.unwrap_or_else(|| {
            (0..n)
                .min_by_key(|&i| state.cooling_until[i].unwrap_or(now))
                .unwrap_or(0)
        });
        Some((i, &self.keys[i]))
    }

    /// Key `i` was rate limited: it rests for `rest` and the next pick starts after it. True
    /// when another key is ready now.
    pub fn rate_limited(&self, i: usize, rest: Duration) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let n = self.keys.len();
        if i >= n {
            return false;
        }
        state.cooling_until[i] = Some(now + rest);
        state.next = (i + 1) % n;
        (0..n).any(|j| j != i && state.cooling_until[j].is_none_or(|t| t <= now))
    }
}

/// The key rings of a worker, one per provider, made on first use.
#[derive(Debug, Default)]
pub struct KeyRings {
    by_provider: Mutex<HashMap<String, Arc<KeyRing>>>,
}

impl KeyRings {
    /// The ring of `provider` with `keys`; a changed key list makes a new ring.
    pub fn ring(&self, provider: &str, keys: Vec<Secret>) -> Arc<KeyRing> {
        let mut rings = self.by_provider.lock().unwrap_or_else(|p| p.into_inner());
        match rings.get(provider) {
            Some(ring) if ring.keys == keys => ring.clone(),
            _ => {
                let ring = Arc::new(KeyRing::new(keys));
                rings.insert(provider.to_string(), ring.clone());
                ring
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> KeyRing {
        KeyRing::new((0..n).map(|i| Secret::new(format!("k{i}"))).collect())
    }

    #[test]
    fn a_rate_limited_key_rests_and_the_next_one_is_used() {
        let ring = ring(3);
        assert_eq!(ring.pick().unwrap().0, 0);

        assert!(ring.rate_limited(0, Duration::from_secs(60)));
        assert_eq!(ring.pick().unwrap().0, 1);
        assert!(ring.rate_limited(1, Duration::from_secs(60)));
        assert_eq!(ring.pick().unwrap().0, 2);
        assert!(
            !ring.rate_limited(2, Duration::from_secs(5)),
            "no key is ready"
        );
        assert_eq!(ring.pick().unwrap().0, 2, "the one ready soonest");
    }

    #[test]
    fn a_rested_key_is_used_again() {
        let ring = ring(2);
        ring.rate_limited(0, Duration::ZERO);
        assert_eq!(ring.pick().unwrap().0, 1);
        ring.rate_limited(1, Duration::from_secs(60));
        assert_eq!(ring.pick().unwrap().0, 0);
    }

    #[test]
    fn no_keys_no_pick_and_rings_follow_the_config() {
        assert!(KeyRing::new(vec![]).pick().is_none());
        let rings = KeyRings::default();
        let a = rings.ring("anthropic", vec![Secret::new("a")]);
        assert!(Arc::ptr_eq(
            &a,
            &rings.ring("anthropic", vec![Secret::new("a")])
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &rings.ring("anthropic", vec![Secret::new("b")])
        ));
    }
}
