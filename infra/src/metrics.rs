//! Job metrics, in one vocabulary for every place they go: CloudWatch embedded metric format
//! (EMF) lines on stdout in the cloud, where the Lambda runtime or the CloudWatch agent turns
//! them into metrics with no API call, or hourly counters in the state store on one machine,
//! which `clawgate status` reads back.
//!
//! Decisions:
//! - Dimensions stay few and bounded: `Service` always, and `Tool` on tool metrics (tool names
//!   are a fixed set). Sessions and users are never a dimension: they are unbounded and
//!   personal.
//! - Store counters keep counts only (jobs started, finished, failed, tool calls, cold
//!   starts), one fixed hourly window each: what an operator glances at, at one write per
//!   event. Durations and tokens go to EMF only.
//! - Recording never fails a job: a sink error is logged and dropped.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::store::{RateCounters, StateStore};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "clawgate";
/// The window of the store counters.
pub const COUNTER_WINDOW: Duration = Duration::from_secs(3600);

/// Everything measured, with its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    JobsStarted,
    JobsFinished,
    JobsFailed,
    /// From the channel event to the job's claim by a worker.
    QueueWait,
    JobDuration,
    ModelLatency,
    ModelInputTokens,
    ModelOutputTokens,
    ToolCalls,
    ToolDuration,
    SandboxColdStarts,
}

impl Metric {
    pub const ALL: [Metric; 11] = [
        Metric::JobsStarted,
        Metric::JobsFinished,
        Metric::JobsFailed,
        Metric::QueueWait,
        Metric::JobDuration,
        Metric::ModelLatency,
        Metric::ModelInputTokens,
        Metric::ModelOutputTokens,
        Metric::ToolCalls,
        Metric::ToolDuration,
        Metric::SandboxColdStarts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::JobsStarted => "JobsStarted",
            Metric::JobsFinished => "JobsFinished",
            Metric::JobsFailed => "JobsFailed",
            Metric::QueueWait => "QueueWait",
            Metric::JobDuration => "JobDuration",
            Metric::ModelLatency => "ModelLatency",
            Metric::ModelInputTokens => "ModelInputTokens",
            Metric::ModelOutputTokens => "ModelOutputTokens",
            Metric::ToolCalls => "ToolCalls",
            Metric::ToolDuration => "ToolDuration",
            Metric::SandboxColdStarts => "SandboxColdStarts",
        }
    }

    /// The CloudWatch unit.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::QueueWait
            | Metric::JobDuration
            | Metric::ModelLatency
            | Metric::ToolDuration => "Milliseconds",
            _ => "Count",
        }
    }

    /// Whether the store keeps an hourly counter of it.
    pub fn counted(self) -> bool {
        self.unit() == "Count"
            && !matches!(self, Metric::ModelInputTokens | Metric::ModelOutputTokens)
    }

    /// The store counter key for this metric.
    pub fn counter_key(self) -> String {
        format!("metric:{}", self.name())
    }
}

/// One EMF line (a JSON object) for `value` of `metric`, with `Service` and the extra
/// dimensions.
pub fn emf_line(
    service: &str,
    metric: Metric,
    value: f64,
    dimensions: &[(&str, &str)],
    timestamp_ms: i64,
) -> Value {
    let mut keys = vec!["Service".to_string()];
    keys.extend(dimensions.iter().map(|(k, _)| k.to_string()));
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [keys],
                "Metrics": [{ "Name": metric.name(), "Unit": metric.unit() }],
            }],
        }),
    );
    line.insert("Service".into(), json!(service));
    for (k, v) in dimensions {
        line.insert((*k).to_string(), json!(v));
    }
    line.insert(metric.name().into(), json!(value));
    Value::Object(line)
}

/// Where recorded values go.
#[derive(Clone, Default)]
pub enum Sink {
    /// Nowhere (tests, tools).
    #[default]
    Off,
    /// EMF lines to a writer (stdout in production).
    Emf(Arc<Mutex<Box<dyn Write + Send>>>),
    /// Hourly counters in the state store.
    Store(Arc<dyn StateStore>),
}

/// A cheap handle every part of a job records through.
#[derive(Clone, Default)]
pub struct Metrics {
    service: &'static str,
    sink: Sink,
}

impl Metrics {
    pub fn new(service: &'static str, sink: Sink) -> Self {
        Metrics { service, sink }
    }

    /// EMF lines on stdout.
    pub fn emf_stdout(service: &'static str) -> Self {
        Metrics::new(
            service,
            Sink::Emf(Arc::new(Mutex::new(Box::new(std::io::stdout())))),
        )
    }

    pub async fn record(&self, metric: Metric, value: f64, dimensions: &[(&str, &str)]) {
        match &self.sink {
            Sink::Off => {}
            Sink::Emf(out) => {
                let line = emf_line(
                    self.service,
                    metric,
                    value,
                    dimensions,
                    chrono::Utc::now().timestamp_millis(),
                );
                let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
                    tracing::warn!(error = %e, "could not write a metric");
                }
            }
            Sink::Store(counters) if metric.counted() => {
                let n = value.clamp(0.0, f64::from(u32::MAX)) as u32;
                if let Err(e) = counters.add(&metric.counter_key(), COUNTER_WINDOW, n).await {
                    tracing::warn!(error = %e, metric = metric.name(), "could not count a metric");
                }
            }
            Sink::Store(_) => {}
        }
    }

    /// Records a count of one.
    pub async fn count(&self, metric: Metric, dimensions: &[(&str, &str)]) {
        self.record(metric, 1.0, dimensions).await;
    }

    /// Records a duration in milliseconds.
    pub async fn time(&self, metric: Metric, took: Duration, dimensions: &[(&str, &str)]) {
        self.record(metric, took.as_secs_f64() * 1000.0, dimensions)
            .await;
    }
}

/// This hour's store counters (adding zero reads a counter), for `clawgate status`.
pub async fn read_counters(
    counters: &dyn RateCounters,
) -> Result<Vec<(&'static str, u64)>, crate::store::StoreError> {
    let mut out = Vec::new();
    for metric in Metric::ALL.into_iter().filter(|m| m.counted()) {
        out.push((
            metric.name(),
            counters
                .add(&metric.counter_key(), COUNTER_WINDOW, 0)
                .await?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_its_metric_and_dimensions() {
        let line = emf_line(
            "worker",
            Metric::ToolDuration,
            12.5,
            &[("Tool", "exec")],
            1_700_000_000_000,
        );

        assert_eq!(
            line,
            json!({
                "_aws": { "Timestamp": 1_700_000_000_000_i64, "CloudWatchMetrics": [{
                    "Namespace": "clawgate", "Dimensions": [["Service", "Tool"]],
                    "Metrics": [{ "Name": "ToolDuration", "Unit": "Milliseconds" }] }] },
                "Service": "worker", "Tool": "exec", "ToolDuration": 12.5
            })
        );
    }

    #[test]
    fn only_counts_are_kept_as_store_counters() {
        let counted: Vec<&str> = Metric::ALL
            .iter()
            .filter(|m| m.counted())
            .map(|m| m.name())
            .collect();
        assert_eq!(
            counted,
            [
                "JobsStarted",
                "JobsFinished",
                "JobsFailed",
                "ToolCalls",
                "SandboxColdStarts"
            ]
        );
    }
}
