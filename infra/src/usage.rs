//! Token usage and its estimated cost: every model call's input, output and cache tokens, added
//! to counters in the store per session and per day, each per model, which `/usage`,
//! `clawgate status` and the Control UI read back.
//!
//! Decisions:
//! - The store's `RateCounters` hold the totals (one atomic add per figure), so every worker of
//!   a fleet adds to the same numbers. A day's counters are keyed by its UTC date; a session's
//!   live in one 3650-day window (they restart when that window turns, once a decade).
//! - A day's counters are written by every job of the fleet, so each is spread over
//!   [`DAY_SHARDS`] keys (`…#n`, the shard a hash of the session): at a million users one key
//!   would take more writes a second than a DynamoDB partition accepts (docs/scaling.md). Reading
//!   a day sums its shards, and the unsharded key older versions wrote.
//! - Cost is an estimate from `models.pricing` (USD per million tokens, per `provider/model`):
//!   a model without a price has no cost, never a made-up one.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::model::SessionKey;
use crate::store::{RateCounters, StoreError};

const DAY_WINDOW: Duration = Duration::from_secs(2 * 86_400);
const SESSION_WINDOW: Duration = Duration::from_secs(3650 * 86_400);
/// How many keys each of a day's counters is spread over.
pub const DAY_SHARDS: u64 = 16;

pub use crate::model::Tokens;

/// A model's price, USD per million tokens (`models.pricing."provider/model"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

/// The estimated cost of `tokens` of `model`, when the table prices it.
pub fn cost(pricing: &BTreeMap<String, Price>, model: &str, tokens: &Tokens) -> Option<f64> {
    let price = pricing.get(model)?;
    let per = |n: u64, usd: f64| n as f64 * usd / 1_000_000.0;
    Some(
        per(tokens.input, price.input)
            + per(tokens.output, price.output)
            + per(tokens.cache_read, price.cache_read)
            + per(tokens.cache_write, price.cache_write),
    )
}

fn session_key(session: &SessionKey, model: &str, figure: &str) -> String {
    format!("usage:session:{session}:{model}:{figure}")
}

/// A day's counter key; `shard` `None` is the unsharded key of older versions.
fn day_key(day: NaiveDate, shard: Option<u64>, model: &str, figure: &str) -> String {
    match shard {
        Some(n) => format!("usage:day:{day}:{model}:{figure}#{n}"),
        None => format!("usage:day:{day}:{model}:{figure}"),
    }
}

/// The shard of a day's counters that `session` writes to: stable across workers and restarts.
pub fn day_shard(session: &SessionKey) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(session.to_string().as_bytes());
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default()) % DAY_SHARDS
}

async fn add_all(
    counters: &dyn RateCounters,
    tokens: &Tokens,
    key: impl Fn(&str) -> String,
    window: Duration,
) -> Result<Tokens, StoreError> {
    let mut total = Tokens::default();
    for (figure, n) in tokens.figures() {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let sum = counters.add(&key(figure), window, n).await?;
        match figure {
            "input" => total.input = sum,
            "output" => total.output = sum,
            "cacheRead" => total.cache_read = sum,
            _ => total.cache_write = sum,
        }
    }
    Ok(total)
}

/// Adds one call's tokens to its session's and its day's totals for `model`.
pub async fn record(
    counters: &dyn RateCounters,
    session: &SessionKey,
    day: NaiveDate,
    model: &str,
    tokens: &Tokens,
) -> Result<(), StoreError> {
    add_all(
        counters,
        tokens,
        |f| session_key(session, model, f),
        SESSION_WINDOW,
    )
    .await?;
    let shard = Some(day_shard(session));
    add_all(
        counters,
        tokens,
        |f| day_key(day, shard, model, f),
        DAY_WINDOW,
    )
    .await?;
    Ok(())
}

/// A session's totals for each of `models` that it used.
pub async fn session_totals(
    counters: &dyn RateCounters,
    session: &SessionKey,
    models: &[String],
) -> Result<Vec<(String, Tokens)>, StoreError> {
    totals(
        counters,
        models,
        |m, f| session_key(session, m, f),
        SESSION_WINDOW,
    )
    .await
}

