//! The spool: an append-only log of event batches under `[store]
//! path/spool`, written ahead of the store. Every batch the collector cuts
//! is appended and synced (`fdatasync`) before the writer stores it, so a
//! crash loses only the batch the collector is still filling, and a store
//! that is down (or a write that fails) costs nothing until the spool is
//! full: the writer replays the log, in order, when the store answers
//! again. Each batch carries its [`BatchId`], and the store records the ids
//! it holds, so a replay never counts a batch twice.
//!
//! Layout: numbered segment files (`00000000000000000042.spool`, mode 0600
//! in a 0700 folder); a segment grows to a fraction of the limit, then the
//! collector starts the next; the writer deletes a segment once it has
//! stored every batch in it. A new process always appends to a new
//! segment, so a record torn by a crash is only ever at a segment's end.
//!
//! A record is `magic (4) | payload length (4, LE) | SHA-256 of the payload,
//! first 8 bytes | payload`; the payload is the batch id and its runs
//! ([`encode`]). Reading checks all three: a torn or corrupt record is
//! reported and skipped, and the rest of the log is still replayed. One
//! record at a time is read, at most [`MAX_RECORD`] bytes.
//!
//! A batch the store refuses for good (a constraint, a value it cannot
//! hold) is copied, as one record in the same format, to
//! `quarantine/RUN-SEQ.spool` and no longer holds back the batches behind
//! it. The folder's `lock` file is held (`flock`) while the spool is open,
//! so a second process given the same `[store] path` stops with an error
//! instead of interleaving its segments with ours.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use parapet_core::event::{EventAction, OwnedRun, PrivateEvent};
use parapet_core::name::EventName;
use parapet_core::pseudonym::ClientPseudonym;
use parapet_store::{BatchId, SealedClient, StoreError, unix_millis};
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = *b"PSP1";
const HEADER: u64 = 16;
/// The largest record read back: a full batch of the largest runs (255-byte
/// names, long tenant and feed names) is well under it.
pub(crate) const MAX_RECORD: u64 = 64 << 20;
/// Largest segment, and smallest: a segment is deleted only once the
/// collector has moved to the next, so its size is space the limit holds
/// back even when every batch in it is stored.
const SEGMENT_MAX: u64 = 16 << 20;
const SEGMENT_MIN: u64 = 64 << 10;

/// A place in the log: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub seg: u64,
    pub off: u64,
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppendError {
    #[error("the spool is full ({max} bytes, [store] spool_max_mb)")]
    Full { max: u64 },
    #[error("cannot write the spool {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What [`Spool::read`] found at a position.
#[derive(Debug)]
pub(crate) enum Found {
    /// A batch, and where the next record starts.
    Batch {
        id: BatchId,
        runs: Vec<OwnedRun>,
        /// Its clients' sealed addresses (none without a key).
        sealed: Vec<SealedClient>,
        next: Pos,
    },
    /// A record that failed its checks (`why`, with its file and offset),
    /// skipped up to `next`.
    Bad { why: String, next: Pos },
    /// Nothing more has been written yet.
    End,
}

/// The segments on disk and what the collector has committed to them.
#[derive(Debug)]
struct Index {
    /// Every segment, with its length up to the last synced record.
    segs: BTreeMap<u64, u64>,
    /// The segment the collector appends to (`None` before its first
    /// append, and after a failed one).
    current: Option<u64>,
    next_seg: u64,
    bytes: u64,
    /// Bytes in the quarantine folder (held to the same limit).
    quarantine_bytes: u64,
}

/// Why the spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("cannot open the spool {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the spool {path} is in use by another process (it holds {path}/{LOCK_FILE}): each running node needs a [store] path of its own"
    )]
    Locked { path: String },
}

/// The file a running node holds locked in its spool folder.
const LOCK_FILE: &str = "lock";
/// The folder under the spool that batches the store refused go to.
const QUARANTINE: &str = "quarantine";

/// The spool of one node, shared by the collector (appends) and the writer
/// (reads and releases).
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max: u64,
    segment_bytes: u64,
    index: Mutex<Index>,
    /// Batches set aside in the quarantine by this process.
    quarantined: AtomicU64,
    /// How long each append takes, its `fdatasync` included: the price of
    /// the spool on the collector (bench/store/RESULTS.md).
    pub(crate) append_latency: crate::stats::Histogram,
    /// Locked while this process uses the folder; unlocked when closed,
    /// however the process ends.
    _lock: File,
}

