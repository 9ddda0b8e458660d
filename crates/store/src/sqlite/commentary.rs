//! Officer commentary on SQLite ([`CommentaryStore`]): append-only rows,
//! the latest at or before a time read back.

use parapet_assurance::store::{CommentaryStore, SavedCommentary};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql_err};
use crate::StoreError;

impl CommentaryStore for SqliteStore {
    fn save_commentary(
        &mut self,
        tenant: &str,
        quarter: &str,
        saved_at: i64,
        author: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO report_commentary (tenant, quarter, saved_at, author, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant, quarter, saved_at, author, body],
            )
            .map_err(sql_err(&self.path))?;
        Ok(())
    }

    fn commentary(
        &mut self,
        tenant: &str,
        quarter: &str,
        until: i64,
    ) -> Result<Option<SavedCommentary>, StoreError> {
        self.conn
            .query_row(
                "SELECT saved_at, author, body FROM report_commentary
                 WHERE tenant = ?1 AND quarter = ?2 AND saved_at <= ?3
                 ORDER BY saved_at DESC, id DESC LIMIT 1",
                params![tenant, quarter, until],
                |r| {
                    Ok(SavedCommentary {
                        saved_at: r.get(0)?,
                        author: r.get(1)?,
                        body: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(sql_err(&self.path))
    }
}
