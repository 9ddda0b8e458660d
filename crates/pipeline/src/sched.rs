//! Storage gives way to answers until it falls behind.
//!
//! The threads that store query events (collector and writer) share cores
//! with the threads that answer queries. As normal threads they win a fair
//! share of a core both want, and the scheduler then lets them run a whole
//! slice while a query waits: with a 250 Hz tick that is up to 4 ms of
//! latency on a shared core (bench/dns/RESULTS.md), which asking the
//! answering threads for a shorter slice did not change.
//!
//! So the storage threads run as `SCHED_IDLE` while they keep up: they get
//! any CPU time the answering threads leave, and a query that arrives
//! preempts them at once. A watcher thread (normal priority, awake every
//! [`WATCH_EVERY`] for a few microseconds) checks the backlog; when the
//! event queue passes half its size, a handed-over batch waits for the
//! writer, the collector has not drained the queue for [`STALL_AFTER`], or
//! one write (a batch, the heartbeat or the retention job) has lasted
//! [`WRITE_STALL_AFTER`], it makes them normal threads again (at `[store]
//! writer_nice`), so that under saturation, or beside other busy
//! processes, storage takes its fair share and keeps up as before. Once the
//! backlog has stayed small for [`CALM_FOR`] they go back to `SCHED_IDLE`.
//!
//! What is left: `SCHED_IDLE` threads are still EEVDF entities (weight 3).
//! When a kernel thread preempts an answering thread that has run ahead of
//! them, the scheduler may hand the core to a storage thread, and only the
//! next tick or wake-up takes it back (a few millisecond-long gaps per run
//! in scheduler traces).
//!
//! Returning from `SCHED_IDLE` to a normal policy needs `CAP_SYS_NICE` or an
//! `RLIMIT_NICE` that allows the thread's nice value (systemd:
//! `LimitNICE=`). Without it storage stays a normal thread all along, as
//! before, and the start-up log says so.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the watcher looks at the backlog.
pub(crate) const WATCH_EVERY: Duration = Duration::from_millis(10);
/// A collector that has not drained a non-empty queue for this long is
/// starved (it drains every 20 ms when it runs).
pub(crate) const STALL_AFTER: Duration = Duration::from_millis(100);
/// A write (a batch's events, detection and alerts, the heartbeat or the
/// retention job) still running after this long is starved: with the CPU
/// to itself it takes tens of milliseconds, and SQLite's other writers (the
/// dashboard, Mail Check) wait for it.
pub(crate) const WRITE_STALL_AFTER: Duration = Duration::from_millis(500);
/// How long the backlog stays small before storage yields again.
pub(crate) const CALM_FOR: Duration = Duration::from_millis(200);

/// What the watcher sees at one look.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backlog {
    /// Events waiting in the event queue.
    pub queued: usize,
    /// The event queue's capacity.
    pub capacity: usize,
    /// Batches the collector has handed over that the writer has not taken.
    pub batches_waiting: usize,
    /// Time since the collector last drained the queue.
    pub since_drain: Duration,
    /// How long the writer has been in its current write (zero between
    /// writes).
    pub writing_for: Duration,
}

/// The priority storage should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `SCHED_IDLE`: only the CPU time nothing else wants.
    Yield,
    /// A normal thread at `[store] writer_nice`.
    Fair,
}

/// The watcher's decision, with hysteresis: [`Mode::Fair`] as soon as
/// storage is behind, [`Mode::Yield`] only after [`CALM_FOR`] of small
/// backlog.
#[derive(Debug)]
pub(crate) struct Policy {
    mode: Mode,
    calm_since: Option<Instant>,
    /// Consecutive looks at which a handed-over batch was waiting.
    batch_waits: u32,
}

