//! A transferred zone, held compactly so that an IXFR can be applied to it:
//! one arena of entries, one per owner name, each the owner's records
//! packed end to end, and a hash table of entry offsets. A million-name
//! policy zone costs about 45 bytes a name, with no allocation per record.
//!
//! The zone renders to RPZ zone text (the policy's source, and the copy on
//! disk people can read) and saves to a binary file it loads back from.

use std::hash::BuildHasher;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use parapet_core::name::write_key_as_text;

use super::msg::{SoaTimes, TYPE_SOA};

/// Bytes of one packed record before its rdata: type, TTL, rdata length.
const RR_HEAD: usize = 8;
/// Largest record set kept for one owner name.
pub const MAX_OWNER_BYTES: usize = 64 * 1024;
const MAGIC: &[u8; 12] = b"PARAPET-XFR1";

/// The zone's SOA: its rdata (canonical) and TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

impl Soa {
    pub fn times(&self) -> SoaTimes {
        SoaTimes::of(&self.rdata).unwrap_or(SoaTimes {
            serial: 0,
            refresh: 3600,
            retry: 600,
            expire: 604_800,
            minimum: 0,
        })
    }
}

/// A zone: apex, SOA, and every other record by owner name.
pub struct Zone {
    apex: Vec<u8>,
    pub soa: Soa,
    /// Entries: owner length (1 byte), owner (key form), records length
    /// (4 bytes LE), records: type (2), TTL (4), rdata length (2), rdata.
    arena: Vec<u8>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Bytes of the arena no entry uses any more.
    dead: usize,
    records: usize,
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Zone({} serial {}, {} names, {} records)",
            parapet_core::name::key_to_text(&self.apex),
            self.soa.times().serial,
            self.index.len(),
            self.records
        )
    }
}

/// One record of an entry's packed record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedRr<'a> {
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: &'a [u8],
}

/// The records of a packed record set.
pub fn packed_records(mut rrs: &[u8]) -> impl Iterator<Item = PackedRr<'_>> {
    std::iter::from_fn(move || {
        if rrs.len() < RR_HEAD {
            return None;
        }
        let rtype = u16::from_le_bytes([rrs[0], rrs[1]]);
        let ttl = u32::from_le_bytes([rrs[2], rrs[3], rrs[4], rrs[5]]);
        let len = u16::from_le_bytes([rrs[6], rrs[7]]) as usize;
        let rdata = rrs.get(RR_HEAD..RR_HEAD + len)?;
        rrs = &rrs[RR_HEAD + len..];
        Some(PackedRr { rtype, ttl, rdata })
    })
}

fn pack(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&rtype.to_le_bytes());
    out.extend_from_slice(&ttl.to_le_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_le_bytes());
    out.extend_from_slice(rdata);
}

impl Zone {
    pub fn new(apex: &[u8], soa: Soa) -> Self {
        Self {
            apex: apex.to_vec(),
            soa,
            arena: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            dead: 0,
            records: 0,
        }
    }

    pub fn apex(&self) -> &[u8] {
        &self.apex
    }

    pub fn serial(&self) -> u32 {
        self.soa.times().serial
    }

    /// Records other than the SOA.
    pub fn records(&self) -> usize {
        self.records
    }

    pub fn names(&self) -> usize {
        self.index.len()
    }

