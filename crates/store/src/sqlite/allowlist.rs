//! [`AllowlistStore`] on SQLite.

use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql_err};
use crate::allowlist::{false_positive_note, marks_false_positive};
use crate::rules::alerts::parse_status;
use crate::{AllowEntry, AllowlistStore, NewAllow, StoreError, unix_millis};

const COLUMNS: &str =
    "id, name, tenant, alert_id, added_by, reason, created_at, expires_at, removed_at, removed_by";

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<AllowEntry> {
    Ok(AllowEntry {
        id: r.get(0)?,
        name: r.get(1)?,
        tenant: r.get(2)?,
        alert_id: r.get(3)?,
        added_by: r.get(4)?,
        reason: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        removed_at: r.get(8)?,
        removed_by: r.get(9)?,
    })
}

impl SqliteStore {
    fn allow_by_id(&self, id: i64) -> Result<AllowEntry, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM allowlist WHERE id = ?1"),
                params![id],
                entry,
            )
            .optional()
            .map_err(sql_err(&self.path))?
            .ok_or(StoreError::NoSuchAllow(id))
    }

    fn allows_where(&self, rest: &str, p: i64) -> Result<Vec<AllowEntry>, StoreError> {
        let err = sql_err(&self.path);
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM allowlist WHERE {rest}"))
            .map_err(err)?
            .query_map(params![p], entry)
            .and_then(|rows| rows.collect())
            .map_err(err)
    }
}

impl AllowlistStore for SqliteStore {
    fn add_allow(&mut self, new: &NewAllow, now: SystemTime) -> Result<AllowEntry, StoreError> {
        let err = sql_err(&self.path);
        let at = unix_millis(now);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        if let Some(alert) = new.alert_id {
            let status: String = tx
                .query_row(
                    "SELECT status FROM alerts WHERE id = ?1",
                    params![alert],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?
                .ok_or(StoreError::NoSuchAlert(alert))?;
            let from = parse_status(&status, &self.path.display().to_string())?;
            if marks_false_positive(alert, from)? {
                tx.execute(
                    "UPDATE alerts SET status = 'false_positive' WHERE id = ?1",
                    params![alert],
                )
                .map_err(err)?;
                tx.execute(
                    "INSERT INTO alert_history (alert_id, time, from_status, to_status, by, note)
                     VALUES (?1, ?2, ?3, 'false_positive', ?4, ?5)",
                    params![
                        alert,
                        at,
                        from.as_str(),
                        new.added_by,
                        false_positive_note(new)
                    ],
                )
                .map_err(err)?;
            }
        }
        tx.execute(
            "INSERT INTO allowlist (name, tenant, alert_id, added_by, reason, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                new.name,
                new.tenant,
                new.alert_id,
                new.added_by,
                new.reason,
                at,
                new.expires_at
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(err)?;
        self.allow_by_id(id)
    }

    fn active_allows(&mut self, now: SystemTime) -> Result<Vec<AllowEntry>, StoreError> {
        self.allows_where(
            "removed_at IS NULL AND expires_at > ?1 ORDER BY name, id",
            unix_millis(now),
        )
    }

    fn allow_entries(&mut self, limit: usize) -> Result<Vec<AllowEntry>, StoreError> {
        self.allows_where(
            "1 = 1 ORDER BY id DESC LIMIT ?1",
            i64::try_from(limit).unwrap_or(i64::MAX),
        )
    }

    fn remove_allow(
        &mut self,
        id: i64,
        by: &str,
        now: SystemTime,
    ) -> Result<AllowEntry, StoreError> {
        self.conn
            .execute(
                "UPDATE allowlist SET removed_at = ?2, removed_by = ?3 WHERE id = ?1 AND removed_at IS NULL",
                params![id, unix_millis(now), by],
            )
            .map_err(sql_err(&self.path))?;
        self.allow_by_id(id)
    }
}
