//! A limit on open connections of one stream listener (TCP, DoT or DoH)
//! that idle clients cannot use to lock others out: when the table is
//! full, the connection idle the longest is told to close and the new one
//! takes its place; only when every connection is busy is the new one
//! refused.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

#[derive(Debug)]
pub struct ConnTable {
    max: usize,
    open: Mutex<Vec<Arc<Slot>>>,
    epoch: Instant,
}

#[derive(Debug)]
struct Slot {
    /// Milliseconds since the table's epoch of the last query.
    last_active: AtomicU64,
    /// Queries in progress.
    busy: AtomicU32,
    evict: Notify,
}

/// One admitted connection; leaves the table when dropped.
#[derive(Debug)]
pub struct Conn {
    table: Arc<ConnTable>,
    slot: Arc<Slot>,
}

/// A query in progress on a connection: it is not idle until dropped.
#[derive(Debug)]
pub struct Busy(Arc<Slot>, u64);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_active.store(self.1, Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnTable {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            open: Mutex::new(Vec::new()),
            epoch: Instant::now(),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Admits a new connection, evicting the oldest idle one if the table
    /// is full; `None` when every open connection is busy.
    pub fn admit(self: &Arc<Self>) -> Option<Conn> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.max {
            let oldest = open
                .iter()
                .enumerate()
                .filter(|(_, s)| s.busy.load(Ordering::Relaxed) == 0)
                .min_by_key(|(_, s)| s.last_active.load(Ordering::Relaxed))
                .map(|(i, _)| i)?;
            // a stored permit: the connection sees it even if it is not
            // waiting at this instant
            open.swap_remove(oldest).evict.notify_one();
        }
        let slot = Arc::new(Slot {
            last_active: AtomicU64::new(self.now()),
            busy: AtomicU32::new(0),
            evict: Notify::new(),
        });
        open.push(slot.clone());
        Some(Conn {
            table: self.clone(),
            slot,
        })
    }

    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Conn {
    /// Marks a query in progress until the guard is dropped.
    pub fn busy(&self) -> Busy {
        self.slot.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.slot.clone(), self.table.now())
    }

    /// Completes when the table evicted this connection to make room.
    pub async fn evicted(&self) {
        self.slot.evict.notified().await
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = open.iter().position(|s| Arc::ptr_eq(s, &self.slot)) {
            open.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn the_oldest_idle_connection_makes_room() {
        let t = ConnTable::new(2);
        let a = t.admit().unwrap();
        let b = t.admit().unwrap();
        // b was active more recently than a
        drop(b.busy());
        let busy_b = b.busy();
        let c = t.admit().expect("a is idle: evicted");
        a.evicted().await;
        assert_eq!(t.len(), 2);
        // b busy, c idle: c goes next
        let _d = t.admit().expect("c is idle");
        c.evicted().await;
        // both busy now: refused
        let _busy_d = _d.busy();
        assert!(t.admit().is_none());
        drop(busy_b);
        drop(a);
        assert_eq!(t.len(), 2);
    }
}
