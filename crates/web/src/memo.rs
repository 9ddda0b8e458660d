//! The overview's slow summaries, kept a while: every tenant's KPIs
//! ([`KPI_AGE`]: they read each tenant's asset imports, seconds with a
//! large estate, and change with imports) and the week's most-blocked
//! names ([`TOP_BLOCKED_AGE`]: they group every blocked aggregate row of
//! the week). Computing them on every request would put the page over its
//! 100 ms budget (bench/web). A summary older than its age is still
//! shown, with its time, while one refresh runs in the background, so no
//! request waits for it once it has been computed, and nothing is computed
//! while nobody looks. A change the dashboard itself makes to the current
//! quarter (an alert promoted to an incident) drops the kept values at
//! once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app::AppError;

/// How long the KPIs are shown without starting a refresh.
pub const KPI_AGE: Duration = Duration::from_secs(300);

/// How long the most-blocked names are shown without starting a refresh.
pub const TOP_BLOCKED_AGE: Duration = Duration::from_secs(60);

/// A summary and when it was computed (unix seconds).
#[derive(Debug, Clone)]
pub struct Stamped {
    pub value: Arc<Value>,
    pub computed_at: i64,
}

#[derive(Debug)]
struct Slot {
    kept: Stamped,
    at: Instant,
    refreshing: bool,
}

#[derive(Debug, Default)]
struct Slots {
    /// Bumped by [`Memo::clear`], so a refresh started before it does not
    /// store what it read before the change.
    generation: u64,
    by_key: HashMap<String, Slot>,
}

/// Summaries by key (a handful: one per tenant and one for all).
#[derive(Debug, Default)]
pub struct Memo {
    slots: Mutex<Slots>,
}

impl Memo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // a panic while holding the lock leaves nothing half-written
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The summary under `key`: the kept one (starting one background
    /// refresh when it is older than `max_age`), or `compute`d now when
    /// none is kept. `now`: the time to stamp a new value with.
    pub async fn get<F, Fut>(
        self: &Arc<Self>,
        key: &str,
        max_age: Duration,
        now: i64,
        compute: F,
    ) -> Result<Stamped, AppError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, AppError>> + Send + 'static,
    {
        let (kept, refresh, generation) = {
            let mut slots = self.lock();
            let generation = slots.generation;
            match slots.by_key.get_mut(key) {
                Some(s) if s.at.elapsed() < max_age => (Some(s.kept.clone()), false, generation),
                Some(s) => {
                    let refresh = !s.refreshing;
                    s.refreshing = true;
                    (Some(s.kept.clone()), refresh, generation)
                }
                None => (None, false, generation),
            }
        };
        if let Some(kept) = kept {
            if refresh {
                let me = Arc::clone(self);
                let key = key.to_string();
                let work = compute();
                tokio::spawn(async move {
                    match work.await {
                        Ok(v) => {
                            me.put(&key, v, now, generation);
                        }
                        Err(e) => {
                            tracing::warn!(summary = %key, error = ?e, "refreshing a dashboard summary failed; the older one is shown");
                            if let Some(s) = me.lock().by_key.get_mut(&key) {
                                s.refreshing = false;
                            }
                        }
                    }
                });
            }
            return Ok(kept);
        }
        let v = compute().await?;
        Ok(self.put(key, v, now, generation))
    }

    /// Keeps `value` under `key` unless the memo was cleared since
    /// `generation` was read; returns it stamped either way.
    fn put(&self, key: &str, value: Value, now: i64, generation: u64) -> Stamped {
        let kept = Stamped {
            value: Arc::new(value),
            computed_at: now,
        };
        let mut slots = self.lock();
        if slots.generation == generation {
            slots.by_key.insert(
                key.to_string(),
                Slot {
                    kept: kept.clone(),
                    at: Instant::now(),
                    refreshing: false,
                },
            );
        }
        kept
    }

    /// Drops every kept summary: the next request computes afresh.
    pub fn clear(&self) {
        let mut slots = self.lock();
        slots.generation += 1;
        slots.by_key.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicU64, Ordering};

    const HOUR: Duration = Duration::from_secs(3600);

    fn counting(
        n: &Arc<AtomicU64>,
    ) -> impl Future<Output = Result<Value, AppError>> + Send + 'static {
        let n = Arc::clone(n);
        async move { Ok(json!(n.fetch_add(1, Ordering::SeqCst) + 1)) }
    }

    #[tokio::test]
    async fn a_fresh_summary_is_reused() {
        let memo = Arc::new(Memo::default());
        let n = Arc::new(AtomicU64::new(0));
        let a = memo.get("k", HOUR, 10, || counting(&n)).await.unwrap();
        let b = memo.get("k", HOUR, 20, || counting(&n)).await.unwrap();
        assert_eq!((*a.value == json!(1), *b.value == json!(1)), (true, true));
        assert_eq!(b.computed_at, 10);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // another key is its own summary
        let c = memo.get("other", HOUR, 30, || counting(&n)).await.unwrap();
        assert_eq!(*c.value, json!(2));
    }

    #[tokio::test]
    async fn a_stale_summary_is_shown_while_one_refresh_runs() {
        let memo = Arc::new(Memo::default());
        let n = Arc::new(AtomicU64::new(0));
        assert_eq!(
            *memo
                .get("k", Duration::ZERO, 1, || counting(&n))
                .await
                .unwrap()
                .value,
            json!(1)
        );
        // stale at once: the old value answers, and a refresh is started
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let n = Arc::clone(&n);
            move || async move {
                let _ = gate_rx.await;
                Ok(json!(n.fetch_add(1, Ordering::SeqCst) + 1))
            }
        };
        let old = memo.get("k", Duration::ZERO, 2, slow).await.unwrap();
        assert_eq!((*old.value == json!(1), old.computed_at), (true, 1));
        // while it runs, no second refresh starts
        let again = memo
            .get("k", Duration::ZERO, 3, || counting(&n))
            .await
            .unwrap();
        assert_eq!(*again.value, json!(1));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        gate_tx.send(()).unwrap();
        let mut seen = json!(1);
        for _ in 0..1000 {
            seen = (*memo
                .get("k", Duration::ZERO, 4, || async { Ok(json!("unused")) })
                .await
                .unwrap()
                .value)
                .clone();
            if seen != json!(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(seen, json!(2));
    }

    #[tokio::test]
    async fn clearing_drops_kept_values_and_refreshes_started_before() {
        let memo = Arc::new(Memo::default());
        let n = Arc::new(AtomicU64::new(0));
        memo.get("k", Duration::ZERO, 1, || counting(&n))
            .await
            .unwrap();
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        memo.get("k", Duration::ZERO, 2, move || async move {
            let _ = gate_rx.await;
            let _ = done_tx.send(());
            Ok(json!("read before the change"))
        })
        .await
        .unwrap();
        memo.clear();
        gate_tx.send(()).unwrap();
        done_rx.await.unwrap();
        // the refresh task holds the memo until it has tried to store
        while Arc::strong_count(&memo) > 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // its result was not kept: the next request computes
        let v = memo
            .get("k", Duration::ZERO, 3, || async { Ok(json!("after")) })
            .await
            .unwrap();
        assert_eq!(*v.value, json!("after"));
        // a failed computation is an error, and nothing is kept
        let e = memo
            .get("e", Duration::ZERO, 4, || async {
                Err(AppError::Unavailable("down".into()))
            })
            .await;
        assert!(e.is_err());
        let ok = memo
            .get("e", Duration::ZERO, 5, || async { Ok(json!(5)) })
            .await
            .unwrap();
        assert_eq!(*ok.value, json!(5));
    }
}