    /// Approximate heap bytes: the arena and the hash table.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
    }

    fn entry_at(arena: &[u8], off: u32) -> (&[u8], &[u8]) {
        let o = off as usize;
        let olen = arena[o] as usize;
        let owner = &arena[o + 1..o + 1 + olen];
        let p = o + 1 + olen;
        let rlen = u32::from_le_bytes([arena[p], arena[p + 1], arena[p + 2], arena[p + 3]]);
        (owner, &arena[p + 4..p + 4 + rlen as usize])
    }

    fn find(&self, owner: &[u8]) -> Option<u32> {
        let h = self.hasher.hash_one(owner);
        self.index
            .find(h, |&off| Self::entry_at(&self.arena, off).0 == owner)
            .copied()
    }

    /// The packed records of `owner`, if it has any.
    pub fn rrset(&self, owner: &[u8]) -> Option<&[u8]> {
        self.find(owner)
            .map(|off| Self::entry_at(&self.arena, off).1)
    }

    /// Every owner with its packed records, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.index
            .iter()
            .map(|&off| Self::entry_at(&self.arena, off))
    }

    /// Replaces `owner`'s records by `rrs` (packed); empty removes it.
    fn set(&mut self, owner: &[u8], rrs: &[u8]) -> Result<(), String> {
        let h = self.hasher.hash_one(owner);
        self.set_hashed(h, owner, rrs)
    }

    fn set_hashed(&mut self, h: u64, owner: &[u8], rrs: &[u8]) -> Result<(), String> {
        if rrs.len() > MAX_OWNER_BYTES {
            return Err(format!(
                "`{}` has more than {MAX_OWNER_BYTES} bytes of records",
                parapet_core::name::key_to_text(owner)
            ));
        }
        let arena = &self.arena;
        let found = self
            .index
            .find_entry(h, |&off| Self::entry_at(arena, off).0 == owner);
        if let Ok(e) = found {
            let (o, r) = Self::entry_at(&self.arena, *e.get());
            self.dead += 1 + o.len() + 4 + r.len();
            self.records -= packed_records(r).count();
            e.remove();
        }
        if rrs.is_empty() {
            return Ok(());
        }
        let off = u32::try_from(self.arena.len())
            .map_err(|_| "the zone is larger than 4 GiB".to_string())?;
        self.arena.push(owner.len() as u8);
        self.arena.extend_from_slice(owner);
        self.arena
            .extend_from_slice(&(rrs.len() as u32).to_le_bytes());
        self.arena.extend_from_slice(rrs);
        self.records += packed_records(rrs).count();
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.index
            .insert_unique(h, off, |&o| hasher.hash_one(Self::entry_at(arena, o).0));
        if self.dead > 1 << 20 && self.dead > self.arena.len() / 2 {
            self.compact();
        }
        Ok(())
    }

    /// Adds a record (a duplicate of one held only updates its TTL).
    pub fn add(&mut self, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Result<(), String> {
        let mut rrs = Vec::new();
        if let Some(old) = self.rrset(owner) {
            for r in packed_records(old) {
                if !(r.rtype == rtype && r.rdata == rdata) {
                    pack(&mut rrs, r.rtype, r.ttl, r.rdata);
                }
            }
        }
        pack(&mut rrs, rtype, ttl, rdata);
        self.set(owner, &rrs)
    }

    /// Removes a record; false when the zone did not have it.
    pub fn remove(&mut self, owner: &[u8], rtype: u16, rdata: &[u8]) -> Result<bool, String> {
        let Some(old) = self.rrset(owner) else {
            return Ok(false);
        };
        let mut rrs = Vec::new();
        let mut found = false;
        for r in packed_records(old) {
            if r.rtype == rtype && r.rdata == rdata {
                found = true;
            } else {
                pack(&mut rrs, r.rtype, r.ttl, r.rdata);
            }
        }
        if found {
            self.set(owner, &rrs)?;
        }
        Ok(found)
    }

    /// Adds a record during a full transfer, where an owner's records
    /// usually come together: the last entry grows in place.
    pub fn push(&mut self, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Result<(), String> {
        let h = self.hasher.hash_one(owner);
        let arena = &self.arena;
        let found = self
            .index
            .find(h, |&off| Self::entry_at(arena, off).0 == owner)
            .copied();
        let Some(off) = found else {
            // the usual case: a name not seen yet, one record
            let mut rrs = Vec::with_capacity(RR_HEAD + rdata.len());
            pack(&mut rrs, rtype, ttl, rdata);
            return self.set_hashed(h, owner, &rrs);
        };
        // the owner's entry is the arena's last: its records grow in place
        {
            let (o, r) = Self::entry_at(&self.arena, off);
            let end = off as usize + 1 + o.len() + 4 + r.len();
            let fresh = !packed_records(r).any(|x| x.rtype == rtype && x.rdata == rdata);
            if end == self.arena.len()
                && fresh
                && r.len() + RR_HEAD + rdata.len() <= MAX_OWNER_BYTES
            {
                let p = off as usize + 1 + o.len();
                let new_len = (r.len() + RR_HEAD + rdata.len()) as u32;
                self.arena[p..p + 4].copy_from_slice(&new_len.to_le_bytes());
                pack(&mut self.arena, rtype, ttl, rdata);
                self.records += 1;
                return Ok(());
            }
        }
        self.add(owner, rtype, ttl, rdata)
    }

    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.dead);
        for off in self.index.iter_mut() {
            let (o, r) = Self::entry_at(&self.arena, *off);
            *off = arena.len() as u32;
            arena.push(o.len() as u8);
            arena.extend_from_slice(o);
            arena.extend_from_slice(&(r.len() as u32).to_le_bytes());
            arena.extend_from_slice(r);
        }
        self.arena = arena;
        self.dead = 0;
    }

    pub fn shrink_to_fit(&mut self) {
        if self.dead > 0 {
            self.compact();
        }
        self.arena.shrink_to_fit();
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.index
            .shrink_to_fit(|&o| hasher.hash_one(Self::entry_at(arena, o).0));
    }

    /// The zone as RPZ zone text: a comment with the serial, the SOA, then
    /// one line per record, every name absolute.
    pub fn render(&self, out: &mut Vec<u8>) {
        let _ = writeln!(
            out,
            "; zone {} serial {}, taken by zone transfer",
            Absolute(&self.apex),
            self.serial()
        );
        render_soa(out, self);
        for (owner, rrs) in self.iter() {
            render_rrset(out, owner, rrs);
        }
    }

    /// Writes the zone to `path` atomically: a temporary file, flushed to
    /// disk, then renamed over the old copy.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(self.arena.len() - self.dead + 64);
        buf.extend_from_slice(MAGIC);
        buf.push(self.apex.len() as u8);
        buf.extend_from_slice(&self.apex);
        buf.extend_from_slice(&self.soa.ttl.to_le_bytes());
        buf.extend_from_slice(&(self.soa.rdata.len() as u16).to_le_bytes());
        buf.extend_from_slice(&self.soa.rdata);
        for (owner, rrs) in self.iter() {
            buf.push(owner.len() as u8);
            buf.extend_from_slice(owner);
            buf.extend_from_slice(&(rrs.len() as u32).to_le_bytes());
            buf.extend_from_slice(rrs);
        }
        write_atomic(path, &buf)
    }

    /// Reads a zone saved by [`Zone::save`]; errors say what is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bad = |what: &str| format!("{}: {what}", path.display());
        let rest = data
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("not a saved zone"))?;
        let mut r = Reader(rest);
        let apex = r
            .take_u8_prefixed()
            .ok_or_else(|| bad("cut short"))?
            .to_vec();
        let ttl = r.u32().ok_or_else(|| bad("cut short"))?;
        let soa_len = r.u16().ok_or_else(|| bad("cut short"))? as usize;
        let soa = r.take(soa_len).ok_or_else(|| bad("cut short"))?.to_vec();
        if SoaTimes::of(&soa).is_none() {
            return Err(bad("bad SOA"));
        }
        let mut zone = Zone::new(&apex, Soa { ttl, rdata: soa });
        while !r.0.is_empty() {
            let owner = r.take_u8_prefixed().ok_or_else(|| bad("cut short"))?;
            let len = r.u32().ok_or_else(|| bad("cut short"))? as usize;
            let rrs = r.take(len).ok_or_else(|| bad("cut short"))?;
            let mut n = 0;
            let mut used = 0;
            for rr in packed_records(rrs) {
                n += 1;
                used += RR_HEAD + rr.rdata.len();
            }
            if used != rrs.len() || n == 0 || zone.find(owner).is_some() {
                return Err(bad("a damaged record set"));
            }
            zone.set(owner, rrs).map_err(|e| bad(&e))?;
        }
        zone.shrink_to_fit();
        Ok(zone)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn take_u8_prefixed(&mut self) -> Option<&'a [u8]> {
        let n = *self.take(1)?.first()? as usize;
        self.take(n)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Writes `data` to `path` through a temporary file in the same folder,
