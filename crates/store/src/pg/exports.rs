//! [`ExportStore`] on PostgreSQL.

use std::time::SystemTime;

use parapet_core::alert::Alert;

use super::{PgStore, pg_err};
use crate::rules::events::BLOCKED_ACTIONS;
use crate::rules::search::COLUMNS;
use crate::{AlertStore, ExportCursor, ExportStore, StoreError, StoredEvent, unix_millis};

impl ExportStore for PgStore {
    fn export_cursor(&mut self, name: &str) -> Result<ExportCursor, StoreError> {
        self.ensure()?;
        let err = pg_err(&self.location);
        self.client
            .execute(
                "INSERT INTO export_cursors (name, alerts, events, updated_at)
                 SELECT $1, (SELECT COALESCE(MAX(id), 0) FROM alerts),
                        (SELECT COALESCE(MAX(id), 0) FROM query_events), $2
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &unix_millis(SystemTime::now())],
            )
            .map_err(&err)?;
        let r = self
            .client
            .query_one(
                "SELECT alerts, events FROM export_cursors WHERE name = $1",
                &[&name],
            )
            .map_err(&err)?;
        Ok(ExportCursor {
            alerts: r.get(0),
            events: r.get(1),
        })
    }

    fn set_export_cursor(&mut self, name: &str, c: ExportCursor) -> Result<(), StoreError> {
        self.ensure()?;
        self.client
            .execute(
                "INSERT INTO export_cursors (name, alerts, events, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET alerts = EXCLUDED.alerts, events = EXCLUDED.events,
                   updated_at = EXCLUDED.updated_at",
                &[&name, &c.alerts, &c.events, &unix_millis(SystemTime::now())],
            )
            .map(|_| ())
            .map_err(pg_err(&self.location))
    }

    fn alerts_after(
        &mut self,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError> {
        self.ensure()?;
        let ids: Vec<i64> = self
            .client
            .query(
                "SELECT id FROM alerts WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3",
                &[&after, &upto, &(limit as i64)],
            )
            .map_err(pg_err(&self.location))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.into_iter().map(|id| self.alert(id)).collect()
    }

    fn max_ids(&mut self) -> Result<ExportCursor, StoreError> {
        self.ensure()?;
        let r = self
            .client
            .query_one(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM alerts),
                        (SELECT COALESCE(MAX(id), 0) FROM query_events)",
                &[],
            )
            .map_err(pg_err(&self.location))?;
        Ok(ExportCursor {
            alerts: r.get(0),
            events: r.get(1),
        })
    }

    fn events_after(
        &mut self,
        after: i64,
        upto: i64,
        blocked_only: bool,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.ensure()?;
        let filter = if blocked_only {
            format!("AND action IN {BLOCKED_ACTIONS}")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM query_events WHERE id > $1 AND id <= $2 {filter} ORDER BY id LIMIT $3"
        );
        let rows = self
            .client
            .query(&sql, &[&after, &upto, &(limit as i64)])
            .map_err(pg_err(&self.location))?;
        Ok(rows.iter().map(super::events::stored_event).collect())
    }

    fn ids_commit_in_order(&self) -> bool {
        false
    }

    fn alert_counts(&mut self) -> Result<Vec<(String, String, String, u64)>, StoreError> {
        self.ensure()?;
        let rows = self
            .client
            .query(
                "SELECT tenant, rule, status, COUNT(*) FROM alerts
                 GROUP BY tenant, rule, status ORDER BY tenant, rule, status",
                &[],
            )
            .map_err(pg_err(&self.location))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3) as u64))
            .collect())
    }
}
