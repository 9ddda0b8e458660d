//! The HTTP side of `parapet serve`. Today it exposes `/metrics`
//! (Prometheus text) and `/healthz`; the dashboard and JSON API grow here.
//!
//! Architecture invariant: the router is built by [`router`] from plain
//! values and closures, so it can be tested without a socket, and this
//! crate never reaches into the DNS hot path's internals.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// Produces the Prometheus text exposition on demand.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub metrics: MetricsFn,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

async fn metrics(axum::extract::State(s): axum::extract::State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (s.metrics)(),
    )
}

/// Serves the router on a bound listener until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