/// synced before the rename so a crash leaves the old or the new copy.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A key-form name in presentation form with its final dot.
struct Absolute<'a>(&'a [u8]);

impl std::fmt::Display for Absolute<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        write_key_as_text(self.0, f)?;
        f.write_str(".")
    }
}

/// Appends the zone's SOA line (the feed parser takes the apex from it).
pub fn render_soa(out: &mut Vec<u8>, zone: &Zone) {
    render_rr(out, &zone.apex, zone.soa.ttl, TYPE_SOA, &zone.soa.rdata);
}

/// Appends one line per record of an owner's packed record set.
pub fn render_rrset(out: &mut Vec<u8>, owner: &[u8], rrs: &[u8]) {
    for r in packed_records(rrs) {
        render_rr(out, owner, r.ttl, r.rtype, r.rdata);
    }
}

/// Reads a wire name (with its root byte) at the start of `b`: the key
/// form and the rest.
fn wire_name(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 0;
    loop {
        let len = *b.get(i)? as usize;
        if len == 0 {
            return Some((&b[..i], &b[i + 1..]));
        }
        if len > 63 {
            return None;
        }
        i += 1 + len;
    }
}

fn type_name(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        _ => return None,
    })
}

/// Appends one record as a zone-file line. Types the RPZ reader knows in
/// their usual form, anything else (or anything malformed) in RFC 3597's
/// generic form, which the reader skips with a warning.
fn render_rr(out: &mut Vec<u8>, owner: &[u8], ttl: u32, rtype: u16, rdata: &[u8]) {
    let start = out.len();
    let _ = write!(out, "{} {ttl} IN ", Absolute(owner));
    let head = out.len();
    if let Some(name) = type_name(rtype)
        && {
            let _ = write!(out, "{name} ");
            presentation(out, rtype, rdata).is_some()
        }
    {
        out.push(b'\n');
        return;
    }
    out.truncate(head);
    let _ = write!(out, "TYPE{rtype} \\# {}", rdata.len());
    if !rdata.is_empty() {
        out.push(b' ');
        for b in rdata {
            let _ = write!(out, "{b:02x}");
        }
    }
    out.push(b'\n');
    debug_assert!(out.len() > start);
}

