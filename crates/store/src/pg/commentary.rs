//! Officer commentary on PostgreSQL ([`CommentaryStore`]): append-only
//! rows, the latest at or before a time read back.

use parapet_assurance::store::{CommentaryStore, SavedCommentary};

use super::{PgStore, pg_err};
use crate::StoreError;

impl CommentaryStore for PgStore {
    fn save_commentary(
        &mut self,
        tenant: &str,
        quarter: &str,
        saved_at: i64,
        author: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        self.ensure()?;
        self.client
            .execute(
                "INSERT INTO report_commentary (tenant, quarter, saved_at, author, body)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&tenant, &quarter, &saved_at, &author, &body],
            )
            .map_err(pg_err(&self.location))?;
        Ok(())
    }

    fn commentary(
        &mut self,
        tenant: &str,
        quarter: &str,
        until: i64,
    ) -> Result<Option<SavedCommentary>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query_opt(
                "SELECT saved_at, author, body FROM report_commentary
                 WHERE tenant = $1 AND quarter = $2 AND saved_at <= $3
                 ORDER BY saved_at DESC, id DESC LIMIT 1",
                &[&tenant, &quarter, &until],
            )
            .map_err(pg_err(&self.location))?
            .map(|r| SavedCommentary {
                saved_at: r.get(0),
                author: r.get(1),
                body: r.get(2),
            }))
    }
}
