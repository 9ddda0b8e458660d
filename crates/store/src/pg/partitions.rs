//! `query_events`' daily partitions on PostgreSQL (schema step 16): one
//! table per UTC day, `query_events_YYYYMMDD`, made a few days ahead when a
//! connection opens and again with every retention run, and dropped whole
//! by retention. Rows outside every day made (events from long ago, a clock
//! far ahead) land in `query_events_default`, so no write ever fails for
//! want of a partition.

use std::time::SystemTime;

use parapet_core::calendar::{civil_from_days, days_from_civil};

use super::{PgStore, pg_err};
use crate::{StoreError, unix_millis};

/// Milliseconds in a day: the partitions' width.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// How many days after today have their partition made ahead: a node that
/// runs no retention job for two days still writes into day partitions.
const AHEAD_DAYS: i64 = 2;

/// The advisory lock under which partitions are made ("ppart"): nodes
/// starting at once make each day once.
const PARTITION_LOCK: i64 = 0x0070_7061_7274;

/// The partition of day `day` (days since 1970-01-01).
pub(crate) fn partition_name(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("query_events_{y:04}{m:02}{d:02}")
}

/// The day a partition's name stands for; `None` for the default
/// partition or a table not named by [`partition_name`].
pub(super) fn partition_day(name: &str) -> Option<i64> {
    let date = name.strip_prefix("query_events_")?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = date[..4].parse().ok()?;
    let m: u32 = date[4..6].parse().ok()?;
    let d: u32 = date[6..].parse().ok()?;
    Some(days_from_civil(y, m, d))
}

/// Columns copied when rows move out of the default partition (`rname` is
/// generated).
const MOVED: &str =
    "id, time, tenant, client, qname, qtype, rcode, action, feed, node, queries, last_time";

impl PgStore {
    /// Makes the partitions of yesterday, today (by `now`) and the next
    /// [`AHEAD_DAYS`] days when missing. Rows of such a day already in the
    /// default partition move into the new one in the same transaction.
    pub(crate) fn ensure_partitions(&mut self, now: SystemTime) -> Result<(), StoreError> {
        let today = unix_millis(now).div_euclid(DAY_MS);
        for day in today - 1..=today + AHEAD_DAYS {
            let name = partition_name(day);
            if self.partition_exists(&name)? {
                continue;
            }
            self.tx(|tx, loc, _| {
                let err = pg_err(loc);
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
                    .map_err(&err)?;
                // the catalog itself, read afresh: the name lookup of
                // to_regclass may not yet see a table another node just made
                let made: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE c.relname = $1 AND n.nspname = current_schema())",
                        &[&name],
                    )
                    .map_err(&err)?
                    .get(0);
                if made {
                    return Ok(());
                }
                let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
                let create = format!(
                    "CREATE TABLE {name} PARTITION OF query_events FOR VALUES FROM ({from}) TO ({to})"
                );
                let stray: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM query_events_default WHERE time >= $1 AND time < $2)",
                        &[&from, &to],
                    )
                    .map_err(&err)?
                    .get(0);
                if !stray {
                    return tx.batch_execute(&create).map_err(&err);
                }
                // PostgreSQL refuses a partition whose rows the default
                // partition holds: take it out, move them, put it back
                tx.batch_execute(&format!(
                    "ALTER TABLE query_events DETACH PARTITION query_events_default;
                     {create};
                     INSERT INTO {name} ({MOVED}) SELECT {MOVED} FROM query_events_default
                         WHERE time >= {from} AND time < {to};
                     DELETE FROM query_events_default WHERE time >= {from} AND time < {to};
                     ALTER TABLE query_events ATTACH PARTITION query_events_default DEFAULT;"
                ))
                .map_err(&err)
            })?;
        }
        Ok(())
    }

    fn partition_exists(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .query_rows("SELECT to_regclass($1) IS NOT NULL", &[&name])?
            .first()
            .is_some_and(|r| r.get(0)))
    }

    /// The day partitions that exist, by name.
    pub(super) fn day_partitions(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self.query_rows(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'query_events'::regclass ORDER BY 1",
            &[],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let name: String = r.get(0);
                partition_day(&name).map(|d| (name, d))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_their_day() {
        for day in [0, 20_427, 19_000] {
            assert_eq!(partition_day(&partition_name(day)), Some(day));
        }
        assert_eq!(partition_name(0), "query_events_19700101");
        assert_eq!(partition_day("query_events_default"), None);
        assert_eq!(partition_day("query_events_ids"), None);
    }
}