impl Spool {
    /// Opens (creating it 0700) the spool folder `dir`, holding at most
    /// `max_bytes`, with the segments an earlier run left.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<Arc<Self>, OpenError> {
        let io = |source| OpenError::Io {
            path: dir.display().to_string(),
            source,
        };
        parapet_store::private_dir(dir).map_err(|e| match e {
            StoreError::Io { source, .. } => io(source),
            other => io(std::io::Error::other(other.to_string())),
        })?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode_0600()
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::Locked {
                    path: dir.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let quarantine_bytes = match std::fs::read_dir(dir.join(QUARANTINE)) {
            Ok(entries) => entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum(),
            Err(_) => 0,
        };
        let mut segs = BTreeMap::new();
        let mut bytes = 0;
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let Some(seg) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".spool"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map_err(io)?.len();
            segs.insert(seg, len);
            bytes += len;
        }
        let next_seg = segs.keys().next_back().map_or(1, |s| s + 1);
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            max: max_bytes,
            segment_bytes: (max_bytes / 8).clamp(SEGMENT_MIN, SEGMENT_MAX),
            index: Mutex::new(Index {
                segs,
                current: None,
                next_seg,
                bytes,
                quarantine_bytes,
            }),
            quarantined: AtomicU64::new(0),
            append_latency: crate::stats::Histogram::default(),
            _lock: lock,
        }))
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, seg: u64) -> PathBuf {
        self.dir.join(format!("{seg:020}.spool"))
    }

    /// Bytes on disk.
    pub(crate) fn bytes(&self) -> u64 {
        self.index().bytes
    }

    /// Where replay starts: the oldest segment, or where the first append
    /// of this run will go.
    pub(crate) fn start(&self) -> Pos {
        let ix = self.index();
        let seg = ix.segs.keys().next().copied().unwrap_or(ix.next_seg);
        Pos { seg, off: 0 }
    }

    /// Where the next append will go (the end of what is written).
    pub(crate) fn end(&self) -> Pos {
        let ix = self.index();
        match ix.current {
            Some(seg) => Pos {
                seg,
                off: ix.segs.get(&seg).copied().unwrap_or(0),
            },
            None => Pos {
                seg: ix.next_seg,
                off: 0,
            },
        }
    }

    /// [`Spool::append_sealed`] of a batch without sealed addresses.
    #[cfg(test)]
    pub(crate) fn append(&self, id: BatchId, runs: &[OwnedRun]) -> Result<(Pos, Pos), AppendError> {
        self.append_sealed(id, runs, &[])
    }

    /// Appends one batch (with its clients' sealed addresses) and syncs it
    /// to disk; returns where its record starts and ends. Called by the
    /// collector only.
    pub(crate) fn append_sealed(
        &self,
        id: BatchId,
        runs: &[OwnedRun],
        sealed: &[SealedClient],
    ) -> Result<(Pos, Pos), AppendError> {
        let record = record(id, runs, sealed);
        let len = record.len() as u64;
        let mut ix = self.index();
        if ix.bytes + len > self.max {
            return Err(AppendError::Full { max: self.max });
        }
        let seg = match ix.current {
            Some(s) if ix.segs.get(&s).copied().unwrap_or(0) < self.segment_bytes => s,
            _ => {
                let s = ix.next_seg;
                ix.next_seg += 1;
                ix.segs.insert(s, 0);
                ix.current = Some(s);
                s
            }
        };
        let off = ix.segs.get(&seg).copied().unwrap_or(0);
        let path = self.path(seg);
        let started = std::time::Instant::now();
        let written = (|| {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode_0600()
                .open(&path)?;
            if off == 0 {
                // the new file's name must survive a crash too
                File::open(&self.dir)?.sync_all()?;
            }
            f.write_all(&record)?;
            f.sync_data()
        })();
        self.append_latency.observe(started.elapsed());
        match written {
            Ok(()) => {
                ix.segs.insert(seg, off + len);
                ix.bytes += len;
                Ok((
                    Pos { seg, off },
                    Pos {
                        seg,
                        off: off + len,
                    },
                ))
            }
            Err(source) => {
                // a partial record must not be followed by a whole one:
                // cut it off, and append to a new segment from now on
                if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_len(off);
                }
                ix.current = None;
                Err(AppendError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }

    /// Copies a batch the store refused to `quarantine/RUN-SEQ.spool` (one
    /// record, synced), within the spool's limit; returns the file.
    pub(crate) fn quarantine(
        &self,
        id: BatchId,
        runs: &[OwnedRun],
    ) -> Result<PathBuf, AppendError> {
        let record = record(id, runs, &[]);
        let mut ix = self.index();
        if ix.quarantine_bytes + record.len() as u64 > self.max {
            return Err(AppendError::Full { max: self.max });
        }
        let dir = self.dir.join(QUARANTINE);
        let path = dir.join(format!("{}-{}.spool", id.run, id.seq));
        let written = (|| {
            parapet_store::private_dir(&dir).map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode_0600()
                .open(&path)?;
            f.write_all(&record)?;
            f.sync_data()?;
            File::open(&dir)?.sync_all()
        })();
        written.map_err(|source| AppendError::Io {
            path: path.display().to_string(),
            source,
        })?;
        ix.quarantine_bytes += record.len() as u64;
        self.quarantined.fetch_add(1, Ordering::Relaxed);
        Ok(path)
    }

    /// Batches this process set aside in the quarantine.
    pub(crate) fn quarantined(&self) -> u64 {
        self.quarantined.load(Ordering::Relaxed)
    }

    /// Reads the record at `at` (bounded: one record, at most
    /// [`MAX_RECORD`] bytes). Past the end of a segment the collector has
    /// left, reading moves on to the next one.
    pub(crate) fn read(&self, mut at: Pos) -> Found {
        loop {
            let (len, finished, next_seg) = {
                let ix = self.index();
                let Some(&len) = ix.segs.get(&at.seg) else {
                    // a segment released, or one not written yet
                    match ix.segs.range(at.seg..).next() {
                        Some((&s, _)) => {
                            at = Pos { seg: s, off: 0 };
                            continue;
                        }
                        None => return Found::End,
                    }
                };
                let next = ix.segs.range(at.seg + 1..).next().map(|(&s, _)| s);
                (len, ix.current != Some(at.seg), next)
            };
            if at.off >= len {
                match (finished, next_seg) {
                    (true, Some(s)) => {
                        at = Pos { seg: s, off: 0 };
                        continue;
                    }
                    _ => return Found::End,
                }
            }
            let skip_segment = Pos {
                seg: next_seg.unwrap_or(at.seg),
                off: if next_seg.is_some() { 0 } else { len },
            };
            return self.read_record(at, len, skip_segment);
        }
    }

    fn read_record(&self, at: Pos, seg_len: u64, skip_segment: Pos) -> Found {
        let path = self.path(at.seg);
        let bad = |why: String, next| Found::Bad {
            why: format!("{} at byte {}: {why}", path.display(), at.off),
            next,
        };
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) => return bad(format!("cannot open: {e}"), skip_segment),
        };
        let mut header = [0u8; HEADER as usize];
        if let Err(e) = f
            .seek(SeekFrom::Start(at.off))
            .and_then(|_| f.read_exact(&mut header))
        {
            return bad(format!("torn record header ({e})"), skip_segment);
        }
        let len = u64::from(u32::from_le_bytes(
            header[4..8].try_into().unwrap_or([0; 4]),
        ));
        // a header that cannot be trusted leaves no way to find the next
        // record in this segment: the rest of it is skipped
        if header[..4] != MAGIC {
            return bad("not a record (bad magic)".into(), skip_segment);
        }
        if len > MAX_RECORD || at.off + HEADER + len > seg_len {
            return bad(
                format!("torn record ({len} bytes announced, the file ends first)"),
                skip_segment,
            );
        }
        let next = Pos {
            seg: at.seg,
            off: at.off + HEADER + len,
        };
        let mut payload = vec![0u8; len as usize];
        if let Err(e) = f.read_exact(&mut payload) {
            return bad(format!("torn record ({e})"), skip_segment);
        }
        if Sha256::digest(&payload)[..8] != header[8..16] {
            return bad("checksum mismatch".into(), next);
        }
        match decode(&payload) {
            Ok((id, runs, sealed)) => Found::Batch {
                id,
                runs,
                sealed,
                next,
            },
            Err(why) => bad(why.into(), next),
        }
    }

    /// Deletes every segment wholly before `upto` that the collector has
    /// left (each batch in it is stored, or was reported unreadable).
    pub(crate) fn release(&self, upto: Pos) {
        let mut ix = self.index();
        let done: Vec<(u64, u64)> = ix
            .segs
            .range(..upto.seg)
            .filter(|(s, _)| ix.current != Some(**s))
            .map(|(&s, &l)| (s, l))
            .collect();
        for (seg, len) in done {
            match std::fs::remove_file(self.path(seg)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!("cannot delete the stored spool segment {seg}: {e}");
                    continue;
                }
            }
            ix.segs.remove(&seg);
            ix.bytes -= len.min(ix.bytes);
        }
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for OpenOptions {
    /// Spool files hold client pseudonyms: readable by their owner only.
    fn mode_0600(&mut self) -> &mut Self {
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600);
        self
    }
}

