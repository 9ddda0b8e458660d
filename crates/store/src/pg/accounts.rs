//! [`AccountStore`] on PostgreSQL (schema: migration 7), the same semantics
//! as `sqlite/accounts.rs`; its tests run on both backends (`tests.rs`).

use postgres::Row;

use super::{PgStore, TENANT, pg_err};
use crate::StoreError;
use crate::accounts::{AccountStore, ApiToken, AuditEntry, Role, Session, User};

const USER_COLS: &str =
    "u.id, u.name, u.role, u.tenant, u.password_hash, u.created_at, u.totp_secret";
/// The columns after [`USER_COLS`].
const NEXT: usize = 7;
const TOKEN_COLS: &str = "t.id, t.user_id, t.created_at, t.last_used_at";

fn token_from(r: &Row, at: usize) -> ApiToken {
    ApiToken {
        id: r.get(at),
        user_id: r.get(at + 1),
        created_at: r.get(at + 2),
        last_used_at: r.get(at + 3),
    }
}

impl PgStore {
    fn user_from(&self, r: &Row) -> Result<User, StoreError> {
        let role: String = r.get(2);
        Ok(User {
            id: r.get(0),
            name: r.get(1),
            role: role
                .parse::<Role>()
                .map_err(|_| self.corrupt("user role", &role))?,
            tenant: r.get(3),
            password_hash: r.get(4),
            created_at: r.get(5),
            totp_secret: r.get(6),
        })
    }
}

impl AccountStore for PgStore {
    fn add_user(
        &mut self,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        password_hash: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let id = self.tx(|tx, loc, _| {
            tx.query_opt(
                "INSERT INTO users (name, role, tenant, password_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name, &role.as_str(), &tenant, &password_hash, &now],
            )
            .map_err(pg_err(loc))
            .map(|r| r.map(|r| r.get::<_, i64>(0)))
        })?;
        id.ok_or_else(|| StoreError::DuplicateUser(name.to_string()))
    }

    fn set_password(&mut self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE users SET password_hash = $2 WHERE name = $1",
            &[&name, &password_hash],
        )?;
        Ok(n > 0)
    }

    fn user(&mut self, name: &str) -> Result<Option<User>, StoreError> {
        let rows = self.query_rows(
            &format!("SELECT {USER_COLS} FROM users u WHERE u.name = $1"),
            &[&name],
        )?;
        rows.first().map(|r| self.user_from(r)).transpose()
    }

    fn users(&mut self) -> Result<Vec<User>, StoreError> {
        let rows = self.query_rows(
            &format!("SELECT {USER_COLS} FROM users u ORDER BY u.name"),
            &[],
        )?;
        rows.iter().map(|r| self.user_from(r)).collect()
    }

    fn create_session(
        &mut self,
        token_sha256: &str,
        user_id: i64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            tx.execute("DELETE FROM sessions WHERE expires_at < $1", &[&now])
                .map_err(&err)?;
            tx.execute(
                "INSERT INTO sessions (token_sha256, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&token_sha256, &user_id, &csrf, &now, &expires_at],
            )
            .map_err(&err)?;
            Ok(())
        })
    }

    fn session(&mut self, token_sha256: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let rows = self.query_rows(
            &format!(
                "SELECT {USER_COLS}, s.csrf, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_sha256 = $1 AND s.expires_at > $2"
            ),
            &[&token_sha256, &now],
        )?;
        match rows.first() {
            None => Ok(None),
            Some(r) => Ok(Some(Session {
                user: self.user_from(r)?,
                csrf: r.get(NEXT),
                expires_at: r.get(NEXT + 1),
            })),
        }
    }

    fn delete_session(&mut self, token_sha256: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM sessions WHERE token_sha256 = $1",
            &[&token_sha256],
        )?;
        Ok(())
    }

    fn add_api_token(
        &mut self,
        user_id: i64,
        token_sha256: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO api_tokens (token_sha256, user_id, created_at) VALUES ($1, $2, $3)",
            &[&token_sha256, &user_id, &now],
        )?;
        Ok(())
    }

    fn api_token_user(
        &mut self,
        token_sha256: &str,
    ) -> Result<Option<(User, ApiToken)>, StoreError> {
        let rows = self.query_rows(
            &format!(
                "SELECT {USER_COLS}, {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_sha256 = $1"
            ),
            &[&token_sha256],
        )?;
        rows.first()
            .map(|r| Ok((self.user_from(r)?, token_from(r, NEXT))))
            .transpose()
    }

    fn touch_api_token(&mut self, id: i64, now: i64) -> Result<(), StoreError> {
        self.execute(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
            &[&id, &now],
        )?;
        Ok(())
    }

    fn api_tokens(&mut self, user_id: i64) -> Result<Vec<ApiToken>, StoreError> {
        let rows = self.query_rows(
            &format!("SELECT {TOKEN_COLS} FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.id"),
            &[&user_id],
        )?;
        Ok(rows.iter().map(|r| token_from(r, 0)).collect())
    }

    fn revoke_api_token(&mut self, id: i64) -> Result<Option<User>, StoreError> {
        let rows = self.query_rows(
            &format!(
                "WITH gone AS (DELETE FROM api_tokens WHERE id = $1 RETURNING user_id)
                 SELECT {USER_COLS} FROM gone JOIN users u ON u.id = gone.user_id"
            ),
            &[&id],
        )?;
        rows.first().map(|r| self.user_from(r)).transpose()
    }

    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            for sql in [
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = $1)",
                "DELETE FROM api_tokens WHERE user_id IN (SELECT id FROM users WHERE name = $1)",
            ] {
                tx.execute(sql, &[&name]).map_err(&err)?;
            }
            let n = tx
                .execute("DELETE FROM users WHERE name = $1", &[&name])
                .map_err(&err)?;
            Ok(n > 0)
        })
    }

    fn end_sessions(&mut self, user_id: i64) -> Result<(), StoreError> {
        self.execute("DELETE FROM sessions WHERE user_id = $1", &[&user_id])?;
        Ok(())
    }

    fn set_totp(&mut self, name: &str, secret_hex: Option<&str>) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE users SET totp_secret = $2, totp_last_step = NULL WHERE name = $1",
            &[&name, &secret_hex],
        )?;
        Ok(n > 0)
    }

    fn claim_totp_step(&mut self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        // one statement: two logins racing with the same code cannot both win
        let n = self.execute(
            "UPDATE users SET totp_last_step = $2
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            &[&user_id, &step],
        )?;
        Ok(n > 0)
    }

    fn audit(&mut self, e: &AuditEntry) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit_log (time, actor, action, tenant, detail, client) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&e.time, &e.actor, &e.action, &e.tenant, &e.detail, &e.client],
        )?;
        Ok(())
    }

    fn audit_log(
        &mut self,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self.query_rows(
            &format!(
                "SELECT time, actor, action, tenant, detail, client FROM audit_log
                 WHERE {TENANT} ORDER BY id DESC LIMIT $1"
            ),
            &[&(limit as i64), &tenant],
        )?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                time: r.get(0),
                actor: r.get(1),
                action: r.get(2),
                tenant: r.get(3),
                detail: r.get(4),
                client: r.get(5),
            })
            .collect())
    }
}