impl Policy {
    pub(crate) fn new() -> Self {
        Policy {
            mode: Mode::Yield,
            calm_since: None,
            batch_waits: 0,
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// The mode after looking at `b` at `now`.
    pub(crate) fn look(&mut self, b: Backlog, now: Instant) -> Mode {
        // a batch waits while the writer writes the one before: behind only
        // if the writer is idle and still does not take it
        self.batch_waits = if b.batches_waiting > 0 && b.writing_for.is_zero() {
            self.batch_waits + 1
        } else {
            0
        };
        let behind = b.queued > b.capacity / 2
            // the writer takes a batch at once when it gets the CPU
            || self.batch_waits >= 2
            || (b.queued > 0 && b.since_drain >= STALL_AFTER)
            || b.writing_for >= WRITE_STALL_AFTER;
        let calm = b.queued <= b.capacity / 8 && b.batches_waiting == 0;
        if behind {
            self.mode = Mode::Fair;
            self.calm_since = None;
        } else if self.mode == Mode::Fair {
            if !calm {
                self.calm_since = None;
            } else if let Some(t) = self.calm_since {
                if now.duration_since(t) >= CALM_FOR {
                    self.mode = Mode::Yield;
                    self.calm_since = None;
                }
            } else {
                self.calm_since = Some(now);
            }
        }
        self.mode
    }
}

/// Sets the calling thread's nice value (`[store] writer_nice`) for the
/// storage threads (collector, writer, fold). It is what they run at while
/// they are behind; while they keep up, the collector and the writer run as
/// `SCHED_IDLE` (this module). What a higher value costs storage and
/// gains answers is measured in bench/dns/RESULTS.md.
pub(crate) fn storage_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers; who = 0 is this thread
        // on Linux.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if rc != 0 {
            tracing::debug!(
                "cannot lower the storage threads' priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The storage threads and their current priority.
pub(crate) struct StorageSched {
    /// `SCHED_IDLE` can be left again here (checked once at start).
    enabled: bool,
    /// `[store] writer_nice`.
    nice: i32,
    tids: Mutex<Vec<libc::pid_t>>,
    fair: AtomicBool,
    /// Milliseconds since `epoch` when the collector last drained.
    drained_at: AtomicU64,
    /// Milliseconds since `epoch`, plus one, when the writer began the
    /// write in progress; 0 between writes.
    writing_since: AtomicU64,
    epoch: Instant,
}

impl StorageSched {
    /// Checks, in a scratch thread at nice `nice`, whether a thread can
    /// leave `SCHED_IDLE` again; if not, storage threads stay normal.
    pub(crate) fn new(nice: i32) -> Self {
        let enabled = std::thread::spawn(move || {
            storage_priority(nice);
            set_policy(0, Mode::Yield, nice).is_ok() && set_policy(0, Mode::Fair, nice).is_ok()
        })
        .join()
        .unwrap_or(false);
        if enabled {
            tracing::info!(
                "event storage yields the CPU to answers (SCHED_IDLE) until it falls behind"
            );
        } else {
            tracing::info!(
                "event storage runs as normal threads: leaving SCHED_IDLE needs CAP_SYS_NICE or \
                 RLIMIT_NICE (systemd LimitNICE=); answers on a core storage also uses may wait \
                 for its time slice"
            );
        }
        StorageSched {
            enabled,
            nice,
            tids: Mutex::new(Vec::new()),
            fair: AtomicBool::new(false),
            drained_at: AtomicU64::new(0),
            writing_since: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Puts the calling thread under this controller, at the current mode,
    /// until the returned guard is dropped (before the thread ends: a
    /// thread id can be reused).
    pub(crate) fn register(&self) -> Registered<'_> {
        let tid = current_tid();
        if self.enabled {
            let mut tids = self.tids.lock().unwrap_or_else(|e| e.into_inner());
            tids.push(tid);
            let mode = if self.fair.load(Ordering::Relaxed) {
                Mode::Fair
            } else {
                Mode::Yield
            };
            let _ = set_policy(tid, mode, self.nice);
        }
        Registered { sched: self, tid }
    }

    /// The collector calls this each time it has drained the queue.
    pub(crate) fn drained(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.drained_at.store(ms, Ordering::Relaxed);
    }

    /// The writer calls this as it begins (`true`) and ends a write.
    pub(crate) fn writing(&self, now: bool) {
        let v = if now {
            self.epoch.elapsed().as_millis() as u64 + 1
        } else {
            0
        };
        self.writing_since.store(v, Ordering::Relaxed);
    }

    pub(crate) fn writing_for(&self) -> Duration {
        match self.writing_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            t => {
                let ms = self.epoch.elapsed().as_millis() as u64 + 1;
                Duration::from_millis(ms.saturating_sub(t))
            }
        }
    }

    pub(crate) fn since_drain(&self) -> Duration {
        let ms = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(ms.saturating_sub(self.drained_at.load(Ordering::Relaxed)))
    }

    /// Moves every registered thread to `mode`.
    pub(crate) fn apply(&self, mode: Mode) {
        if !self.enabled {
            return;
        }
        let tids = self.tids.lock().unwrap_or_else(|e| e.into_inner());
        self.fair.store(mode == Mode::Fair, Ordering::Relaxed);
        for &tid in tids.iter() {
            if let Err(e) = set_policy(tid, mode, self.nice) {
                tracing::debug!(tid, ?mode, "cannot change a storage thread's policy: {e}");
            }
        }
        tracing::debug!(?mode, "event storage priority");
    }

    /// Watches the backlog until `done` is set, moving storage between the
    /// modes. The calling thread makes itself a normal thread at nice 0
    /// first (it may have been started by one that yields).
    pub(crate) fn watch(&self, done: &AtomicBool, backlog: impl Fn(&Self) -> Backlog) {
        if !self.enabled {
            return;
        }
        if let Err(e) = set_policy(0, Mode::Fair, 0) {
            tracing::debug!("the storage watcher cannot make itself a normal thread: {e}");
        }
        let mut policy = Policy::new();
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(WATCH_EVERY);
            let before = policy.mode();
            let after = policy.look(backlog(self), Instant::now());
            if after != before {
                self.apply(after);
            }
        }
    }
}

/// A thread under [`StorageSched`]; leaves it when dropped.
pub(crate) struct Registered<'a> {
    sched: &'a StorageSched,
    tid: libc::pid_t,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut tids = self.sched.tids.lock().unwrap_or_else(|e| e.into_inner());
        tids.retain(|&t| t != self.tid);
    }
}