/// A batch's whole record: header, then [`encode`]'s payload.
fn record(id: BatchId, runs: &[OwnedRun], sealed: &[SealedClient]) -> Vec<u8> {
    let mut payload = encode(id, runs);
    encode_sealed(&mut payload, sealed);
    let mut record = Vec::with_capacity(payload.len() + HEADER as usize);
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&Sha256::digest(&payload)[..8]);
    record.extend_from_slice(&payload);
    record
}

/// The payload of a batch's record: its id, the number of runs, then each
/// run's fields, integers little-endian, strings with their length first.
pub(crate) fn encode(id: BatchId, runs: &[OwnedRun]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + runs.len() * 64);
    out.extend_from_slice(&id.run.to_le_bytes());
    out.extend_from_slice(&id.seq.to_le_bytes());
    out.extend_from_slice(&(runs.len() as u32).to_le_bytes());
    for r in runs {
        let e = &r.event;
        out.extend_from_slice(&unix_millis(r.first).to_le_bytes());
        out.extend_from_slice(&unix_millis(r.last).to_le_bytes());
        out.extend_from_slice(&r.queries.to_le_bytes());
        put_str(&mut out, &e.tenant);
        out.extend_from_slice(&e.client.0);
        let key = e.qname.as_key();
        out.push(key.len().min(255) as u8);
        out.extend_from_slice(&key[..key.len().min(255)]);
        out.extend_from_slice(&e.qtype.to_le_bytes());
        out.push(e.rcode);
        out.push(e.action.index() as u8);
        match &e.feed {
            Some(f) => {
                out.push(1);
                put_str(&mut out, f);
            }
            None => out.push(0),
        }
    }
    out
}

