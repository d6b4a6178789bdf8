//! Phases of a job (queue, store, model, sandbox, reply) as `tracing` spans, and a layer that
//! totals their wall time for the worker benchmark.
//!
//! Job code only opens spans ([`span`]); it keeps no timers or globals. The spans are at
//! `TRACE` level under the target `clawgate::phase`, so a production subscriber (filter
//! `info`) turns their call sites off and they cost a relaxed load. A benchmark installs
//! [`PhaseTimes`] as its subscriber's layer and reads the totals.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target every phase span carries.
pub const TARGET: &str = "clawgate::phase";

/// A span for one phase of a job; wrap the call in it with `.instrument(phase::span("store"))`.
pub fn span(name: &'static str) -> tracing::Span {
    tracing::trace_span!(target: "clawgate::phase", "phase", name)
}

/// Totals (time, spans closed) per phase name.
#[derive(Clone, Default)]
pub struct PhaseTimes {
    totals: Arc<Mutex<BTreeMap<&'static str, (Duration, u64)>>>,
}

struct Started {
    name: &'static str,
    at: Instant,
}

impl PhaseTimes {
    /// The totals so far, and a reset.
    pub fn take(&self) -> BTreeMap<&'static str, (Duration, u64)> {
        std::mem::take(&mut *self.totals.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<S> Layer<S> for PhaseTimes
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != TARGET {
            return;
        }
        let mut name = None;
        attrs.record(&mut NameVisitor(&mut name));
        if let (Some(name), Some(span)) = (name, ctx.span(id)) {
            span.extensions_mut().insert(Started {
                name,
                at: Instant::now(),
            });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let Some(started) = extensions.get::<Started>() else {
            return;
        };
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let entry = totals.entry(started.name).or_default();
        entry.0 += started.at.elapsed();
        entry.1 += 1;
    }
}

/// Reads the `name` field, which [`span`] sets to a `&'static str`.
struct NameVisitor<'a>(&'a mut Option<&'static str>);

impl tracing::field::Visit for NameVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "name" {
            // The phase names are a closed set; map back to the static strings.
            *self.0 = PHASES.iter().copied().find(|p| *p == value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            let text = format!("{value:?}");
            *self.0 = PHASES
                .iter()
                .copied()
                .find(|p| *p == text.trim_matches('"'));
        }
    }
}

/// Every phase a job has.
pub const PHASES: &[&str] = &["queue", "store", "model", "sandbox", "reply"];

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    #[tokio::test]
    async fn spans_add_up_per_phase_and_other_spans_are_ignored() {
        let times = PhaseTimes::default();
        let subscriber = tracing_subscriber::registry().with(times.clone());
        let _guard = tracing::subscriber::set_default(subscriber);

        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(20))
                .instrument(span("store"))
                .await;
        }
        async {}.instrument(tracing::info_span!("unrelated")).await;

        let totals = times.take();
        let (time, count) = totals["store"];
        assert_eq!(count, 2);
        assert!(time >= Duration::from_millis(40), "{time:?}");
        assert_eq!(totals.len(), 1);
        assert!(times.take().is_empty(), "take resets");
    }
}
