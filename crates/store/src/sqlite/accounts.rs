//! [`AccountStore`] on SQLite (schema: migration 7).

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql_err, tenant_clause};
use crate::StoreError;
use crate::accounts::{AccountStore, ApiToken, AuditEntry, Role, Session, User};

const USER_COLS: &str =
    "u.id, u.name, u.role, u.tenant, u.password_hash, u.created_at, u.totp_secret";
/// The columns after [`USER_COLS`].
const NEXT: usize = 7;
const TOKEN_COLS: &str = "t.id, t.user_id, t.created_at, t.last_used_at";

fn token_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(at)?,
        user_id: r.get(at + 1)?,
        created_at: r.get(at + 2)?,
        last_used_at: r.get(at + 3)?,
    })
}

impl SqliteStore {
    fn user_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<(User, String)> {
        let role: String = r.get(2)?;
        Ok((
            User {
                id: r.get(0)?,
                name: r.get(1)?,
                role: Role::Council,
                tenant: r.get(3)?,
                password_hash: r.get(4)?,
                created_at: r.get(5)?,
                totp_secret: r.get(6)?,
            },
            role,
        ))
    }

    fn fix_role(&self, (mut u, role): (User, String)) -> Result<User, StoreError> {
        u.role = role.parse().map_err(|_| StoreError::Corrupt {
            path: self.path.display().to_string(),
            field: "user role",
            value: role,
        })?;
        Ok(u)
    }
}

impl AccountStore for SqliteStore {
    fn add_user(
        &mut self,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        password_hash: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let err = sql_err(&self.path);
        let exists: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )
            .map_err(err)?;
        if exists {
            return Err(StoreError::DuplicateUser(name.to_string()));
        }
        self.conn
            .execute(
                "INSERT INTO users (name, role, tenant, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, role.as_str(), tenant, password_hash, now],
            )
            .map_err(err)?;
        Ok(self.conn.last_insert_rowid())
    }

    fn set_password(&mut self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                params![name, password_hash],
            )
            .map_err(sql_err(&self.path))?;
        Ok(n > 0)
    }

    fn user(&mut self, name: &str) -> Result<Option<User>, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {USER_COLS} FROM users u WHERE u.name = ?1"),
                [name],
                |r| self.user_row(r),
            )
            .optional()
            .map_err(sql_err(&self.path))?;
        row.map(|r| self.fix_role(r)).transpose()
    }

    fn users(&mut self) -> Result<Vec<User>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!("SELECT {USER_COLS} FROM users u ORDER BY u.name"))
            .map_err(err)?;
        let rows = q
            .query_map([], |r| self.user_row(r))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        rows.into_iter().map(|r| self.fix_role(r)).collect()
    }

    fn create_session(
        &mut self,
        token_sha256: &str,
        user_id: i64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let err = sql_err(&self.path);
        self.conn
            .execute("DELETE FROM sessions WHERE expires_at < ?1", [now])
            .map_err(err)?;
        self.conn
            .execute(
                "INSERT INTO sessions (token_sha256, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![token_sha256, user_id, csrf, now, expires_at],
            )
            .map_err(err)?;
        Ok(())
    }

    fn session(&mut self, token_sha256: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {USER_COLS}, s.csrf, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_sha256 = ?1 AND s.expires_at > ?2"
                ),
                params![token_sha256, now],
                |r| {
                    Ok((
                        self.user_row(r)?,
                        r.get::<_, String>(NEXT)?,
                        r.get::<_, i64>(NEXT + 1)?,
                    ))
                },
            )
            .optional()
            .map_err(sql_err(&self.path))?;
        match row {
            None => Ok(None),
            Some((u, csrf, expires_at)) => Ok(Some(Session {
                user: self.fix_role(u)?,
                csrf,
                expires_at,
            })),
        }
    }

    fn delete_session(&mut self, token_sha256: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM sessions WHERE token_sha256 = ?1",
                [token_sha256],
            )
            .map_err(sql_err(&self.path))?;
        Ok(())
    }

    fn add_api_token(
        &mut self,
        user_id: i64,
        token_sha256: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO api_tokens (token_sha256, user_id, created_at) VALUES (?1, ?2, ?3)",
                params![token_sha256, user_id, now],
            )
            .map_err(sql_err(&self.path))?;
        Ok(())
    }

    fn api_token_user(
        &mut self,
        token_sha256: &str,
    ) -> Result<Option<(User, ApiToken)>, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {USER_COLS}, {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.token_sha256 = ?1"
                ),
                [token_sha256],
                |r| Ok((self.user_row(r)?, token_row(r, NEXT)?)),
            )
            .optional()
            .map_err(sql_err(&self.path))?;
        row.map(|(u, t)| Ok((self.fix_role(u)?, t))).transpose()
    }

    fn touch_api_token(&mut self, id: i64, now: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                params![id, now],
            )
            .map_err(sql_err(&self.path))?;
        Ok(())
    }

    fn api_tokens(&mut self, user_id: i64) -> Result<Vec<ApiToken>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!(
                "SELECT {TOKEN_COLS} FROM api_tokens t WHERE t.user_id = ?1 ORDER BY t.id"
            ))
            .map_err(err)?;
        let rows = q
            .query_map([user_id], |r| token_row(r, 0))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn revoke_api_token(&mut self, id: i64) -> Result<Option<User>, StoreError> {
        let err = sql_err(&self.path);
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {USER_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1"
                ),
                [id],
                |r| self.user_row(r),
            )
            .optional()
            .map_err(err)?;
        self.conn
            .execute("DELETE FROM api_tokens WHERE id = ?1", [id])
            .map_err(err)?;
        row.map(|r| self.fix_role(r)).transpose()
    }

    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        // explicit, not only ON DELETE CASCADE: a connection opened without
        // foreign keys would leave the rows behind
        for sql in [
            "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = ?1)",
            "DELETE FROM api_tokens WHERE user_id IN (SELECT id FROM users WHERE name = ?1)",
        ] {
            tx.execute(sql, [name]).map_err(err)?;
        }
        let n = tx
            .execute("DELETE FROM users WHERE name = ?1", [name])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    fn end_sessions(&mut self, user_id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])
            .map_err(sql_err(&self.path))?;
        Ok(())
    }

    fn set_totp(&mut self, name: &str, secret_hex: Option<&str>) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE users SET totp_secret = ?2, totp_last_step = NULL WHERE name = ?1",
                params![name, secret_hex],
            )
            .map_err(sql_err(&self.path))?;
        Ok(n > 0)
    }

    fn claim_totp_step(&mut self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        // one statement: two logins racing with the same code cannot both win
        let n = self
            .conn
            .execute(
                "UPDATE users SET totp_last_step = ?2
                 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                params![user_id, step],
            )
            .map_err(sql_err(&self.path))?;
        Ok(n > 0)
    }

    fn audit(&mut self, e: &AuditEntry) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO audit_log (time, actor, action, tenant, detail, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.time, e.actor, e.action, e.tenant, e.detail, e.client],
            )
            .map_err(sql_err(&self.path))?;
        Ok(())
    }

    fn audit_log(
        &mut self,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!(
                "SELECT time, actor, action, tenant, detail, client FROM audit_log
                 WHERE {} ORDER BY id DESC LIMIT ?1",
                tenant_clause(tenant)
            ))
            .map_err(err)?;
        let rows = q
            .query_map(params![limit as i64, tenant], |r| {
                Ok(AuditEntry {
                    time: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    tenant: r.get(3)?,
                    detail: r.get(4)?,
                    client: r.get(5)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }
}