/// Marks the sealed addresses after a batch's runs.
const SEALED_MARK: u8 = b'S';

/// Appends the sealed section to a payload [`encode`] wrote: the mark, the
/// number of clients, then each one's tenant, pseudonym, first and last
/// time and blob. Nothing for none, so a batch without sealed addresses
/// is written as before.
pub(crate) fn encode_sealed(out: &mut Vec<u8>, sealed: &[SealedClient]) {
    if sealed.is_empty() {
        return;
    }
    out.push(SEALED_MARK);
    out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    for c in sealed {
        put_str(out, &c.tenant);
        out.extend_from_slice(&c.client.0);
        out.extend_from_slice(&c.first.to_le_bytes());
        out.extend_from_slice(&c.last.to_le_bytes());
        out.extend_from_slice(&(c.sealed.len() as u16).to_le_bytes());
        out.extend_from_slice(&c.sealed);
    }
}

/// Reads the sealed section [`encode_sealed`] wrote.
fn decode_sealed(r: &mut Reader<'_>) -> Result<Vec<SealedClient>, &'static str> {
    let n = u32::from_le_bytes(r.array()?) as usize;
    // each takes at least 28 bytes
    if n > r.0.len() / 28 {
        return Err("more sealed addresses announced than the record holds");
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let tenant = Arc::from(r.str()?);
        let client = ClientPseudonym(r.array()?);
        let first = i64::from_le_bytes(r.array()?);
        let last = i64::from_le_bytes(r.array()?);
        let len = usize::from(u16::from_le_bytes(r.array()?));
        let sealed = r.take(len)?.to_vec();
        out.push(SealedClient {
            tenant,
            client,
            first,
            last,
            sealed,
        });
    }
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s);
}

