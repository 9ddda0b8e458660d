//! What every handler shares: the error a request can fail with (one
//! status code each), the clock, and the store connection run off the
//! async threads.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use parapet_assurance::frozen::QuarterError;
use parapet_store::{Db, StoreError};

use crate::{AppState, Dashboard};

/// Unix seconds now.
pub fn now() -> i64 {
    parapet_store::unix_millis(std::time::SystemTime::now()) / 1000
}

/// What a request can fail with; each maps to one status code.
#[derive(Debug)]
pub enum AppError {
    /// Not signed in, on a page: go to the login form.
    Login,
    /// Not signed in, on the API.
    Unauthorized,
    Forbidden,
    Csrf,
    NotFound,
    BadRequest(String),
    Conflict(String),
    TooManyAttempts,
    /// The store is busy or unreachable: try again shortly (503).
    Unavailable(String),
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchAlert(_) | StoreError::NoSuchIncident(_) => AppError::NotFound,
            StoreError::BadTransition { .. } | StoreError::DuplicateUser(_) => {
                AppError::Conflict(e.to_string())
            }
            e => AppError::Internal(e.to_string()),
        }
    }
}

impl From<QuarterError<StoreError>> for AppError {
    fn from(e: QuarterError<StoreError>) -> Self {
        match e {
            QuarterError::Store(e) => e.into(),
            e @ (QuarterError::Future { .. } | QuarterError::NotEnded { .. }) => {
                AppError::BadRequest(e.to_string())
            }
            e @ (QuarterError::AlreadyFrozen { .. } | QuarterError::NotFrozen { .. }) => {
                AppError::Conflict(e.to_string())
            }
            QuarterError::NoSuchVersion { .. } => AppError::NotFound,
            e => AppError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            AppError::Login => return Redirect::to("/login").into_response(),
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "sign in, or send Authorization: Bearer TOKEN".to_string(),
            ),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "not allowed for this account".into()),
            AppError::Csrf => (
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page and try again".into(),
            ),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not found".into()),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m),
            AppError::TooManyAttempts => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins: wait 15 minutes".into(),
            ),
            AppError::Unavailable(m) => {
                tracing::warn!("dashboard: {m}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store is busy or unreachable: try again shortly".into(),
                )
            }
            AppError::Internal(m) => {
                tracing::error!("dashboard: {m}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        };
        (code, axum::Json(serde_json::json!({ "error": msg }))).into_response()
    }
}

pub fn dashboard(state: &AppState) -> Result<Arc<Dashboard>, AppError> {
    state.dashboard.clone().ok_or(AppError::NotFound)
}

/// Runs `f` on the shared store connection, off the async threads.
pub async fn with_db<T, F>(state: &AppState, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Db) -> Result<T, AppError> + Send + 'static,
{
    let d = dashboard(state)?;
    tokio::task::spawn_blocking(move || {
        let mut db =
            d.db.get()
                .map_err(|e| AppError::Unavailable(e.to_string()))?;
        f(&mut **db)
    })
    .await
    .map_err(|e| AppError::Internal(format!("store task: {e}")))?
}

/// The longest value of a search field (tenant, status, rule, date).
pub const MAX_FILTER: usize = 128;

/// Refuses a search field longer than [`MAX_FILTER`], naming it.
pub fn check_filter(field: &str, value: Option<&str>) -> Result<(), AppError> {
    match value {
        Some(v) if v.len() > MAX_FILTER => Err(AppError::BadRequest(format!(
            "{field}: longer than {MAX_FILTER} bytes"
        ))),
        _ => Ok(()),
    }
}
