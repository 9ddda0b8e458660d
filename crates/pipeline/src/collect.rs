//! The collector: drains the resolver's event queue, pseudonymises each
//! client before anything else sees the event, and folds the repeats of a
//! query into runs, handing batches of runs to the writer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parapet_core::event::{OwnedRun, QueryEvent, RunFolder};
use parapet_core::pseudonym::{ClientPseudonym, PseudonymCache, Pseudonymiser};
use parapet_store::{BatchId, SealedClient, unix_millis};

use crate::sched::StorageSched;
use crate::seal::{SealKey, Sealer};
use crate::spool::{AppendError, Pos, Spool};

/// A batch handed to the writer.
#[derive(Debug)]
pub(crate) struct Batch {
    pub id: BatchId,
    pub runs: Vec<OwnedRun>,
    /// Its clients' addresses sealed to the investigation key, one per
    /// client (none without a key).
    pub sealed: Vec<SealedClient>,
    /// Where its record starts and ends in the spool; `None` when it could
    /// not be spooled (full, or a write error): then this is its only copy.
    pub spooled: Option<(Pos, Pos)>,
}

/// Where the collector's batches go: the spool first, then the writer.
pub(crate) struct Out<'a> {
    pub batches: &'a crossbeam_channel::Sender<Batch>,
    pub spool: &'a Spool,
    /// This run's id (the writer's start time, unix milliseconds).
    pub run: i64,
}

impl Out<'_> {
    /// Numbers the batch, appends it to the spool and hands it over. A
    /// spooled batch the writer has no room for is not waited for: the
    /// writer reads it back from the spool, and the collector goes on
    /// draining the queue (a crash loses what is drained, not more).
    fn hand_over(&self, seq: &mut i64, runs: Vec<OwnedRun>, sealed: Vec<SealedClient>) {
        *seq += 1;
        let id = BatchId {
            run: self.run,
            seq: *seq,
        };
        let spooled = match self.spool.append_sealed(id, &runs, &sealed) {
            Ok(at) => Some(at),
            Err(e @ AppendError::Full { .. }) => {
                tracing::debug!("batch {} not spooled: {e}", id.seq);
                None
            }
            Err(e) => {
                tracing::error!("batch {} not spooled: {e}", id.seq);
                None
            }
        };
        let batch = Batch {
            id,
            runs,
            sealed,
            spooled,
        };
        if batch.spooled.is_some() {
            let _ = self.batches.try_send(batch);
        } else {
            let _ = self.batches.send(batch);
        }
    }
}

/// How often the queue is drained; with the default queue of 16384 events
/// this absorbs 800k queries per second.
pub(crate) const EVENT_POLL: Duration = Duration::from_millis(20);
/// Most distinct queries (runs) in one batch.
const MAX_BATCH: usize = 20_000;
/// Events the collector drains between two looks at the clock.
const CLOCK_EVERY: usize = 1024;

/// One debug line per query under the target `parapet::query`
/// (`PARAPET_LOG=info,parapet::query=debug`), written here rather than in
/// the resolver: off the hot path, and with the client already a
/// pseudonym, as everywhere outside the process. Disabled (the default),
/// it costs one cached check per event.
fn log_query(ev: &parapet_core::event::PrivateEvent) {
    tracing::debug!(
        target: "parapet::query",
        tenant = %ev.tenant,
        client = %ev.client,
        name = %ev.qname,
        qtype = ev.qtype,
        rcode = ev.rcode,
        action = ev.action.as_str(),
        feed = ev.feed.as_deref(),
        "query"
    );
}

/// The distinct clients of the batch being filled, with their addresses,
/// when addresses are sealed: the raw address stays in the collector's
/// memory until the batch is cut (at most `flush_every`), then only its
/// sealed form goes on.
#[derive(Default)]
struct BatchClients {
    seen: HashMap<(Arc<str>, ClientPseudonym), (IpAddr, SystemTime, SystemTime)>,
}