/// Reads a payload [`encode`] wrote; an error names what was wrong.
pub(crate) fn decode(
    buf: &[u8],
) -> Result<(BatchId, Vec<OwnedRun>, Vec<SealedClient>), &'static str> {
    let mut r = Reader(buf);
    let id = BatchId {
        run: i64::from_le_bytes(r.array()?),
        seq: i64::from_le_bytes(r.array()?),
    };
    let n = u32::from_le_bytes(r.array()?) as usize;
    // each run takes at least 33 bytes: a count beyond that is corrupt
    if n > buf.len() / 33 {
        return Err("more runs announced than the record holds");
    }
    let mut runs = Vec::with_capacity(n);
    let mut tenants: Vec<Arc<str>> = Vec::new();
    for _ in 0..n {
        let first = time(i64::from_le_bytes(r.array()?));
        let last = time(i64::from_le_bytes(r.array()?));
        let queries = u32::from_le_bytes(r.array()?);
        let tenant = r.str()?;
        // a batch holds a few tenants: share each one's text
        let tenant = match tenants.iter().find(|t| ***t == *tenant) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(tenant);
                tenants.push(t.clone());
                t
            }
        };
        let client = ClientPseudonym(r.array()?);
        let key_len = usize::from(r.array::<1>()?[0]);
        let qname = EventName::new(r.take(key_len)?);
        let qtype = u16::from_le_bytes(r.array()?);
        let [rcode, action] = r.array()?;
        let action = *EventAction::ALL
            .get(usize::from(action))
            .ok_or("unknown action")?;
        let feed = match r.array::<1>()?[0] {
            0 => None,
            1 => Some(Arc::from(r.str()?)),
            _ => return Err("bad feed marker"),
        };
        runs.push(OwnedRun {
            event: PrivateEvent {
                time: first,
                tenant,
                client,
                qname,
                qtype,
                rcode,
                action,
                feed,
            },
            first,
            last,
            queries,
        });
    }
    let sealed = match r.0.first() {
        None => Vec::new(),
        Some(&SEALED_MARK) => {
            r.take(1)?;
            let sealed = decode_sealed(&mut r)?;
            if !r.0.is_empty() {
                return Err("bytes after the last sealed address");
            }
            sealed
        }
        Some(_) => return Err("bytes after the last run"),
    };
    Ok((id, runs, sealed))
}

