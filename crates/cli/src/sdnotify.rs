//! systemd's service notifications (sd_notify(3)): READY, STATUS,
//! RELOADING, STOPPING and the watchdog's keep-alive, for a unit of
//! `Type=notify`. Without `NOTIFY_SOCKET` (not under systemd) every call
//! does nothing.
//!
//! Hand-written rather than a crate or libsystemd: the protocol is one
//! datagram of `KEY=VALUE` lines to the Unix socket named in the
//! environment, a dozen lines of std.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

/// The socket and the address to send to, found once.
fn target() -> Option<&'static (UnixDatagram, SocketAddr)> {
    static TARGET: OnceLock<Option<(UnixDatagram, SocketAddr)>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let path = std::env::var_os("NOTIFY_SOCKET")?;
            let path = path.to_str()?;
            // `@name` is a socket in the abstract namespace
            let addr = match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
                None => SocketAddr::from_pathname(path),
            };
            let addr = addr
                .map_err(|e| tracing::warn!("NOTIFY_SOCKET={path}: {e}"))
                .ok()?;
            let sock = UnixDatagram::unbound()
                .map_err(|e| tracing::warn!("no socket for systemd notifications: {e}"))
                .ok()?;
            Some((sock, addr))
        })
        .as_ref()
}

/// Sends `state` (newline-separated `KEY=VALUE` lines) to systemd, if
/// Parapet runs under it. A failure is logged, never fatal: the service
/// works the same, only systemd's view of it is late.
pub fn notify(state: &str) {
    if let Some((sock, addr)) = target()
        && let Err(e) = sock.send_to_addr(state.as_bytes(), addr)
    {
        tracing::debug!("systemd notification not sent: {e}");
    }
}

/// How often to tell the watchdog all is well: half of `WATCHDOG_USEC`,
/// as sd_watchdog_enabled(3) advises; `None` when no watchdog is set for
/// this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str()?.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Keeps the watchdog fed from a task on the runtime that answers DNS:
/// when its workers are stuck (a deadlock, a blocking call gone wrong) the
/// tick stops, the keep-alive with it, and systemd restarts the service.
pub async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        notify("WATCHDOG=1");
    }
}