fn presentation(out: &mut Vec<u8>, rtype: u16, rdata: &[u8]) -> Option<()> {
    match rtype {
        1 => {
            let a: [u8; 4] = rdata.try_into().ok()?;
            let _ = write!(out, "{}", Ipv4Addr::from(a));
        }
        28 => {
            let a: [u8; 16] = rdata.try_into().ok()?;
            let _ = write!(out, "{}", Ipv6Addr::from(a));
        }
        2 | 5 | 12 => {
            let (n, rest) = wire_name(rdata)?;
            if !rest.is_empty() {
                return None;
            }
            let _ = write!(out, "{}", Absolute(n));
        }
        15 => {
            let pref = u16::from_be_bytes([*rdata.first()?, *rdata.get(1)?]);
            let (n, rest) = wire_name(&rdata[2..])?;
            if !rest.is_empty() {
                return None;
            }
            let _ = write!(out, "{pref} {}", Absolute(n));
        }
        6 => {
            let (m, rest) = wire_name(rdata)?;
            let (r, rest) = wire_name(rest)?;
            if rest.len() != 20 {
                return None;
            }
            let t = SoaTimes::of(rest)?;
            let _ = write!(
                out,
                "{} {} {} {} {} {} {}",
                Absolute(m),
                Absolute(r),
                t.serial,
                t.refresh,
                t.retry,
                t.expire,
                t.minimum
            );
        }
        16 => {
            let mut rest = rdata;
            if rest.is_empty() {
                return None;
            }
            let mut first = true;
            while let Some((&len, tail)) = rest.split_first() {
                let s = tail.get(..len as usize)?;
                if !first {
                    out.push(b' ');
                }
                first = false;
                out.push(b'"');
                for &c in s {
                    match c {
                        b'"' | b'\\' => {
                            out.push(b'\\');
                            out.push(c);
                        }
                        0x20..=0x7e => out.push(c),
                        _ => {
                            let _ = write!(out, "\\{c:03}");
                        }
                    }
                }
                out.push(b'"');
                rest = &tail[len as usize..];
            }
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_core::name::text_to_key;

    fn key(s: &str) -> Vec<u8> {
        text_to_key(s).unwrap()
    }

    fn soa(serial: u32) -> Soa {
        let mut rdata = b"\x02ns\x00\x00".to_vec();
        for n in [serial, 3600, 600, 86400, 60] {
            rdata.extend_from_slice(&n.to_be_bytes());
        }
        Soa { ttl: 60, rdata }
    }

    #[test]
    fn add_remove_and_render() {
        let apex = key("rpz.test");
        let mut z = Zone::new(&apex, soa(5));
        z.push(&key("bad.example.rpz.test"), 5, 300, b"\x00")
            .unwrap();
        z.push(&key("loc.example.rpz.test"), 1, 300, &[192, 0, 2, 1])
            .unwrap();
        z.push(&key("loc.example.rpz.test"), 1, 300, &[192, 0, 2, 2])
            .unwrap();
        z.push(&key("loc.example.rpz.test"), 16, 300, b"\x05a \"b\\")
            .unwrap();
        z.add(&key("odd.rpz.test"), 99, 300, b"\x01\x02").unwrap();
        assert_eq!((z.names(), z.records()), (3, 5));
        assert!(
            z.remove(&key("loc.example.rpz.test"), 1, &[192, 0, 2, 1])
                .unwrap()
        );
        assert!(
            !z.remove(&key("loc.example.rpz.test"), 1, &[192, 0, 2, 9])
                .unwrap()
        );
        assert_eq!(z.records(), 4);
        let mut text = Vec::new();
        z.render(&mut text);
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("rpz.test. 60 IN SOA ns. . 5 3600 600 86400 60\n"),
            "{text}"
        );
        assert!(
            text.contains("bad.example.rpz.test. 300 IN CNAME .\n"),
            "{text}"
        );
        assert!(
            text.contains("loc.example.rpz.test. 300 IN A 192.0.2.2\n"),
            "{text}"
        );
        assert!(text.contains("IN TXT \"a \\\"b\\\\\"\n"), "{text}");
        assert!(
            text.contains("odd.rpz.test. 300 IN TYPE99 \\# 2 0102\n"),
            "{text}"
        );
        let parsed = parapet_detect::feed::parse_feed(
            text.as_bytes(),
            parapet_detect::feed::FeedFormat::Rpz,
            "t",
        )
        .unwrap();
        assert_eq!(parsed.rules.len(), 2);
    }

    #[test]
    fn saves_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let apex = key("rpz.test");
        let mut z = Zone::new(&apex, soa(7));
        for i in 0..5000 {
            z.push(&key(&format!("n{i}.rpz.test")), 5, 300, b"\x00")
                .unwrap();
        }
        for i in 0..4000 {
            z.remove(&key(&format!("n{i}.rpz.test")), 5, b"\x00")
                .unwrap();
        }
        let path = dir.path().join("z.xfr");
        z.save(&path).unwrap();
        let back = Zone::load(&path).unwrap();
        assert_eq!(back.serial(), 7);
        assert_eq!(back.names(), 1000);
        assert!(back.rrset(&key("n4999.rpz.test")).is_some());
        assert!(back.rrset(&key("n0.rpz.test")).is_none());
        std::fs::write(&path, b"PARAPET-XFR1\x03").unwrap();
        assert!(Zone::load(&path).unwrap_err().contains("cut short"));
    }
}