/// A day's totals for each of `models` used that day.
pub async fn day_totals(
    counters: &dyn RateCounters,
    day: NaiveDate,
    models: &[String],
) -> Result<Vec<(String, Tokens)>, StoreError> {
    let mut sum: Vec<(String, Tokens)> = Vec::new();
    for shard in std::iter::once(None).chain((0..DAY_SHARDS).map(Some)) {
        let part = totals(
            counters,
            models,
            |m, f| day_key(day, shard, m, f),
            DAY_WINDOW,
        )
        .await?;
        for (model, tokens) in part {
            match sum.iter_mut().find(|(m, _)| *m == model) {
                Some((_, total)) => total.add(&tokens),
                None => sum.push((model, tokens)),
            }
        }
    }
    // The order of `models`, as before sharding.
    sum.sort_by_key(|(m, _)| models.iter().position(|x| x == m));
    Ok(sum)
}

/// Reads (adds zero to) each model's counters under `key`, keeping the models with any.
async fn totals(
    counters: &dyn RateCounters,
    models: &[String],
    key: impl Fn(&str, &str) -> String,
    window: Duration,
) -> Result<Vec<(String, Tokens)>, StoreError> {
    let mut out = Vec::new();
    for model in models {
        let tokens = add_all(counters, &Tokens::default(), |f| key(model, f), window).await?;
        if !tokens.is_zero() {
            out.push((model.clone(), tokens));
        }
    }
    Ok(out)
}

/// Totals as lines: `model: input N, output N, cache read N, cache write N (≈ $x.xxxx)`.
pub fn describe(totals: &[(String, Tokens)], pricing: &BTreeMap<String, Price>) -> String {
    if totals.is_empty() {
        return "no model calls".into();
    }
    totals
        .iter()
        .map(|(model, t)| {
            let cost = cost(pricing, model, t).map_or_else(
                || " (no price in models.pricing)".to_string(),
                |usd| format!(" (≈ ${usd:.4})"),
            );
            format!(
                "{model}: input {}, output {}, cache read {}, cache write {}{cost}",
                t.input, t.output, t.cache_read, t.cache_write
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_day_is_spread_over_shards_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let counters = crate::store::sqlite::SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        let model = "anthropic/x".to_string();
        let one = Tokens {
            input: 10,
            output: 1,
            ..Default::default()
        };
        let mut shards = std::collections::BTreeSet::new();
        for peer in 0..64 {
            let session =
                SessionKey::dm("main", crate::model::Channel::Telegram, &peer.to_string());
            shards.insert(day_shard(&session));
            record(&counters, &session, day, &model, &one)
                .await
                .unwrap();
        }
        // A total an older version wrote to the unsharded key still counts.
        counters
            .add(&day_key(day, None, &model, "input"), DAY_WINDOW, 5)
            .await
            .unwrap();

        let totals = day_totals(&counters, day, std::slice::from_ref(&model))
            .await
            .unwrap();

        assert!(shards.len() > DAY_SHARDS as usize / 2, "spread: {shards:?}");
        assert_eq!(
            totals,
            vec![(
                model,
                Tokens {
                    input: 645,
                    output: 64,
                    ..Default::default()
                }
            )]
        );
    }

    #[test]
    fn cost_uses_the_price_per_million_and_an_unpriced_model_has_none() {
        let pricing = BTreeMap::from([(
            "anthropic/x".to_string(),
            Price {
                input: 3.0,
                output: 15.0,
                cache_read: 0.3,
                cache_write: 3.75,
            },
        )]);
        let tokens = Tokens {
            input: 2_400,
            output: 600,
            cache_read: 1_000,
            cache_write: 0,
        };

        let usd = cost(&pricing, "anthropic/x", &tokens).unwrap();

        assert!((usd - (0.0072 + 0.009 + 0.0003)).abs() < 1e-12, "{usd}");
        assert_eq!(cost(&pricing, "openai/y", &tokens), None);
    }
}