#[cfg(target_os = "linux")]
fn current_tid() -> libc::pid_t {
    // SAFETY: gettid has no arguments and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::gettid()
    }
}

#[cfg(not(target_os = "linux"))]
fn current_tid() -> libc::pid_t {
    0
}

/// `struct sched_attr`, first version (48 bytes), from
/// include/uapi/linux/sched/types.h.
#[cfg(target_os = "linux")]
#[repr(C)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

#[cfg(target_os = "linux")]
const _: () = assert!(std::mem::size_of::<SchedAttr>() == 48);

#[cfg(not(target_os = "linux"))]
fn set_policy(_tid: libc::pid_t, _mode: Mode, _nice: i32) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Sets thread `tid`'s policy (0: the calling thread) at nice `nice`.
#[cfg(target_os = "linux")]
fn set_policy(tid: libc::pid_t, mode: Mode, nice: i32) -> std::io::Result<()> {
    let policy = match mode {
        Mode::Yield => libc::SCHED_IDLE,
        Mode::Fair => libc::SCHED_OTHER,
    };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: 0,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: sched_setattr reads `size` bytes from a live, initialised
    // struct laid out as the kernel's; on Linux a pid argument names a
    // thread.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            libc::c_long::from(tid),
            &attr as *const SchedAttr,
            libc::c_long::from(0u8),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn b(queued: usize, batches_waiting: usize, since_drain_ms: u64) -> Backlog {
        Backlog {
            queued,
            capacity: 16384,
            batches_waiting,
            since_drain: Duration::from_millis(since_drain_ms),
            writing_for: Duration::ZERO,
        }
    }

    #[test]
    fn falls_behind_on_a_full_queue_a_waiting_batch_or_a_starved_collector() {
        let t = Instant::now();
        let mut p = Policy::new();
        assert_eq!(p.look(b(100, 0, 10), t), Mode::Yield);
        assert_eq!(p.look(b(8192, 0, 10), t), Mode::Yield);
        assert_eq!(p.look(b(8193, 0, 10), t), Mode::Fair);

        let mut p = Policy::new();
        assert_eq!(
            p.look(b(0, 1, 0), t),
            Mode::Yield,
            "one look: just handed over"
        );
        assert_eq!(
            p.look(b(0, 1, 0), t),
            Mode::Fair,
            "two looks: the writer is starved"
        );

        let mut p = Policy::new();
        assert_eq!(
            p.look(b(0, 0, 500), t),
            Mode::Yield,
            "nothing queued: idle, not starved"
        );
        assert_eq!(p.look(b(1, 0, 99), t), Mode::Yield);
        assert_eq!(p.look(b(1, 0, 100), t), Mode::Fair);

        let mut p = Policy::new();
        let writing = |ms| Backlog {
            writing_for: Duration::from_millis(ms),
            ..b(0, 0, 0)
        };
        let busy = Backlog {
            batches_waiting: 1,
            ..writing(300)
        };
        for _ in 0..5 {
            assert_eq!(
                p.look(busy, t),
                Mode::Yield,
                "a batch waits while one is written"
            );
        }
        assert_eq!(p.look(writing(499), t), Mode::Yield);
        assert_eq!(p.look(writing(500), t), Mode::Fair, "a starved write");
    }

    #[test]
    fn yields_again_only_after_a_calm_spell() {
        let t = Instant::now();
        let mut p = Policy::new();
        assert_eq!(p.look(b(9000, 0, 0), t), Mode::Fair);
        assert_eq!(p.look(b(100, 0, 0), t), Mode::Fair);
        let ms = |n| t + Duration::from_millis(n);
        assert_eq!(p.look(b(100, 0, 0), ms(150)), Mode::Fair);
        // a backlog between the marks resets the calm spell
        assert_eq!(p.look(b(3000, 0, 0), ms(190)), Mode::Fair);
        assert_eq!(p.look(b(100, 0, 0), ms(200)), Mode::Fair);
        assert_eq!(p.look(b(100, 0, 0), ms(399)), Mode::Fair);
        assert_eq!(p.look(b(100, 0, 0), ms(400)), Mode::Yield);
    }

    /// The policy of thread `tid` as the kernel reports it.
    fn policy_of(tid: libc::pid_t) -> i32 {
        // SAFETY: plain integer argument.
        #[allow(unsafe_code)]
        unsafe {
            libc::sched_getscheduler(tid)
        }
    }

    /// The nice value of thread `tid`.
    fn nice_of(tid: libc::pid_t) -> i32 {
        // SAFETY: plain integer arguments.
        #[allow(unsafe_code)]
        unsafe {
            libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t)
        }
    }

    /// Starts a thread at nice 5 registered with `s`; returns its thread
    /// id, a sender that lets it finish, and its handle.
    fn registered(
        s: &std::sync::Arc<StorageSched>,
    ) -> (
        libc::pid_t,
        std::sync::mpsc::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let s = s.clone();
        let h = std::thread::spawn(move || {
            storage_priority(5);
            let _r = s.register();
            tx.send(current_tid()).unwrap();
            let _ = stop_rx.recv();
        });
        (rx.recv().unwrap(), stop_tx, h)
    }

    #[test]
    fn moves_registered_threads_between_idle_and_normal() {
        let s = std::sync::Arc::new(StorageSched::new(5));
        let (tid, stop, h) = registered(&s);
        if !s.enabled() {
            // without CAP_SYS_NICE the scheme is off: a registered thread
            // stays a normal thread at its nice value
            assert_eq!(policy_of(tid), libc::SCHED_OTHER);
            assert_eq!(nice_of(tid), 5);
            stop.send(()).unwrap();
            h.join().unwrap();
            return;
        }
        assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        s.apply(Mode::Fair);
        assert_eq!(policy_of(tid), libc::SCHED_OTHER);
        assert_eq!(nice_of(tid), 5, "writer_nice kept across the change");
        // a thread registering while storage is behind starts normal
        let (late, late_stop, late_h) = registered(&s);
        assert_eq!(policy_of(late), libc::SCHED_OTHER);
        s.apply(Mode::Yield);
        assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        assert_eq!(policy_of(late), libc::SCHED_IDLE);
        // a thread that has left is no longer moved
        late_stop.send(()).unwrap();
        late_h.join().unwrap();
        assert_eq!(s.tids.lock().unwrap().as_slice(), &[tid]);
        stop.send(()).unwrap();
        h.join().unwrap();
        assert!(s.tids.lock().unwrap().is_empty());
    }
}