impl BatchClients {
    fn note(&mut self, tenant: &Arc<str>, client: ClientPseudonym, ip: IpAddr, t: SystemTime) {
        match self.seen.get_mut(&(tenant.clone(), client)) {
            Some(e) => {
                e.1 = e.1.min(t);
                e.2 = e.2.max(t);
            }
            None => {
                self.seen.insert((tenant.clone(), client), (ip, t, t));
            }
        }
    }

    /// One sealed address per client of the batch; the addresses are
    /// forgotten.
    fn seal(&mut self, sealer: &mut Sealer) -> Vec<SealedClient> {
        self.seen
            .drain()
            .map(|((tenant, client), (ip, first, last))| SealedClient {
                sealed: sealer.seal(&tenant, client, ip).to_vec(),
                tenant,
                client,
                first: unix_millis(first),
                last: unix_millis(last),
            })
            .collect()
    }
}

/// Drains the event queue every [`EVENT_POLL`], pseudonymising each client
/// and folding the repeats of a query into one run, and hands the runs to
/// the writer (through the spool, [`Out::hand_over`]) when there are
/// [`MAX_BATCH`] of them or every `flush_every`. Only a batch the spool
/// could not take waits for the writer: the event queue then fills and
/// the resolver drops (and counts), never waits.
pub(crate) fn collect(
    rx: &crossbeam_channel::Receiver<QueryEvent>,
    stop: &AtomicBool,
    pseudonymiser: &Pseudonymiser,
    flush_every: Duration,
    out: &Out<'_>,
    sched: &StorageSched,
    seal: Option<SealKey>,
) {
    let mut seq = 0;
    let mut pseudonyms = PseudonymCache::new(pseudonymiser.clone());
    let mut sealer = seal.map(Sealer::new);
    let sealing = sealer.is_some();
    let mut clients = BatchClients::default();
    // repeats fold here, as they are drained: a batch holds each distinct
    // query once, however many times it was asked
    let mut batch = RunFolder::default();
    let mut last_flush = Instant::now();
    let mut hand_over = |batch: &mut RunFolder, clients: &mut BatchClients| {
        if !batch.is_empty() {
            let sealed = match &mut sealer {
                Some(s) => {
                    s.expire(Instant::now());
                    clients.seal(s)
                }
                None => Vec::new(),
            };
            out.hand_over(&mut seq, batch.take(), sealed);
        }
    };
    loop {
        std::thread::sleep(EVENT_POLL);
        pseudonyms.expire(Instant::now());
        let mut closed = stop.load(Ordering::Relaxed);
        loop {
            match rx.try_recv() {
                Ok(ev) => {
                    let client = pseudonyms.pseudonymise(ev.client);
                    if sealing {
                        clients.note(&ev.tenant, client, ev.client, ev.time);
                    }
                    let ev = ev.with_pseudonym(client);
                    log_query(&ev);
                    batch.push(ev);
                    // a queue that never empties (repeats of a few names
                    // at saturation fill no batch) still hands over every
                    // `flush_every`: a crash loses no more, and a run
                    // spans no longer, than that
                    if batch.runs() >= MAX_BATCH
                        || (batch.queries().is_multiple_of(CLOCK_EVERY)
                            && last_flush.elapsed() >= flush_every)
                    {
                        hand_over(&mut batch, &mut clients);
                        last_flush = Instant::now();
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {
                    sched.drained();
                    break;
                }
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed || last_flush.elapsed() >= flush_every {
            hand_over(&mut batch, &mut clients);
            last_flush = Instant::now();
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn a_queue_that_never_empties_is_still_handed_over_on_time() {
        use parapet_core::event::EventAction;
        use parapet_core::name::{EventName, text_to_key};

        let (tx, rx) = crossbeam_channel::bounded(10_000);
        let name = EventName::new(&text_to_key("a.example").unwrap());
        for _ in 0..10_000 {
            tx.send(QueryEvent {
                time: SystemTime::now(),
                tenant: "council-a".into(),
                client: "192.0.2.1".parse().unwrap(),
                qname: name.clone(),
                qtype: 1,
                rcode: 0,
                action: EventAction::Resolved,
                feed: None,
            })
            .unwrap();
        }
        let (out_tx, out_rx) = crossbeam_channel::unbounded();
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool"), 1 << 30).unwrap();
        let out = Out {
            batches: &out_tx,
            spool: &spool,
            run: 1,
        };
        // stopped: drains what is queued, hands the rest over, returns
        let stop = AtomicBool::new(true);
        let pseudonymiser =
            parapet_core::pseudonym::Pseudonymiser::new(b"0123456789abcdef").unwrap();
        let sched = StorageSched::new(0);
        // every 1,024 events the flush interval (zero) has passed: ten batches
        // of one run each, not one batch of 10,000 queries after the drain
        collect(
            &rx,
            &stop,
            &pseudonymiser,
            Duration::ZERO,
            &out,
            &sched,
            None,
        );
        let batches: Vec<Vec<OwnedRun>> = out_rx.try_iter().map(|b: Batch| b.runs).collect();
        let sizes: Vec<(usize, u32)> = batches
            .iter()
            .map(|b| (b.len(), b.iter().map(|r| r.queries).sum()))
            .collect();
        assert_eq!(sizes.len(), 10, "{sizes:?}");
        assert!(
            sizes[..9].iter().all(|&s| s == (1, CLOCK_EVERY as u32)),
            "{sizes:?}"
        );
        assert_eq!(sizes.iter().map(|s| s.1).sum::<u32>(), 10_000);
    }

    #[test]
    fn each_client_of_a_batch_is_sealed_once_and_opens_to_its_address() {
        use parapet_core::event::EventAction;
        use parapet_core::name::{EventName, text_to_key};

        let (tx, rx) = crossbeam_channel::bounded(100);
        let name = EventName::new(&text_to_key("a.example").unwrap());
        for (i, ip) in ["127.0.0.7", "127.0.0.8", "127.0.0.7"].iter().enumerate() {
            tx.send(QueryEvent {
                time: std::time::UNIX_EPOCH + Duration::from_millis(1000 + i as u64),
                tenant: "council-a".into(),
                client: ip.parse().unwrap(),
                qname: name.clone(),
                qtype: 1,
                rcode: 0,
                action: EventAction::Resolved,
                feed: None,
            })
            .unwrap();
        }
        let (out_tx, out_rx) = crossbeam_channel::unbounded();
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool"), 1 << 30).unwrap();
        let out = Out {
            batches: &out_tx,
            spool: &spool,
            run: 1,
        };
        let (public, private) = crate::seal::keygen();
        let p = Pseudonymiser::new(b"0123456789abcdef").unwrap();
        let seal = Some(SealKey::parse(&public).unwrap());
        let stop = AtomicBool::new(true);
        collect(
            &rx,
            &stop,
            &p,
            Duration::from_secs(60),
            &out,
            &StorageSched::new(0),
            seal,
        );
        let batch: Batch = out_rx.try_recv().unwrap();
        let open = crate::seal::OpenKey::parse(&private).unwrap();
        let mut got: Vec<(String, i64, i64)> = batch
            .sealed
            .iter()
            .map(|c| {
                let ip = open.open(&c.sealed, &c.tenant, c.client).unwrap();
                assert_eq!(c.client, p.pseudonymise(ip));
                (ip.to_string(), c.first, c.last)
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("127.0.0.7".to_string(), 1000, 1002),
                ("127.0.0.8".to_string(), 1001, 1001)
            ]
        );
        // the spool holds the blobs, never the address
        let mut bytes = Vec::new();
        for f in std::fs::read_dir(dir.path().join("spool")).unwrap() {
            bytes.extend(std::fs::read(f.unwrap().path()).unwrap());
        }
        assert!(!bytes.windows(4).any(|w| w == [127, 0, 0, 7]));
        assert!(!bytes.windows(9).any(|w| w == b"127.0.0.7"));
    }
}
