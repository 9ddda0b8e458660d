//! RPZ feeds by zone transfer: an AXFR first, then IXFR (RFC 1995) at the
//! SOA refresh or when a primary's NOTIFY (RFC 1996) arrives, falling back
//! to AXFR when the IXFR fails; TSIG (RFC 8945) on every message.
//!
//! [`XfrFeed`] holds one feed's zone and its copy on disk; [`run`] drives
//! it on a thread of its own and hands each outcome ([`Event`]) to the
//! caller, which turns rules into policy. An IXFR comes out as a
//! [`FeedDelta`], so that the policy in force can be changed in place.
//!
//! On disk, under the feeds folder: `<name>.rpz` (the zone as RPZ text,
//! readable by people and by the feed parser), `<name>.xfr` (the zone in a
//! compact binary form, to apply the next IXFR to after a restart) and
//! `<name>.status.json` (serial, times, last error). The `.rpz` copy is
//! written first, so the `.xfr` copy is never newer than it.

pub mod client;
pub mod delta;
pub mod msg;
pub mod tsig;
pub mod zone;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parapet_core::policy::{FeedDelta, FeedRules};
use parapet_detect::feed::FeedWarning;

pub use client::{Limits, Transfer, XfrError};
pub use tsig::{Algorithm, TsigKey};

use zone::{Zone, render_rrset};

/// One feed taken by zone transfer, as configured.
#[derive(Debug, Clone)]
pub struct XfrSpec {
    pub name: String,
    /// The policy zone's name.
    pub zone: String,
    /// Tried in order until one answers.
    pub primaries: Vec<SocketAddr>,
    pub tsig: Option<TsigKey>,
    /// Overrides the SOA refresh interval.
    pub refresh: Option<Duration>,
    /// The folder of the copies on disk (`<store path>/feeds`).
    pub dir: PathBuf,
    pub limits: Limits,
}

/// What a feed's status file records, for `parapet feeds status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct XfrStatus {
    pub zone: String,
    pub serial: Option<u32>,
    /// Unix seconds of the last transfer that changed the feed.
    pub last_transfer: u64,
    /// Unix seconds of the last successful check with a primary.
    pub last_success: u64,
    pub last_error: Option<String>,
    /// Rules in the feed.
    pub entries: u64,
    /// The primary of the last successful check.
    pub primary: Option<String>,
}

/// Where a feed's copies are kept.
pub fn rpz_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.rpz"))
}

fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.xfr"))
}

fn status_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.status.json"))
}