fn time(ms: i64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("record ends inside a run");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        self.take(N)?
            .try_into()
            .map_err(|_| "record ends inside a run")
    }
    fn str(&mut self) -> Result<&'a str, &'static str> {
        let n = usize::from(u16::from_le_bytes(self.array()?));
        std::str::from_utf8(self.take(n)?).map_err(|_| "a name is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use parapet_core::name::text_to_key;

    use super::*;

    fn run(name: &str, queries: u32, feed: Option<&str>) -> OwnedRun {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        OwnedRun {
            event: PrivateEvent {
                time: t,
                tenant: Arc::from("council-a"),
                client: ClientPseudonym([3; 8]),
                qname: EventName::new(&text_to_key(name).unwrap()),
                qtype: 28,
                rcode: 3,
                action: EventAction::Blocked,
                feed: feed.map(Arc::from),
            },
            first: t,
            last: t + Duration::from_millis(250),
            queries,
        }
    }

    fn batch(seq: i64) -> (BatchId, Vec<OwnedRun>) {
        let id = BatchId { run: 42, seq };
        let runs = (0..3)
            .map(|i| {
                run(
                    &format!("n{seq}-{i}.example"),
                    i + 1,
                    (i == 1).then_some("malware"),
                )
            })
            .collect();
        (id, runs)
    }

    /// Every batch readable from `from`, in order, and the reports of the
    /// bad records on the way.
    fn read_all(spool: &Spool, mut at: Pos) -> (Vec<(BatchId, Vec<OwnedRun>)>, Vec<String>) {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        loop {
            match spool.read(at) {
                Found::Batch { id, runs, next, .. } => {
                    good.push((id, runs));
                    at = next;
                }
                Found::Bad { why, next } => {
                    bad.push(why);
                    at = next;
                }
                Found::End => return (good, bad),
            }
        }
    }

    fn same(a: &[OwnedRun], b: &[OwnedRun]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.event == y.event
                    && x.first == y.first
                    && x.last == y.last
                    && x.queries == y.queries
            })
    }

    #[test]
    fn batches_read_back_whole_and_in_order_across_segments_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let spool = Spool::open(&path, 1 << 20).unwrap();
        let start = spool.start();
        let mut written = Vec::new();
        for seq in 1..=5 {
            let (id, runs) = batch(seq);
            spool.append(id, &runs).unwrap();
            written.push((id, runs));
        }
        // a new process appends to a new segment, after the old ones
        drop(spool);
        let spool = Spool::open(&path, 1 << 20).unwrap();
        assert_eq!(spool.start(), start);
        for seq in 6..=8 {
            let (id, runs) = batch(seq);
            spool.append(id, &runs).unwrap();
            written.push((id, runs));
        }
        let (read, bad) = read_all(&spool, spool.start());
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(read.len(), written.len());
        for ((a, ra), (b, rb)) in read.iter().zip(&written) {
            assert_eq!(a, b);
            assert!(same(ra, rb), "{ra:?} != {rb:?}");
        }
        let segments = std::fs::read_dir(&path)
            .unwrap()
            .filter(|f| f.as_ref().unwrap().path().extension() == Some("spool".as_ref()))
            .count();
        assert_eq!(segments, 2);
    }

    #[test]
    fn a_second_process_cannot_open_a_spool_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let spool = Spool::open(&path, 1 << 20).unwrap();
        // flock locks belong to an open file: a second open in this process
        // meets the lock as another process would
        let err = Spool::open(&path, 1 << 20).unwrap_err();
        assert!(matches!(err, OpenError::Locked { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("another process"),
            "{text}"
        );
        // the lock goes with the spool (and with the process, however it ends)
        drop(spool);
        Spool::open(&path, 1 << 20).unwrap();
    }

    #[test]
    fn a_quarantined_batch_is_kept_whole_and_counted_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let spool = Spool::open(&path, 256 << 10).unwrap();
        let (id, runs) = batch(7);
        let file = spool.quarantine(id, &runs).unwrap();
        assert_eq!(file, path.join("quarantine").join("42-7.spool"));
        assert_eq!(spool.quarantined(), 1);
        // the same record format as a segment: it reads back as the batch
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(bytes[..4], MAGIC);
        let (read, rruns, _) = decode(&bytes[HEADER as usize..]).unwrap();
        assert_eq!(read, id);
        assert!(same(&rruns, &runs));
        // quarantined batches are never replayed as segments
        let (good, bad) = read_all(&spool, spool.start());
        assert!(good.is_empty() && bad.is_empty(), "{good:?} {bad:?}");
        // and they are held to the spool's limit too
        let big: Vec<OwnedRun> = (0..800)
            .map(|i| run(&format!("name-{i}.a-rather-long-domain.example"), 1, None))
            .collect();
        let mut n = 0;
        let full = loop {
            match spool.quarantine(
                BatchId {
                    run: 42,
                    seq: 100 + n,
                },
                &big,
            ) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(full, AppendError::Full { .. }), "{full}");
        drop(spool);
        // a restart counts what the folder already holds
        let spool = Spool::open(&path, 256 << 10).unwrap();
        assert!(spool.quarantine(BatchId { run: 43, seq: 1 }, &big).is_err());
    }

    #[test]
    fn a_torn_tail_is_reported_and_the_next_segment_still_replays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let spool = Spool::open(&path, 1 << 20).unwrap();
        for seq in 1..=3 {
            let (id, runs) = batch(seq);
            spool.append(id, &runs).unwrap();
        }
        let seg = spool.start().seg;
        drop(spool);
        // a crash in the middle of the third record's write
        let file = path.join(format!("{seg:020}.spool"));
        let len = std::fs::metadata(&file).unwrap().len();
        let f = OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(len - 20).unwrap();
        drop(f);
        let spool = Spool::open(&path, 1 << 20).unwrap();
        let (id, runs) = batch(4);
        spool.append(id, &runs).unwrap();
        let (read, bad) = read_all(&spool, spool.start());
        let seqs: Vec<i64> = read.iter().map(|(id, _)| id.seq).collect();
        assert_eq!(seqs, [1, 2, 4]);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].contains("torn record") && bad[0].contains(".spool"),
            "{bad:?}"
        );
    }

    #[test]
    fn a_corrupt_record_is_reported_and_skipped_and_the_rest_replays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let spool = Spool::open(&path, 1 << 20).unwrap();
        let mut ends = Vec::new();
        for seq in 1..=3 {
            let (id, runs) = batch(seq);
            ends.push(spool.append(id, &runs).unwrap());
        }
        // one bit of the second record's payload flips
        let file = path.join(format!("{:020}.spool", ends[1].0.seg));
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[(ends[1].0.off + HEADER + 5) as usize] ^= 0x10;
        std::fs::write(&file, &bytes).unwrap();
        let (read, bad) = read_all(&spool, spool.start());
        let seqs: Vec<i64> = read.iter().map(|(id, _)| id.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].contains("checksum mismatch"), "{bad:?}");
        assert!(
            bad[0].contains(&format!("at byte {}", ends[1].0.off)),
            "{bad:?}"
        );
    }

    #[test]
    fn garbage_payloads_are_refused_not_trusted() {
        let (id, runs) = batch(1);
        let good = encode(id, &runs);
        assert!(decode(&good).is_ok());
        // every cut of a valid payload is refused with a reason
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = good.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode(&huge).err(),
            Some("more runs announced than the record holds")
        );
        let mut extra = good;
        extra.push(0);
        assert_eq!(decode(&extra).err(), Some("bytes after the last run"));
    }

    #[test]
    fn sealed_addresses_travel_with_their_batch() {
        let (id, runs) = batch(1);
        let sealed = vec![SealedClient {
            tenant: Arc::from("council-a"),
            client: ClientPseudonym([3; 8]),
            first: 1_700_000_000_123,
            last: 1_700_000_000_373,
            sealed: vec![9; 66],
        }];
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append_sealed(id, &runs, &sealed).unwrap();
        match spool.read(spool.start()) {
            Found::Batch {
                id: got, sealed: s, ..
            } => assert_eq!((got, s), (id, sealed.clone())),
            other => panic!("{other:?}"),
        }
        let mut good = encode(id, &runs);
        encode_sealed(&mut good, &sealed);
        for cut in encode(id, &runs).len() + 1..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        good.push(0);
        assert_eq!(
            decode(&good).err(),
            Some("bytes after the last sealed address")
        );
    }

    #[test]
    fn a_full_spool_refuses_appends_and_released_segments_free_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        // the smallest segment is 64 KiB: a 256 KiB spool holds four
        let spool = Spool::open(&path, 256 << 10).unwrap();
        let (id, _) = batch(1);
        let big: Vec<OwnedRun> = (0..800)
            .map(|i| run(&format!("name-{i}.a-rather-long-domain.example"), 1, None))
            .collect();
        let mut last = None;
        let mut appended = 0;
        loop {
            match spool.append(id, &big) {
                Ok(at) => {
                    appended += 1;
                    last = Some(at.1);
                }
                Err(AppendError::Full { max }) => {
                    assert_eq!(max, 256 << 10);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(appended >= 3, "{appended}");
        assert!(spool.bytes() <= 256 << 10);
        // the writer has stored everything: every segment the collector
        // left goes, and appends fit again
        spool.release(last.unwrap());
        assert!(spool.bytes() < 256 << 10);
        spool.append(id, &big).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_spool_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let spool = Spool::open(&path, 1 << 20).unwrap();
        let (id, runs) = batch(1);
        spool.append(id, &runs).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        for f in std::fs::read_dir(&path).unwrap() {
            assert_eq!(mode(&f.unwrap().path()), 0o600);
        }
    }
}
