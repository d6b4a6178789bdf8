//! Time spent per phase of a job (queue, store, model, sandbox, reply), for the worker
//! benchmark. Off unless [`enable`] is called; when off, [`timed`] costs one atomic load.
//! Only leaf calls are wrapped, so the phases do not overlap within one job.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Runs `work`, adding its duration to `phase` when timing is on.
pub async fn timed<F: Future>(phase: &'static str, work: F) -> F::Output {
    if !ENABLED.load(Ordering::Relaxed) {
        return work.await;
    }
    let started = Instant::now();
    let out = work.await;
    let mut totals = TOTALS.lock().expect("lock");
    let entry = totals.entry(phase).or_default();
    entry.0 += started.elapsed();
    entry.1 += 1;
    out
}

/// Totals so far (time, calls) per phase, and a reset.
pub fn take() -> BTreeMap<&'static str, (Duration, u64)> {
    std::mem::take(&mut *TOTALS.lock().expect("lock"))
}
