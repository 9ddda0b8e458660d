//! [`AllowlistStore`] on PostgreSQL.

use std::time::SystemTime;

use postgres::Row;

use super::{PgStore, pg_err};
use crate::allowlist::{false_positive_note, marks_false_positive};
use crate::rules::alerts::parse_status;
use crate::{AllowEntry, AllowlistStore, NewAllow, StoreError, unix_millis};

const COLUMNS: &str =
    "id, name, tenant, alert_id, added_by, reason, created_at, expires_at, removed_at, removed_by";

fn entry(r: &Row) -> AllowEntry {
    AllowEntry {
        id: r.get(0),
        name: r.get(1),
        tenant: r.get(2),
        alert_id: r.get(3),
        added_by: r.get(4),
        reason: r.get(5),
        created_at: r.get(6),
        expires_at: r.get(7),
        removed_at: r.get(8),
        removed_by: r.get(9),
    }
}

impl PgStore {
    fn allow_by_id(&mut self, id: i64) -> Result<AllowEntry, StoreError> {
        self.query_rows(
            &format!("SELECT {COLUMNS} FROM allowlist WHERE id = $1"),
            &[&id],
        )?
        .first()
        .map(entry)
        .ok_or(StoreError::NoSuchAllow(id))
    }
}

impl AllowlistStore for PgStore {
    fn add_allow(&mut self, new: &NewAllow, now: SystemTime) -> Result<AllowEntry, StoreError> {
        let at = unix_millis(now);
        let id = self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            if let Some(alert) = new.alert_id {
                let Some(row) = tx
                    .query_opt(
                        "SELECT status FROM alerts WHERE id = $1 FOR UPDATE",
                        &[&alert],
                    )
                    .map_err(&err)?
                else {
                    return Err(StoreError::NoSuchAlert(alert));
                };
                let from = parse_status(row.get(0), loc)?;
                if marks_false_positive(alert, from)? {
                    tx.execute(
                        "UPDATE alerts SET status = 'false_positive' WHERE id = $1",
                        &[&alert],
                    )
                    .map_err(&err)?;
                    tx.execute(
                        "INSERT INTO alert_history (alert_id, time, from_status, to_status, by, note)
                         VALUES ($1, $2, $3, 'false_positive', $4, $5)",
                        &[
                            &alert,
                            &at,
                            &from.as_str(),
                            &new.added_by,
                            &false_positive_note(new),
                        ],
                    )
                    .map_err(&err)?;
                }
            }
            let row = tx
                .query_one(
                    "INSERT INTO allowlist (name, tenant, alert_id, added_by, reason, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[
                        &new.name,
                        &new.tenant,
                        &new.alert_id,
                        &new.added_by,
                        &new.reason,
                        &at,
                        &new.expires_at,
                    ],
                )
                .map_err(&err)?;
            Ok(row.get::<_, i64>(0))
        })?;
        self.allow_by_id(id)
    }

    fn active_allows(&mut self, now: SystemTime) -> Result<Vec<AllowEntry>, StoreError> {
        let rows = self.query_rows(
            &format!(
                "SELECT {COLUMNS} FROM allowlist WHERE removed_at IS NULL AND expires_at > $1 ORDER BY name, id"
            ),
            &[&unix_millis(now)],
        )?;
        Ok(rows.iter().map(entry).collect())
    }

    fn allow_entries(&mut self, limit: usize) -> Result<Vec<AllowEntry>, StoreError> {
        let rows = self.query_rows(
            &format!("SELECT {COLUMNS} FROM allowlist ORDER BY id DESC LIMIT $1"),
            &[&i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        Ok(rows.iter().map(entry).collect())
    }

    fn remove_allow(
        &mut self,
        id: i64,
        by: &str,
        now: SystemTime,
    ) -> Result<AllowEntry, StoreError> {
        self.execute(
            "UPDATE allowlist SET removed_at = $2, removed_by = $3 WHERE id = $1 AND removed_at IS NULL",
            &[&id, &unix_millis(now), &by],
        )?;
        self.allow_by_id(id)
    }
}
