//! [`RateCounters`] on SQLite: one row per key and window, bumped in one statement.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::store::{window_bounds, RateCounters, StoreError};

#[async_trait]
impl RateCounters for SqliteStore {
    async fn add(&self, key: &str, window: Duration, n: u32) -> Result<u64, StoreError> {
        let key = key.to_string();
        self.write(move |tx, now| {
            let (start, end) = window_bounds(now, window);
            // Old windows are swept by whoever counts next; expired rows are never read.
            tx.execute("DELETE FROM counters WHERE expires_ms <= ?1", params![now])?;
            let count: i64 = tx.query_row(
                "INSERT INTO counters (key, window_start_ms, count, expires_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key, window_start_ms) DO UPDATE SET count = count + ?3
                 RETURNING count",
                params![key, start, i64::from(n), end],
                |r| r.get(0),
            )?;
            Ok(count.max(0) as u64)
        })
        .await
    }
}
