//! [`ExportStore`] on SQLite.

use std::time::SystemTime;

use parapet_core::alert::Alert;
use rusqlite::params;

use super::{SqliteStore, sql_err};
use crate::rules::events::BLOCKED_ACTIONS;
use crate::rules::search::COLUMNS;
use crate::{AlertStore, ExportCursor, ExportStore, StoreError, StoredEvent, unix_millis};

impl ExportStore for SqliteStore {
    fn export_cursor(&mut self, name: &str) -> Result<ExportCursor, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO export_cursors (name, alerts, events, updated_at)
             SELECT ?1, (SELECT COALESCE(MAX(id), 0) FROM alerts),
                    (SELECT COALESCE(MAX(id), 0) FROM query_events), ?2
             WHERE NOT EXISTS (SELECT 1 FROM export_cursors WHERE name = ?1)",
            params![name, unix_millis(SystemTime::now())],
        )
        .map_err(err)?;
        let c = tx
            .query_row(
                "SELECT alerts, events FROM export_cursors WHERE name = ?1",
                [name],
                |r| {
                    Ok(ExportCursor {
                        alerts: r.get(0)?,
                        events: r.get(1)?,
                    })
                },
            )
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(c)
    }

    fn set_export_cursor(&mut self, name: &str, c: ExportCursor) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO export_cursors (name, alerts, events, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET alerts = excluded.alerts, events = excluded.events,
                   updated_at = excluded.updated_at",
                params![name, c.alerts, c.events, unix_millis(SystemTime::now())],
            )
            .map(|_| ())
            .map_err(sql_err(&self.path))
    }

    fn alerts_after(
        &mut self,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError> {
        let ids: Vec<i64> = {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT id FROM alerts WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(sql_err(&self.path))?;
            st.query_map(params![after, upto, limit as i64], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<_, _>>())
                .map_err(sql_err(&self.path))?
        };
        ids.into_iter().map(|id| self.alert(id)).collect()
    }

    fn max_ids(&mut self) -> Result<ExportCursor, StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM alerts),
                        (SELECT COALESCE(MAX(id), 0) FROM query_events)",
                [],
                |r| {
                    Ok(ExportCursor {
                        alerts: r.get(0)?,
                        events: r.get(1)?,
                    })
                },
            )
            .map_err(sql_err(&self.path))
    }

    fn events_after(
        &mut self,
        after: i64,
        upto: i64,
        blocked_only: bool,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let filter = if blocked_only {
            format!("AND action IN {BLOCKED_ACTIONS}")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM query_events WHERE id > ?1 AND id <= ?2 {filter} ORDER BY id LIMIT ?3"
        );
        let mut st = self
            .conn
            .prepare_cached(&sql)
            .map_err(sql_err(&self.path))?;
        st.query_map(
            params![after, upto, limit as i64],
            super::events::stored_event,
        )
        .and_then(|rows| rows.collect())
        .map_err(sql_err(&self.path))
    }

    fn alert_counts(&mut self) -> Result<Vec<(String, String, String, u64)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT tenant, rule, status, COUNT(*) FROM alerts
                 GROUP BY tenant, rule, status ORDER BY tenant, rule, status",
            )
            .map_err(sql_err(&self.path))?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .and_then(|rows| rows.collect())
            .map_err(sql_err(&self.path))
    }
}