/// The status a feed last recorded, if any.
pub fn read_status(dir: &Path, name: &str) -> Option<XfrStatus> {
    let data = std::fs::read(status_path(dir, name)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// How a change to the feed arrives.
#[derive(Debug)]
pub enum Update {
    /// The whole feed anew (an AXFR).
    Full {
        rules: FeedRules,
        warnings: Vec<FeedWarning>,
    },
    /// Changes to the rules of the previous version (an IXFR).
    Delta { delta: FeedDelta },
}

/// What one attempt to refresh a feed came to.
#[derive(Debug)]
pub enum Outcome {
    Updated {
        serial: u32,
        /// Boxed: a feed's rules are large beside the other outcomes.
        update: Box<Update>,
    },
    /// The primary has nothing newer.
    UpToDate { serial: u32 },
    /// Every primary failed; the message names the feed and each primary.
    Failed(String),
    /// The feed passed its SOA expire time without a successful refresh.
    Stale { serial: Option<u32>, since: u64 },
}

/// An outcome, for the feed `feed`. `notified` is when the NOTIFY that
/// prompted the refresh arrived, to log the time to policy in force.
#[derive(Debug)]
pub struct Event {
    pub feed: String,
    pub outcome: Outcome,
    pub notified: Option<Instant>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A feed by zone transfer: its zone and what has been saved of it.
pub struct XfrFeed {
    spec: XfrSpec,
    apex: Vec<u8>,
    zone: Option<Zone>,
    status: XfrStatus,
    /// The zone changed since it was last saved.
    dirty: bool,
    stale_reported: bool,
}

impl XfrFeed {
    /// Opens the feed, with the zone saved by an earlier run if there is
    /// one (a damaged copy is logged and ignored: the next transfer is an
    /// AXFR).
    pub fn open(spec: XfrSpec) -> Result<Self, String> {
        let apex = parapet_core::name::text_to_key(&spec.zone)
            .map_err(|e| format!("feed `{}`: zone: {e}", spec.name))?;
        let zone = match Zone::load(&state_path(&spec.dir, &spec.name)) {
            Ok(z) if z.apex() == apex => Some(z),
            Ok(_) => None,
            Err(e) => {
                if state_path(&spec.dir, &spec.name).exists() {
                    tracing::warn!(feed = %spec.name, "saved zone not used: {e}");
                }
                None
            }
        };
        let mut status = read_status(&spec.dir, &spec.name).unwrap_or_default();
        status.zone = spec.zone.clone();
        status.serial = zone.as_ref().map(Zone::serial);
        Ok(Self {
            spec,
            apex,
            zone,
            status,
            dirty: false,
            stale_reported: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn status(&self) -> &XfrStatus {
        &self.status
    }

    /// Asks each primary in turn; the first that answers wins.
    pub fn refresh(&mut self) -> Outcome {
        let mut errors = Vec::new();
        for &primary in &self.spec.primaries.clone() {
            match self.refresh_from(primary) {
                Ok(o) => {
                    self.status.last_success = now_unix();
                    self.status.last_error = None;
                    self.status.primary = Some(primary.to_string());
                    self.stale_reported = false;
                    return o;
                }
                Err(e) => errors.push(format!("primary {primary}: {e}")),
            }
        }
        let msg = format!(
            "feed `{}` (zone {}): {}",
            self.spec.name,
            self.spec.zone,
            errors.join("; ")
        );
        self.status.last_error = Some(msg.clone());
        self.dirty = true;
        Outcome::Failed(msg)
    }

    fn refresh_from(&mut self, primary: SocketAddr) -> Result<Outcome, XfrError> {
        let tsig = self.spec.tsig.clone();
        let have = self.zone.as_ref().map(Zone::serial);
        let first = client::transfer(primary, &self.apex, tsig.as_ref(), have, &self.spec.limits);
        let result = match first {
            Ok(t) => self.apply(t),
            Err(e) => Err(e),
        };
        match result {
            // these would fail the same way by AXFR
            Err(
                e @ (XfrError::Tsig(_) | XfrError::SerialBackwards { .. } | XfrError::Network(_)),
            ) => Err(e),
            Err(e) if have.is_some() => {
                tracing::warn!(feed = %self.spec.name, %primary, "IXFR failed ({e}); trying AXFR");
                let t =
                    client::transfer(primary, &self.apex, tsig.as_ref(), None, &self.spec.limits)?;
                self.apply(t)
            }
            r => r,
        }
    }

    /// Takes in what a transfer brought.
    fn apply(&mut self, t: Transfer) -> Result<Outcome, XfrError> {
        let have = self.zone.as_ref().map(Zone::serial);
        match t {
            Transfer::UpToDate(serial) if have.is_none_or(|h| h == serial) => {
                Ok(Outcome::UpToDate { serial })
            }
            // a newer SOA alone: the primary has changes it will not send
            // as an IXFR (the caller falls back to AXFR)
            Transfer::UpToDate(serial) => Err(XfrError::Malformed(format!(
                "the IXFR was answered with serial {serial}'s SOA alone"
            ))),
            Transfer::Full(zone) => {
                let serial = zone.serial();
                if let Some(h) = have
                    && msg::serial_gt(h, serial)
                {
                    return Err(XfrError::SerialBackwards {
                        have: h,
                        got: serial,
                    });
                }
                let mut text = Vec::with_capacity(zone.records() * 48 + 256);
                zone.render(&mut text);
                let label = format!("zone {} serial {serial}", self.spec.zone);
                let (rules, warnings) =
                    delta::rules_of(&text, &label).map_err(XfrError::Malformed)?;
                drop(text);
                self.zone = Some(zone);
                self.changed(serial, rules.len());
                Ok(Outcome::Updated {
                    serial,
                    update: Box::new(Update::Full { rules, warnings }),
                })
            }
            Transfer::Incremental { soa, changes } => {
                let serial = soa.times().serial;
                let (delta, grown) = match self.apply_changes(soa, &changes) {
                    Ok(d) => d,
                    Err(e) => {
                        // the copy may be half changed: start again from a full zone
                        self.zone = None;
                        return Err(XfrError::Malformed(e));
                    }
                };
                let entries = (self.status.entries as i64 + grown).max(0) as usize;
                self.changed(serial, entries);
                Ok(Outcome::Updated {
                    serial,
                    update: Box::new(Update::Delta { delta }),
                })
            }
        }
    }

    fn changed(&mut self, serial: u32, entries: usize) {
        self.status.serial = Some(serial);
        self.status.last_transfer = now_unix();
        self.status.entries = entries as u64;
        self.dirty = true;
    }

    /// Applies an IXFR's changes to the zone; returns what they change in
    /// the rules, and by how many rules the feed grew.
    fn apply_changes(
        &mut self,
        soa: zone::Soa,
        changes: &[client::Change],
    ) -> Result<(FeedDelta, i64), String> {
        let zone = self.zone.as_mut().ok_or("no zone to apply an IXFR to")?;
        let mut owners: Vec<&[u8]> = changes.iter().map(|c| c.owner.as_slice()).collect();
        owners.sort_unstable();
        owners.dedup();
        let mut head = Vec::new();
        zone::render_soa(&mut head, zone);
        let mut before = head.clone();
        for o in &owners {
            if let Some(rrs) = zone.rrset(o) {
                render_rrset(&mut before, o, rrs);
            }
        }
        for c in changes {
            if c.add {
                zone.add(&c.owner, c.rtype, c.ttl, &c.rdata)?;
            } else if !zone.remove(&c.owner, c.rtype, &c.rdata)? {
                return Err(format!(
                    "the IXFR deletes a record of `{}` this copy does not have",
                    parapet_core::name::key_to_text(&c.owner)
                ));
            }
        }
        zone.soa = soa;
        let mut after = head;
        for o in &owners {
            if let Some(rrs) = zone.rrset(o) {
                render_rrset(&mut after, o, rrs);
            }
        }
        let label = format!(
            "IXFR of zone {} to serial {}",
            self.spec.zone,
            zone.serial()
        );
        let (old, _) = delta::rules_of(&before, &label)?;
        let (new, warnings) = delta::rules_of(&after, &label)?;
        for w in warnings {
            tracing::warn!(feed = %self.spec.name, "{label}: skipped: {}", w.message);
        }
        let grown = new.len() as i64 - old.len() as i64;
        Ok((delta::diff(&old, &new), grown))
    }

    /// Saves the zone and the status if they changed. Errors are logged:
    /// the feed in force does not depend on the copy.
    pub fn persist(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let dir = &self.spec.dir;
        let name = &self.spec.name;
        let started = Instant::now();
        let saved = std::fs::create_dir_all(dir).and_then(|()| match &self.zone {
            Some(z) if self.status.serial == Some(z.serial()) => {
                let mut text = Vec::with_capacity(z.records() * 48 + 256);
                z.render(&mut text);
                zone::write_atomic(&rpz_path(dir, name), &text)?;
                z.save(&state_path(dir, name))
            }
            _ => Ok(()),
        });
        if let Err(e) = saved {
            tracing::error!(feed = %name, "cannot save the copy of the feed under {}: {e}", dir.display());
        }
        let json = serde_json::to_vec_pretty(&self.status).unwrap_or_default();
        if let Err(e) = zone::write_atomic(&status_path(dir, name), &json) {
            tracing::error!(feed = %name, "cannot save the feed's status: {e}");
        }
        tracing::debug!(feed = %name, ms = started.elapsed().as_millis() as u64, "saved the feed's copy");
    }

    fn times(&self) -> Option<msg::SoaTimes> {
        self.zone.as_ref().map(|z| z.soa.times())
    }

    /// How long to wait before the next refresh.
    pub fn next_wait(&self, ok: bool) -> Duration {
        let t = self.times();
        let secs = match (ok, t) {
            (true, _) if self.spec.refresh.is_some() => {
                return self.spec.refresh.unwrap_or_default();
            }
            (true, Some(t)) => t.refresh,
            (false, Some(t)) => t.retry,
            (_, None) => 60,
        };
        Duration::from_secs(u64::from(secs.clamp(1, 86_400)))
    }

    /// A stale outcome, once, when the feed passed its SOA expire time
    /// since its last successful refresh.
    pub fn check_stale(&mut self) -> Option<Outcome> {
        let t = self.times()?;
        let since = self.status.last_success.max(1);
        let expired = since + u64::from(t.expire);
        if self.stale_reported || now_unix() < expired {
            return None;
        }
        self.stale_reported = true;
        Some(Outcome::Stale {
            serial: self.status.serial,
            since: self.status.last_success,
        })
    }
}

/// What wakes a feed's thread.
#[derive(Debug)]
pub enum Wake {
    /// A primary sent NOTIFY, at this instant.
    Notify(Instant),
    Stop,
}

/// Runs a feed until told to stop (or its sender is dropped): a refresh at
/// once, then at the SOA refresh or retry interval, or on NOTIFY.
pub fn run(
    mut feed: XfrFeed,
    wake: crossbeam_channel::Receiver<Wake>,
    mut deliver: impl FnMut(Event),
) {
    let mut wait = Duration::ZERO;
    loop {
        let notified = match wake.recv_timeout(wait) {
            Ok(Wake::Notify(at)) => Some(at),
            Ok(Wake::Stop) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
        };
        let outcome = feed.refresh();
        let ok = !matches!(outcome, Outcome::Failed(_));
        deliver(Event {
            feed: feed.name().to_string(),
            outcome,
            notified,
        });
        feed.persist();
        if let Some(stale) = feed.check_stale() {
            deliver(Event {
                feed: feed.name().to_string(),
                outcome: stale,
                notified: None,
            });
        }
        wait = feed.next_wait(ok);
        // NOTIFYs that came during the transfer may announce a newer serial
        let mut again = false;
        while let Ok(w) = wake.try_recv() {
            match w {
                Wake::Notify(_) => again = true,
                Wake::Stop => return,
            }
        }
        if again {
            wait = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feed whose only primary refuses connections (a port nothing
    /// listens on), with `zone` saved on disk as if from an earlier run.
    fn feed_with_copy(dir: &Path, zone: Option<&Zone>, last_success: u64) -> XfrFeed {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let primary = closed.local_addr().unwrap();
        drop(closed);
        if let Some(z) = zone {
            z.save(&state_path(dir, "v")).unwrap();
        }
        let status = XfrStatus {
            last_success,
            ..XfrStatus::default()
        };
        std::fs::write(status_path(dir, "v"), serde_json::to_vec(&status).unwrap()).unwrap();
        XfrFeed::open(XfrSpec {
            name: "v".into(),
            zone: "rpz.test".into(),
            primaries: vec![primary],
            tsig: None,
            refresh: None,
            dir: dir.to_path_buf(),
            limits: Limits::default(),
        })
        .unwrap()
    }

    fn zone(expire: u32) -> Zone {
        let mut rdata = b"\x00\x00".to_vec();
        for n in [9, 3600, 5, expire, 60] {
            rdata.extend_from_slice(&n.to_be_bytes());
        }
        let apex = parapet_core::name::text_to_key("rpz.test").unwrap();
        Zone::new(&apex, zone::Soa { ttl: 60, rdata })
    }

    #[test]
    fn a_failed_refresh_names_the_feed_and_primary_and_expiry_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut feed = feed_with_copy(dir.path(), Some(&zone(60)), now_unix() - 120);
        assert_eq!(feed.status().serial, Some(9));
        let Outcome::Failed(msg) = feed.refresh() else {
            panic!("the primary is down")
        };
        assert!(
            msg.starts_with("feed `v` (zone rpz.test): primary 127.0.0.1:"),
            "{msg}"
        );
        // SOA retry after a failure, refresh after a success
        assert_eq!(feed.next_wait(false), Duration::from_secs(5));
        assert_eq!(feed.next_wait(true), Duration::from_secs(3600));
        assert!(matches!(
            feed.check_stale(),
            Some(Outcome::Stale {
                serial: Some(9),
                ..
            })
        ));
        assert!(feed.check_stale().is_none(), "reported once");
        // the failure is recorded for `parapet feeds status`
        feed.persist();
        let saved = read_status(dir.path(), "v").unwrap();
        assert!(saved.last_error.unwrap().contains("primary 127.0.0.1:"));
    }

    #[test]
    fn a_feed_within_its_expire_time_is_not_stale() {
        let dir = tempfile::tempdir().unwrap();
        let mut feed = feed_with_copy(dir.path(), Some(&zone(86_400)), now_unix() - 120);
        let _ = feed.refresh();
        assert!(feed.check_stale().is_none());
        // without any copy there is nothing to expire
        let dir = tempfile::tempdir().unwrap();
        let mut feed = feed_with_copy(dir.path(), None, 0);
        let _ = feed.refresh();
        assert!(feed.check_stale().is_none());
        assert_eq!(feed.next_wait(false), Duration::from_secs(60));
    }
}
