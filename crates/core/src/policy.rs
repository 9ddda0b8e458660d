//! The compiled DNS policy: what threat feeds say about names, merged into
//! hash tables the resolver consults once per query.
//!
//! Feeds are parsed (by `parapet-detect`) into [`FeedRules`]; a
//! [`PolicySet`] is compiled from the feeds of one configuration and is
//! immutable afterwards, so the resolver can swap in a new one atomically.
//!
//! Semantics follow DNS Response Policy Zones (RPZ) for QNAME triggers:
//! among the feeds that match a name the first feed in configuration order
//! wins; within it an exact trigger beats a wildcard, and a longer wildcard
//! beats a shorter one. Hosts files and domain lists block a name and all
//! its subdomains. The allowlist wins over every feed. Tenant feeds can only
//! make policy stricter: they are consulted after the shared feeds, and a
//! PASSTHRU in a tenant feed never lifts a shared block.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use crate::name::{canonical_cmp, parent_offsets};
use crate::tenant::TenantId;

/// Index of a feed in the configuration: lower is higher priority.
pub type FeedId = u16;

/// What a policy rule does to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer with the configured block response (NXDOMAIN by default, or a
    /// sinkhole address). RPZ `CNAME .`, and every hosts/list entry.
    Block,
    /// NOERROR with an empty answer. RPZ `CNAME *.`.
    Nodata,
    /// Resolve normally and stop looking at other feeds. RPZ `CNAME rpz-passthru.`.
    Passthru,
    /// Send no answer at all. RPZ `CNAME rpz-drop.`.
    Drop,
    /// Answer from the feed's own records (index into [`Policy::local_data`]
    /// once compiled, into [`FeedRules::local`] before).
    Local(u32),
}

/// Whether a feed's matches are enforced or only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedMode {
    #[default]
    Block,
    /// Matches are resolved normally and reported (`feed.monitor`).
    Monitor,
}

/// One record of RPZ local data, rdata in wire form (names uncompressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRecord {
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Box<[u8]>,
}

/// DNS type codes Parapet's policy needs by name.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const NULL: u16 = 10;
    pub const PTR: u16 = 12;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const ANY: u16 = 255;
}

/// A feed, parsed: trigger names with their actions. Names are stored in
/// one arena so that a million-entry feed costs a few tens of megabytes.
#[derive(Debug, Default, Clone)]
pub struct FeedRules {
    arena: Vec<u8>,
    entries: Vec<FeedEntry>,
    /// Local-data record sets referenced by [`Action::Local`].
    pub local: Vec<Vec<LocalRecord>>,
    /// RPZ response-IP and client-IP triggers.
    pub ip: crate::ippolicy::IpRules,
}

#[derive(Debug, Clone, Copy)]
struct FeedEntry {
    off: u32,
    len: u8,
    kind: Trigger,
    action: Action,
}

/// How a rule's name matches a query name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The name itself only (RPZ `name`).
    Exact,
    /// Strict subdomains only (RPZ `*.name`).
    Wildcard,
    /// The name and all its subdomains (hosts files, domain lists).
    Subtree,
}

impl FeedRules {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule for a key-form name (see [`crate::name`]).
    pub fn push(&mut self, key: &[u8], kind: Trigger, action: Action) {
        debug_assert!(key.len() <= crate::name::MAX_KEY_LEN);
        let off = u32::try_from(self.arena.len()).expect("feed arena exceeds 4 GiB");
        self.arena.extend_from_slice(key);
        self.entries.push(FeedEntry {
            off,
            len: key.len() as u8,
            kind,
            action,
        });
    }

    /// Adds a local-data record set and returns its action.
    pub fn push_local(&mut self, records: Vec<LocalRecord>) -> Action {
        self.local.push(records);
        Action::Local((self.local.len() - 1) as u32)
    }

    /// Number of name rules.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Number of triggers of every kind: name rules and address triggers
    /// (what a feed's status calls its entries).
    pub fn triggers(&self) -> usize {
        self.entries.len() + self.ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The rules, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Trigger, Action)> + '_ {
        self.entries.iter().map(|e| {
            (
                &self.arena[e.off as usize..e.off as usize + e.len as usize],
                e.kind,
                e.action,
            )
        })
    }

    /// Releases spare capacity once parsing is done.
    pub fn shrink_to_fit(&mut self) {
        self.arena.shrink_to_fit();
        self.entries.shrink_to_fit();
        self.local.shrink_to_fit();
    }
}

/// A change to one feed, as an IXFR brings it: triggers that left the feed,
/// then triggers that are new or whose action changed. Applying it to the
/// feed's rules gives the feed after the change.
#[derive(Debug, Default, Clone)]
pub struct FeedDelta {
    /// (name, trigger) pairs no longer in the feed; their actions are not
    /// read.
    pub removed: FeedRules,
    /// Rules added, or replacing the feed's rule at the same (name,
    /// trigger); `added.local` holds their local data.
    pub added: FeedRules,
}

impl FeedDelta {
    pub fn len(&self) -> usize {
        self.removed.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

/// A value a [`NameTable`] keeps next to its name, as `SIZE` bytes.
pub trait Packed: Copy {
    const SIZE: usize;
    fn read(b: &[u8]) -> Self;
    fn write(self, b: &mut [u8]);
}

impl Packed for () {
    const SIZE: usize = 0;
    fn read(_: &[u8]) -> Self {}
    fn write(self, _: &mut [u8]) {}
}

impl Packed for u32 {
    const SIZE: usize = 4;
    fn read(b: &[u8]) -> Self {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    fn write(self, b: &mut [u8]) {
        b[..4].copy_from_slice(&self.to_le_bytes());
    }
}

/// A hash table from key-form names to small values, each entry one record
/// in one arena: the name's length, the value, the name. A lookup that
/// finds its name reads the hash table's control bytes, its bucket (the
/// record's offset) and the record: three places in memory, where a
/// separate array of values would make four. The resolver probes this
/// table once or more per query, each probe a likely cache miss behind the
/// kernel's work for the packets between two queries of a name; and a
/// million-name feed costs about 17 MB less than with such an array.
#[derive(Debug, Clone)]
pub struct NameTable<V> {
    arena: Vec<u8>,
    /// Offsets of the records in `arena`.
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Records of removed names, by name length: a new name of that length
    /// takes one, so names coming and going (feed deltas) do not grow the
    /// arena.
    free: Vec<Vec<u32>>,
    _value: std::marker::PhantomData<V>,
}

impl<V> Default for NameTable<V> {
    fn default() -> Self {
        Self {
            arena: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            free: Vec::new(),
            _value: std::marker::PhantomData,
        }
    }
}

impl<V: Packed> NameTable<V> {
    pub fn with_capacity(names: usize, bytes: usize) -> Self {
        Self {
            arena: Vec::with_capacity(bytes + names * (1 + V::SIZE)),
            table: HashTable::with_capacity(names),
            hasher: DefaultHashBuilder::default(),
            free: Vec::new(),
            _value: std::marker::PhantomData,
        }
    }

    /// The name of the record at `off`.
    #[inline]
    fn name_at(arena: &[u8], off: u32) -> &[u8] {
        let at = off as usize + 1 + V::SIZE;
        &arena[at..at + arena[off as usize] as usize]
    }

    #[inline]
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let arena = &self.arena;
        self.table
            .find(hash, |&off| Self::name_at(arena, off) == key)
            .copied()
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<V> {
        let off = self.find(self.hasher.hash_one(key), key)?;
        Some(V::read(&self.arena[off as usize + 1..]))
    }

    /// Every name with its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], V)> + '_ {
        self.table.iter().map(|&off| {
            (
                Self::name_at(&self.arena, off),
                V::read(&self.arena[off as usize + 1..]),
            )
        })
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(self.hasher.hash_one(key), key).is_some()
    }

    /// Hands the value for `key` (`make()` when absent, then inserted) to
    /// `change`, and keeps what it leaves.
    #[inline]
    pub fn update(&mut self, key: &[u8], make: impl FnOnce() -> V, change: impl FnOnce(&mut V)) {
        let hash = self.hasher.hash_one(key);
        let off = match self.find(hash, key) {
            Some(off) => off,
            None => {
                let len = u8::try_from(key.len()).expect("a key-form name is at most 255 bytes");
                let off = match self.free.get_mut(key.len()).and_then(Vec::pop) {
                    Some(off) => {
                        let at = off as usize + 1 + V::SIZE;
                        self.arena[at..at + key.len()].copy_from_slice(key);
                        off
                    }
                    None => {
                        let off =
                            u32::try_from(self.arena.len()).expect("name arena exceeds 4 GiB");
                        self.arena.push(len);
                        self.arena.resize(self.arena.len() + V::SIZE, 0);
                        self.arena.extend_from_slice(key);
                        off
                    }
                };
                make().write(&mut self.arena[off as usize + 1..]);
                let (arena, hasher) = (&self.arena, &self.hasher);
                self.table
                    .insert_unique(hash, off, |&o| hasher.hash_one(Self::name_at(arena, o)));
                off
            }
        };
        let at = off as usize + 1;
        let mut v = V::read(&self.arena[at..]);
        change(&mut v);
        v.write(&mut self.arena[at..]);
    }

    /// Sets the value for `key`, inserting it when absent.
    pub fn set(&mut self, key: &[u8], value: V) {
        self.update(key, || value, |v| *v = value);
    }

    /// Forgets `key`. Its record stays in the arena, for the next new name
    /// of its length: a delta's few removed names are not worth moving the
    /// arena for.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let hash = self.hasher.hash_one(key);
        let arena = &self.arena;
        match self
            .table
            .find_entry(hash, |&off| Self::name_at(arena, off) == key)
        {
            Ok(entry) => {
                let (off, _) = entry.remove();
                if self.free.len() <= key.len() {
                    self.free.resize_with(key.len() + 1, Vec::new);
                }
                self.free[key.len()].push(off);
                true
            }
            Err(_) => false,
        }
    }

    /// A copy with room for `names` more names of `bytes` bytes in all, so
    /// that patching it does not double its arena or rehash its table.
    fn clone_with_room(&self, names: usize, bytes: usize) -> Self {
        let mut arena = Vec::with_capacity(self.arena.len() + bytes + names * (1 + V::SIZE));
        arena.extend_from_slice(&self.arena);
        let mut table = self.table.clone();
        let hasher = &self.hasher;
        table.reserve(names, |&o| hasher.hash_one(Self::name_at(&arena, o)));
        Self {
            arena,
            table,
            hasher: self.hasher,
            free: self.free.clone(),
            _value: std::marker::PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn shrink_to_fit(&mut self) {
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.table
            .shrink_to_fit(|&o| hasher.hash_one(Self::name_at(arena, o)));
        self.arena.shrink_to_fit();
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.free.iter().map(|f| f.capacity() * 4).sum::<usize>()
    }
}

/// The end of a [`NameLists`] chain.
const END: u32 = u32::MAX;

/// Lists of small values by name, for the rarely used tables (RPZ wildcard
/// shadows, later feeds' rules at one name). Each name's list is a chain of
/// items in one vector, so the whole is two flat arrays: a policy patched by
/// a delta copies them with two `memcpy`s, where a vector per name would
/// cost an allocation per name.
#[derive(Debug, Clone)]
struct NameLists<T> {
    /// The first item of each name's chain.
    index: NameTable<u32>,
    /// Values with the index of the next item of their chain.
    items: Vec<(T, u32)>,
}

impl<T> Default for NameLists<T> {
    fn default() -> Self {
        Self {
            index: NameTable::default(),
            items: Vec::new(),
        }
    }
}

/// The values of one name in a [`NameLists`].
struct Chain<'a, T> {
    items: &'a [(T, u32)],
    at: u32,
}

impl<T: Copy> Iterator for Chain<'_, T> {
    type Item = T;
    #[inline]
    fn next(&mut self) -> Option<T> {
        let &(v, next) = self.items.get(self.at as usize)?;
        self.at = next;
        Some(v)
    }
}

impl<T: Copy> NameLists<T> {
    #[inline]
    fn get(&self, key: &[u8]) -> Chain<'_, T> {
        let at = if self.index.is_empty() {
            END
        } else {
            self.index.get(key).unwrap_or(END)
        };
        Chain {
            items: &self.items,
            at,
        }
    }

    /// Adds `value` to `key`'s list before the first item `place` says it
    /// sorts before (`Less`), unless `place` says one is its equal; returns
    /// whether it was added.
    fn insert(
        &mut self,
        key: &[u8],
        value: T,
        mut place: impl FnMut(&T) -> std::cmp::Ordering,
    ) -> bool {
        let new = u32::try_from(self.items.len()).expect("more than 4G list items");
        let items = &mut self.items;
        let mut added = false;
        self.index.update(
            key,
            || END,
            |head| {
                let (mut prev, mut at) = (END, *head);
                while let Some(&(v, next)) = items.get(at as usize) {
                    match place(&v) {
                        std::cmp::Ordering::Equal => return,
                        std::cmp::Ordering::Less => break,
                        std::cmp::Ordering::Greater => (prev, at) = (at, next),
                    }
                }
                items.push((value, at));
                match items.get_mut(prev as usize) {
                    Some(p) => p.1 = new,
                    None => *head = new,
                }
                added = true;
            },
        );
        added
    }

    /// Adds `value` at the head of `key`'s list, where order does not matter.
    fn push(&mut self, key: &[u8], value: T) {
        self.insert(key, value, |_| std::cmp::Ordering::Less);
    }

    /// Unlinks the first item of `key`'s list that `hit` picks and returns
    /// it; a name whose list empties leaves the index. The item stays in
    /// `items` until the next compile.
    fn remove(&mut self, key: &[u8], mut hit: impl FnMut(&T) -> bool) -> Option<T> {
        let head = self.index.get(key)?;
        let (mut prev, mut at) = (END, head);
        while let Some(&(v, next)) = self.items.get(at as usize) {
            if hit(&v) {
                match self.items.get_mut(prev as usize) {
                    Some(p) => p.1 = next,
                    None if next == END => {
                        self.index.remove(key);
                    }
                    None => self.index.set(key, next),
                }
                return Some(v);
            }
            (prev, at) = (at, next);
        }
        None
    }

    /// Changes the first item of `key`'s list that `hit` picks; returns
    /// whether there was one.
    fn change(
        &mut self,
        key: &[u8],
        mut hit: impl FnMut(&T) -> bool,
        change: impl FnOnce(&mut T),
    ) -> bool {
        let mut at = self.index.get(key).unwrap_or(END);
        while let Some((v, next)) = self.items.get_mut(at as usize) {
            if hit(v) {
                change(v);
                return true;
            }
            at = *next;
        }
        false
    }

    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn clone_with_room(&self, names: usize, bytes: usize) -> Self {
        let mut items = Vec::with_capacity(self.items.len() + names);
        items.extend_from_slice(&self.items);
        Self {
            index: self.index.clone_with_room(names, bytes),
            items,
        }
    }

    fn shrink_to_fit(&mut self) {
        self.index.shrink_to_fit();
        self.items.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.index.heap_bytes() + self.items.capacity() * std::mem::size_of::<(T, u32)>()
    }
}

/// A set of names each covering its subdomains (the allowlist).
#[derive(Debug, Default, Clone)]
pub struct NameSet {
    table: NameTable<()>,
}

impl NameSet {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut table = NameTable::default();
        for k in keys {
            table.update(k, || (), |_| {});
        }
        Self { table }
    }

    /// True when `key` or one of its parents is in the set.
    #[inline]
    pub fn covers(&self, key: &[u8]) -> bool {
        if self.table.is_empty() {
            return false;
        }
        self.table.contains(key) || parent_offsets(key).any(|o| self.table.contains(&key[o..]))
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// A matched rule: which feed, which action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub feed: FeedId,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    exact: Option<Rule>,
    wild: Option<Rule>,
}

/// A rule in 7 bytes: the action's tag (0 for none), the feed, the index
/// of local data.
fn write_rule(r: Option<Rule>, b: &mut [u8]) {
    let (tag, feed, local) = match r {
        None => (0, 0, 0),
        Some(Rule { feed, action }) => match action {
            Action::Block => (1, feed, 0),
            Action::Nodata => (2, feed, 0),
            Action::Passthru => (3, feed, 0),
            Action::Drop => (4, feed, 0),
            Action::Local(i) => (5, feed, i),
        },
    };
    b[0] = tag;
    b[1..3].copy_from_slice(&feed.to_le_bytes());
    local.write(&mut b[3..7]);
}

fn read_rule(b: &[u8]) -> Option<Rule> {
    let feed = u16::from_le_bytes([b[1], b[2]]);
    let action = match b[0] {
        1 => Action::Block,
        2 => Action::Nodata,
        3 => Action::Passthru,
        4 => Action::Drop,
        5 => Action::Local(u32::read(&b[3..7])),
        _ => return None,
    };
    Some(Rule { feed, action })
}

impl Packed for Slot {
    const SIZE: usize = 14;
    #[inline]
    fn read(b: &[u8]) -> Self {
        Slot {
            exact: read_rule(&b[..7]),
            wild: read_rule(&b[7..14]),
        }
    }
    fn write(self, b: &mut [u8]) {
        write_rule(self.exact, &mut b[..7]);
        write_rule(self.wild, &mut b[7..14]);
    }
}

/// A trigger that hides one feed's wildcard from some names (see
/// [`Policy::shadowed`]), filed under a name `C`: the trigger's owner name
/// is `prefix + C`. Most owners are `C` itself, with an empty prefix.
#[derive(Debug, Clone, Copy)]
struct Shadow {
    feed: FeedId,
    len: u8,
    off: u32,
}

/// The RPZ wildcard shadows of a policy: for a name `C` whose parent `W`
/// has a `*.W` trigger, the triggers of that feed at or below `C`.
#[derive(Debug, Clone, Default)]
struct Shadows {
    lists: NameLists<Shadow>,
    /// The owners' prefixes, end to end.
    prefixes: Vec<u8>,
}

impl Shadows {
    #[inline]
    fn prefix(&self, s: Shadow) -> &[u8] {
        &self.prefixes[s.off as usize..s.off as usize + s.len as usize]
    }

    fn add(&mut self, c: &[u8], feed: FeedId, prefix: &[u8]) {
        let off = u32::try_from(self.prefixes.len()).expect("shadow arena exceeds 4 GiB");
        self.prefixes.extend_from_slice(prefix);
        let len = u8::try_from(prefix.len()).expect("an owner is at most 256 bytes");
        self.lists.push(c, Shadow { feed, len, off });
    }

    fn remove(&mut self, c: &[u8], feed: FeedId, prefix: &[u8]) {
        let prefixes = &self.prefixes;
        self.lists.remove(c, |s| {
            s.feed == feed && &prefixes[s.off as usize..s.off as usize + s.len as usize] == prefix
        });
    }

    fn clone_with_room(&self, names: usize, bytes: usize) -> Self {
        let mut prefixes = Vec::with_capacity(self.prefixes.len() + bytes);
        prefixes.extend_from_slice(&self.prefixes);
        Self {
            lists: self.lists.clone_with_room(names, bytes),
            prefixes,
        }
    }

    fn shrink_to_fit(&mut self) {
        self.lists.shrink_to_fit();
        self.prefixes.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.lists.heap_bytes() + self.prefixes.capacity()
    }
}

/// The owner name of a trigger in an RPZ zone: `*.W` for a wildcard on `W`.
fn owner_of(key: &[u8], kind: Trigger, out: &mut Vec<u8>) {
    out.clear();
    if kind == Trigger::Wildcard {
        out.extend_from_slice(b"\x01*");
    }
    out.extend_from_slice(key);
}

/// Whether `owner[at..]` is a wildcard owner `*.W` filed under itself: a
/// shadow [`Policy::shadowed`] implies, so it is never filed. Were it
/// filed, a feed made of `name` and `*.name` pairs would keep one shadow
/// per pair, and a delta copy them all.
fn wildcard_self(owner: &[u8], at: usize) -> bool {
    at == 0 && owner.starts_with(b"\x01*")
}

/// Counts `key` (one of `feed`'s trigger names) in, or out of, the counts
/// of its parents in `below` ([`Policy::below`]).
fn count_below(below: &mut NameTable<u32>, feed: FeedId, key: &[u8], add: bool) {
    let mut at = [0u8; 2 + crate::name::MAX_KEY_LEN];
    at[..2].copy_from_slice(&feed.to_le_bytes());
    for off in parent_offsets(key) {
        let parent = &key[off..];
        at[2..2 + parent.len()].copy_from_slice(parent);
        let k = &at[..2 + parent.len()];
        if add {
            below.update(k, || 0, |n| *n += 1);
        } else {
            let mut left = 0;
            below.update(
                k,
                || 1,
                |n| {
                    *n -= 1;
                    left = *n;
                },
            );
            if left == 0 {
                below.remove(k);
            }
        }
    }
}

/// How many of `feed`'s trigger names lie strictly below `key`, by `below`.
fn count_of_below(below: &NameTable<u32>, feed: FeedId, key: &[u8]) -> u32 {
    let mut k = Vec::with_capacity(2 + key.len());
    k.extend_from_slice(&feed.to_le_bytes());
    k.extend_from_slice(key);
    below.get(&k).unwrap_or(0)
}

/// The merged rules of several feeds.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    table: NameTable<Slot>,
    /// RPZ wildcard shadows (see [`Policy::shadowed`]). Empty unless an RPZ
    /// feed has wildcards.
    shadows: Shadows,
    /// Wildcards of later feeds at a name whose slot holds an earlier
    /// feed's, in feed order, consulted only when that one is shadowed.
    more_wild: NameLists<Rule>,
    /// Exact rules of later feeds at a name whose slot holds an earlier
    /// feed's, in feed order. Lookups never read them: a delta that removes
    /// the winner promotes the next.
    more_exact: NameLists<Rule>,
    /// For the feeds that can take a delta: how many of a feed's trigger
    /// names lie strictly below a name, keyed by the feed's id (two bytes)
    /// then the name. A delta that gives a feed a new wildcard `*.W` needs
    /// to know that none of its older triggers lie below `W`. Counted after
    /// a compile, by [`PolicySet::prepare_deltas`] or the first draft
    /// ([`Policy::count_all_below`]), so that reloads do not pay for it.
    below: OnceLock<NameTable<u32>>,
    /// The feeds compiled in, each with whether it can take a delta: an
    /// RPZ-like feed (no subtree triggers, each name and trigger once).
    feeds: Vec<(FeedId, bool)>,
}

impl Policy {
    /// Merges feeds, highest priority (lowest [`FeedId`]) first: for each
    /// name and trigger kind the first rule wins. Local data moves into
    /// `local`, which [`Action::Local`] indexes afterwards.
    pub fn compile<'a>(
        feeds: impl IntoIterator<Item = (FeedId, &'a FeedRules)>,
        local: &mut Vec<Arc<[LocalRecord]>>,
    ) -> Self {
        let mut feeds: Vec<_> = feeds.into_iter().collect();
        feeds.sort_by_key(|(id, _)| *id);
        let names: usize = feeds.iter().map(|(_, f)| f.len()).sum();
        let bytes: usize = feeds.iter().map(|(_, f)| f.arena.len()).sum();
        let mut policy = Policy {
            table: NameTable::with_capacity(names, bytes),
            ..Policy::default()
        };
        for &(feed, rules) in &feeds {
            let regular = policy.merge(feed, rules, local);
            policy.feeds.push((feed, regular));
        }
        for &(feed, rules) in &feeds {
            policy.add_shadows(feed, rules);
        }
        policy.table.shrink_to_fit();
        policy.shadows.shrink_to_fit();
        policy.more_wild.shrink_to_fit();
        policy.more_exact.shrink_to_fit();
        policy
    }

    /// Adds one feed's rules to the table, after every earlier feed's; returns
    /// whether the feed is RPZ-like (no subtree trigger, no name and trigger
    /// twice).
    fn merge(
        &mut self,
        feed: FeedId,
        rules: &FeedRules,
        local: &mut Vec<Arc<[LocalRecord]>>,
    ) -> bool {
        let mut regular = true;
        for (key, kind, action) in rules.iter() {
            let action = match action {
                Action::Local(i) => {
                    local.push(Arc::from(rules.local[i as usize].as_slice()));
                    Action::Local((local.len() - 1) as u32)
                }
                a => a,
            };
            let rule = Rule { feed, action };
            let (mut earlier_exact, mut earlier_wild) = (None, None);
            self.table.update(key, Slot::default, |slot| {
                if matches!(kind, Trigger::Exact | Trigger::Subtree) {
                    match slot.exact {
                        None => slot.exact = Some(rule),
                        Some(e) => earlier_exact = Some(e),
                    }
                }
                if matches!(kind, Trigger::Wildcard | Trigger::Subtree) {
                    match slot.wild {
                        None => slot.wild = Some(rule),
                        Some(w) => earlier_wild = Some(w),
                    }
                }
            });
            regular &= kind != Trigger::Subtree;
            for (earlier, more) in [
                (earlier_exact, &mut self.more_exact),
                (earlier_wild, &mut self.more_wild),
            ] {
                if let Some(e) = earlier {
                    // a second rule of one feed at one name and trigger: the
                    // first stays, as in the feed's own file order
                    regular &= e.feed != feed && more.insert(key, rule, |r| rule.feed.cmp(&r.feed));
                }
            }
        }
        regular
    }

    /// [`Policy::below`], counted now if it was not yet.
    fn below(&self) -> &NameTable<u32> {
        self.below.get_or_init(|| self.count_all_below())
    }

    /// [`Policy::below`] counted from the table, for every feed that can
    /// take a delta: a trigger of such a feed is a rule of it in a slot or
    /// a side list.
    fn count_all_below(&self) -> NameTable<u32> {
        let mut below = NameTable::default();
        for (key, slot) in self.table.iter() {
            let rules = [slot.exact, slot.wild]
                .into_iter()
                .flatten()
                .chain(self.more_exact.get(key))
                .chain(self.more_wild.get(key));
            for r in rules {
                if self.takes_delta(r.feed) {
                    count_below(&mut below, r.feed, key, true);
                }
            }
        }
        below
    }

    /// Records, for one feed, what hides its wildcards from some names.
    ///
    /// Unbound 1.17 answers an RPZ query that matches no trigger exactly by
    /// finding the trigger name just before the query in canonical order,
    /// taking the longest suffix the two share, and applying `*.suffix` only
    /// if that exists. So `*.W` applies to a query `Q` below `W` unless some
    /// trigger of the same feed lies in the subtree of `C` (the child of `W`
    /// on the way to `Q`) and sorts at or before `Q`; e.g. with `*.over` and
    /// `a.b.over`, `deep.a.b.over` is not blocked. Parapet follows Unbound
    /// so that an RPZ feed means the same in both (checked differentially).
    /// Every such trigger is kept, not only the smallest, so that a delta
    /// can remove one.
    fn add_shadows(&mut self, feed: FeedId, rules: &FeedRules) {
        let mut bases = NameSet::default();
        for (key, kind, _) in rules.iter() {
            if kind == Trigger::Wildcard {
                bases.table.update(key, || (), |_| {});
            }
        }
        if bases.is_empty() {
            return;
        }
        let mut owner = Vec::with_capacity(256);
        for (key, kind, _) in rules.iter() {
            if kind == Trigger::Subtree {
                continue;
            }
            owner_of(key, kind, &mut owner);
            let mut at = 0;
            while at < owner.len() {
                let parent = at + 1 + owner[at] as usize;
                if !wildcard_self(&owner, at) && bases.table.contains(&owner[parent..]) {
                    self.shadows.add(&owner[at..], feed, &owner[..at]);
                }
                at = parent;
            }
        }
    }

    /// Whether feed `feed`'s wildcard at `qname[base..]` is hidden from
    /// `qname`, whose label just below the base starts at `child`: whether
    /// one of the feed's triggers at or below `qname[child..]` sorts at or
    /// before `qname`. Owner and query share that suffix, so their prefixes
    /// compare as the whole names do.
    ///
    /// A query whose label below the base is `*` is always shadowed, by the
    /// wildcard's own owner `*.W`: that shadow is implied here rather than
    /// filed for every wildcard (see [`wildcard_self`]).
    #[inline]
    fn shadowed(&self, feed: FeedId, qname: &[u8], child: usize) -> bool {
        if qname[child..].starts_with(b"\x01*") {
            return true;
        }
        if self.shadows.lists.is_empty() {
            return false;
        }
        let (own, under) = qname.split_at(child);
        self.shadows
            .lists
            .get(under)
            .any(|s| s.feed == feed && canonical_cmp(self.shadows.prefix(s), own).is_le())
    }

    /// The winning rule for a query name in key form, if any.
    #[inline]
    pub fn lookup(&self, qname: &[u8]) -> Option<Rule> {
        if self.table.is_empty() {
            return None;
        }
        let mut best = self.table.get(qname).and_then(|s| s.exact);
        if matches!(best, Some(Rule { feed: 0, .. })) {
            return best;
        }
        // feeds whose nearest wildcard was shadowed: no farther one applies
        let mut done: [FeedId; 4] = [FeedId::MAX; 4];
        let mut child = 0;
        for off in parent_offsets(qname) {
            if let Some(w) = self.table.get(&qname[off..]).and_then(|s| s.wild)
                && best.is_none_or(|b| w.feed < b.feed)
            {
                for r in std::iter::once(w).chain(self.more_wild.get(&qname[off..])) {
                    if best.is_some_and(|b| b.feed <= r.feed) || done.contains(&r.feed) {
                        continue;
                    }
                    if !self.shadowed(r.feed, qname, child) {
                        best = Some(r);
                        break;
                    }
                    if let Some(slot) = done.iter_mut().find(|f| **f == FeedId::MAX) {
                        *slot = r.feed;
                    }
                }
            }
            child = off;
        }
        best
    }

    /// Whether `feed` was compiled into this policy.
    fn holds(&self, feed: FeedId) -> bool {
        self.feeds.iter().any(|&(f, _)| f == feed)
    }

    /// Whether `feed` is in this policy and can take a delta.
    fn takes_delta(&self, feed: FeedId) -> bool {
        self.feeds.contains(&(feed, true))
    }

    /// A copy to patch, with room for `names` new names, so that patching
    /// it neither doubles an arena nor rehashes a table.
    fn copy_with_room(&self, names: usize) -> Policy {
        // a typical threat name, and its wildcard owner
        let bytes = 32 * names;
        Policy {
            table: self.table.clone_with_room(names, bytes),
            shadows: self.shadows.clone_with_room(names, bytes),
            more_wild: self.more_wild.clone_with_room(names, bytes),
            more_exact: self.more_exact.clone_with_room(names, bytes),
            below: OnceLock::from(self.below().clone_with_room(names, bytes + 2 * names)),
            feeds: self.feeds.clone(),
        }
    }

    /// Applies `delta` to `feed`'s rules in place; `None` when it cannot
    /// (see [`PolicySet::apply_delta`]), leaving the policy half patched.
    /// `local_base` is where the delta's local data starts in the set's.
    /// Removals go first, so a (name, trigger) both removed and added is a
    /// changed action.
    fn patch(&mut self, feed: FeedId, delta: &FeedDelta, local_base: u32) -> Option<()> {
        if !self.takes_delta(feed) {
            return None;
        }
        let p = self;
        // a copy (`copy_with_room`) has its counts
        let mut below = p.below.take()?;
        let replaced: hashbrown::HashSet<(&[u8], Trigger)> =
            delta.added.iter().map(|(k, t, _)| (k, t)).collect();
        let mut owner = Vec::with_capacity(256);
        for (key, kind, _) in delta.removed.iter() {
            if !replaced.contains(&(key, kind)) && p.take_rule(feed, key, kind) {
                count_below(&mut below, feed, key, false);
                owner_of(key, kind, &mut owner);
                p.unshadow(feed, &owner);
            }
        }
        let mut fresh = Vec::new();
        for (key, kind, action) in delta.added.iter() {
            let action = match action {
                Action::Local(i) => Action::Local(local_base.checked_add(i)?),
                a => a,
            };
            if !p.put_rule(Rule { feed, action }, key, kind) {
                fresh.push((key, kind));
            }
        }
        // a new wildcard's shadows come from the feed's triggers below it:
        // those of the delta are at hand, older ones are not
        let new_base_over_old = |&(key, kind): &(&[u8], Trigger)| {
            kind == Trigger::Wildcard && (key.is_empty() || count_of_below(&below, feed, key) > 0)
        };
        if fresh.iter().any(new_base_over_old) {
            return None;
        }
        for &(key, _) in &fresh {
            count_below(&mut below, feed, key, true);
        }
        p.below = OnceLock::from(below);
        for &(key, kind) in &fresh {
            owner_of(key, kind, &mut owner);
            p.shadow(feed, &owner);
        }
        Some(())
    }

    /// Removes `feed`'s rule at `key` for `kind` (exact or wildcard); returns
    /// whether it had one. The next feed's rule there, if any, takes its place.
    fn take_rule(&mut self, feed: FeedId, key: &[u8], kind: Trigger) -> bool {
        let Some(mut slot) = self.table.get(key) else {
            return false;
        };
        let (cur, more) = match kind {
            Trigger::Wildcard => (&mut slot.wild, &mut self.more_wild),
            _ => (&mut slot.exact, &mut self.more_exact),
        };
        match *cur {
            Some(r) if r.feed == feed => {
                *cur = more.remove(key, |_| true);
                if slot == Slot::default() {
                    self.table.remove(key);
                } else {
                    self.table.set(key, slot);
                }
                true
            }
            Some(_) => more.remove(key, |r| r.feed == feed).is_some(),
            None => false,
        }
    }

    /// Gives `rule.feed` the rule `rule` at `key` for `kind` (exact or
    /// wildcard), in feed order; returns whether that feed had one there.
    fn put_rule(&mut self, rule: Rule, key: &[u8], kind: Trigger) -> bool {
        let mut slot = self.table.get(key).unwrap_or_default();
        let (cur, more) = match kind {
            Trigger::Wildcard => (&mut slot.wild, &mut self.more_wild),
            _ => (&mut slot.exact, &mut self.more_exact),
        };
        let had = match *cur {
            Some(r) if r.feed == rule.feed => {
                *cur = Some(rule);
                true
            }
            Some(r) if r.feed < rule.feed => {
                return more.change(key, |m| m.feed == rule.feed, |m| *m = rule)
                    || !more.insert(key, rule, |m| rule.feed.cmp(&m.feed));
            }
            Some(r) => {
                more.push(key, r);
                *cur = Some(rule);
                false
            }
            None => {
                *cur = Some(rule);
                false
            }
        };
        self.table.set(key, slot);
        had
    }

    /// Files a new trigger owner of `feed` under each name whose parent
    /// holds one of the feed's wildcards (after [`Policy::add_shadows`]).
    fn shadow(&mut self, feed: FeedId, owner: &[u8]) {
        let mut at = 0;
        while at < owner.len() {
            let parent = at + 1 + owner[at] as usize;
            if !wildcard_self(owner, at) && self.has_wild(feed, &owner[parent..]) {
                self.shadows.add(&owner[at..], feed, &owner[..at]);
            }
            at = parent;
        }
    }

    /// Unfiles a removed trigger owner of `feed` wherever it is filed, its
    /// wildcard still there or not: a wildcard removed and later added back
    /// finds its shadows as they are.
    fn unshadow(&mut self, feed: FeedId, owner: &[u8]) {
        if self.shadows.lists.is_empty() {
            return;
        }
        let mut at = 0;
        while at < owner.len() {
            self.shadows.remove(&owner[at..], feed, &owner[..at]);
            at += 1 + owner[at] as usize;
        }
    }

    /// Whether `feed` has a wildcard trigger on `key`.
    fn has_wild(&self, feed: FeedId, key: &[u8]) -> bool {
        match self.table.get(key).and_then(|s| s.wild) {
            None => false,
            Some(w) if w.feed == feed => true,
            Some(_) => self.more_wild.get(key).any(|r| r.feed == feed),
        }
    }

    /// Distinct names with at least one rule.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
            + self.shadows.heap_bytes()
            + self.more_wild.heap_bytes()
            + self.more_exact.heap_bytes()
            + self.below.get().map_or(0, NameTable::heap_bytes)
    }
}

/// What the policy decided for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No feed matched: resolve normally.
    Resolve,
    /// The allowlist covers the name: resolve normally whatever the feeds say.
    Allowlisted,
    /// A feed said PASSTHRU: resolve normally.
    Passthru(FeedId),
    /// Only a monitor-mode feed matched: resolve normally, report it.
    Monitor(FeedId),
    /// A blocking feed's rule applies.
    Enforce(Rule),
}

/// A feed as the policy compiler sees it.
#[derive(Debug, Clone, Copy)]
pub struct FeedSpec<'a> {
    pub id: FeedId,
    pub rules: &'a FeedRules,
    pub mode: FeedMode,
    /// `None` for a shared feed (every tenant); otherwise the tenants that
    /// added this feed.
    pub tenants: Option<&'a [TenantId]>,
}

/// Everything the resolver needs to decide a query: allowlist, shared
/// feeds, tenant feeds, monitor-only feeds. The policies are shared between
/// a set and the sets [`PolicySet::apply_delta`] makes from it, so a delta
/// copies only the policies that hold its feed.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    allow: NameSet,
    shared: Arc<Policy>,
    shared_monitor: Arc<Policy>,
    /// Indexed by [`TenantId`]; empty policies for tenants without feeds.
    tenants: Vec<TenantPolicy>,
    local: Vec<Arc<[LocalRecord]>>,
    /// Response-IP and client-IP triggers (shared with the sets deltas
    /// make: a delta that touches them needs a compile).
    ip: Arc<crate::ippolicy::IpPolicy>,
}

#[derive(Debug, Default, Clone)]
struct TenantPolicy {
    enforce: Arc<Policy>,
    monitor: Arc<Policy>,
}

impl PolicySet {
    /// Compiles the policy of one configuration. `tenant_count` includes the
    /// default tenant.
    pub fn compile(allow: NameSet, feeds: &[FeedSpec<'_>], tenant_count: usize) -> Self {
        let mut local = Vec::new();
        let pick = |mode: FeedMode, tenant: Option<TenantId>| {
            feeds
                .iter()
                .filter(move |f| {
                    f.mode == mode
                        && match (tenant, f.tenants) {
                            (None, None) => true,
                            (Some(t), Some(ts)) => ts.contains(&t),
                            _ => false,
                        }
                })
                .map(|f| (f.id, f.rules))
        };
        let mut compile = |mode, tenant| Arc::new(Policy::compile(pick(mode, tenant), &mut local));
        let shared = compile(FeedMode::Block, None);
        let shared_monitor = compile(FeedMode::Monitor, None);
        let tenants = (0..tenant_count)
            .map(|t| {
                let t = Some(t as TenantId);
                TenantPolicy {
                    enforce: compile(FeedMode::Block, t),
                    monitor: compile(FeedMode::Monitor, t),
                }
            })
            .collect();
        let ip = Arc::new(crate::ippolicy::IpPolicy::compile(feeds, &mut local));
        Self {
            allow,
            shared,
            shared_monitor,
            tenants,
            local,
            ip,
        }
    }

    /// This policy with `delta` applied to `feed`, sharing every compiled
    /// policy that does not hold the feed with `self`, and copying and
    /// patching those that do: no feed is compiled again. Local data the
    /// delta removes stays in the set, unreferenced, until the next compile.
    /// The same as [`PolicySet::draft`] then [`PolicyDraft::apply`]; the
    /// copy is most of the cost, and a caller that drafts while the zone
    /// transfer is under way puts the delta in force sooner after it ends.
    ///
    /// `None` means the caller must compile the set afresh from the feeds
    /// after the change. That happens only when:
    /// - the delta has a subtree trigger (hosts files and domain lists do
    ///   not come by zone transfer) or an [`Action::Local`] past its local
    ///   data;
    /// - the delta adds or removes response-IP or client-IP triggers;
    /// - the feed as compiled is not RPZ-like: it has subtree triggers, or
    ///   one name with one trigger twice;
    /// - the delta gives the feed a wildcard `*.W` it did not have while
    ///   the feed already has triggers below `W` (which would hide the new
    ///   wildcard from some names, and only the whole feed says which), or
    ///   `W` is the root.
    ///
    /// Threat feeds' usual changes, `name` and `*.name` pairs coming and
    /// going, never need a compile.
    pub fn apply_delta(&self, feed: FeedId, delta: &FeedDelta) -> Option<PolicySet> {
        self.draft(feed, delta.added.len()).apply(delta)
    }

    /// Counts, in the policies of feeds that can take a delta, what a delta
    /// needs besides the compiled tables (how many triggers lie below each
    /// name). Call it after a compile, off the query path, where deltas
    /// are expected: the first draft counts them otherwise, which for a
    /// million names takes a tenth of a second or more.
    pub fn prepare_deltas(&self) {
        for p in self.policies() {
            if p.feeds.iter().any(|&(_, regular)| regular) {
                p.below();
            }
        }
    }

    fn policies(&self) -> impl Iterator<Item = &Arc<Policy>> + '_ {
        [&self.shared, &self.shared_monitor]
            .into_iter()
            .chain(self.tenants.iter().flat_map(|t| [&t.enforce, &t.monitor]))
    }

    /// Begins a delta of `feed`: copies the policies that hold it, with
    /// room for `names` new names (more is fine, only slower), and shares
    /// the rest. The draft is of this set: apply it only while this set is
    /// the one in force, or changes made since are lost.
    pub fn draft(&self, feed: FeedId, names: usize) -> PolicyDraft {
        let copy = |p: &Arc<Policy>| {
            if p.takes_delta(feed) {
                Arc::new(p.copy_with_room(names))
            } else {
                Arc::clone(p)
            }
        };
        PolicyDraft {
            feed,
            set: PolicySet {
                allow: self.allow.clone(),
                shared: copy(&self.shared),
                shared_monitor: copy(&self.shared_monitor),
                tenants: self
                    .tenants
                    .iter()
                    .map(|t| TenantPolicy {
                        enforce: copy(&t.enforce),
                        monitor: copy(&t.monitor),
                    })
                    .collect(),
                local: self.local.clone(),
                ip: Arc::clone(&self.ip),
            },
        }
    }

    /// The response-IP and client-IP triggers.
    #[inline]
    pub fn ip(&self) -> &crate::ippolicy::IpPolicy {
        &self.ip
    }

    /// Decides a query name (key form) for a tenant.
    #[inline]
    pub fn decide(&self, tenant: TenantId, qname: &[u8]) -> Decision {
        if self.allow.covers(qname) {
            return Decision::Allowlisted;
        }
        let own = self.tenants.get(tenant as usize);
        let shared = self.shared.lookup(qname);
        if let Some(rule) = shared
            && rule.action != Action::Passthru
        {
            return Decision::Enforce(rule);
        }
        if let Some(rule) = own.and_then(|t| t.enforce.lookup(qname))
            && rule.action != Action::Passthru
        {
            return Decision::Enforce(rule);
        }
        if let Some(rule) = shared {
            return Decision::Passthru(rule.feed);
        }
        if let Some(rule) = self
            .shared_monitor
            .lookup(qname)
            .or_else(|| own.and_then(|t| t.monitor.lookup(qname)))
        {
            return Decision::Monitor(rule.feed);
        }
        Decision::Resolve
    }

    /// The records of an [`Action::Local`] rule.
    pub fn local_data(&self, index: u32) -> &[LocalRecord] {
        self.local.get(index as usize).map_or(&[], |r| r)
    }

    /// Distinct names in the shared blocking feeds.
    pub fn shared_len(&self) -> usize {
        self.shared.len()
    }

    /// Approximate heap bytes of the compiled tables.
    pub fn heap_bytes(&self) -> usize {
        self.shared.heap_bytes()
            + self.shared_monitor.heap_bytes()
            + self
                .tenants
                .iter()
                .map(|t| t.enforce.heap_bytes() + t.monitor.heap_bytes())
                .sum::<usize>()
    }
}

/// A policy set being changed by one feed's delta: its own copies of the
/// policies that hold the feed ([`PolicySet::draft`]), patched by
/// [`PolicyDraft::apply`].
#[derive(Debug)]
pub struct PolicyDraft {
    feed: FeedId,
    /// The policies that hold `feed` are this draft's alone.
    set: PolicySet,
}

impl PolicyDraft {
    /// The set with `delta` applied to the draft's feed, or `None` when the
    /// set must be compiled afresh (see [`PolicySet::apply_delta`]).
    pub fn apply(mut self, delta: &FeedDelta) -> Option<PolicySet> {
        let mut triggers = delta.removed.iter().chain(delta.added.iter());
        // address triggers are compiled with the whole set
        if !delta.added.ip.is_empty() || !delta.removed.ip.is_empty() {
            return None;
        }
        if triggers.any(|(_, t, _)| t == Trigger::Subtree)
            || delta.added.iter().any(
                |(_, _, a)| matches!(a, Action::Local(i) if i as usize >= delta.added.local.len()),
            )
        {
            return None;
        }
        let local_base = u32::try_from(self.set.local.len()).ok()?;
        let feed = self.feed;
        let patch = |p: &mut Arc<Policy>| -> Option<()> {
            if !p.holds(feed) {
                return Some(());
            }
            // not RPZ-like: the draft shares it rather than copy it
            Arc::get_mut(p)?.patch(feed, delta, local_base)
        };
        let set = &mut self.set;
        patch(&mut set.shared)?;
        patch(&mut set.shared_monitor)?;
        for t in &mut set.tenants {
            patch(&mut t.enforce)?;
            patch(&mut t.monitor)?;
        }
        set.local
            .extend(delta.added.local.iter().map(|r| Arc::from(r.as_slice())));
        Some(self.set)
    }
}

#[cfg(test)]
mod delta_tests;

/// What the policy tests of this crate build feeds with.
#[cfg(test)]
pub(crate) mod testkit {
    use super::*;
    use crate::name::text_to_key;

    pub fn k(s: &str) -> Vec<u8> {
        text_to_key(s).unwrap()
    }

    pub fn rules(entries: &[(&str, Trigger, Action)]) -> FeedRules {
        let mut r = FeedRules::new();
        for (n, t, a) in entries {
            r.push(&k(n), *t, *a);
        }
        r
    }

    /// A shared blocking feed.
    pub fn shared(id: FeedId, rules: &FeedRules) -> FeedSpec<'_> {
        FeedSpec {
            id,
            rules,
            mode: FeedMode::Block,
            tenants: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::{k, rules, shared};
    use super::*;

    #[test]
    fn exact_wildcard_and_subtree() {
        let f = rules(&[
            ("exact.test", Trigger::Exact, Action::Block),
            ("wild.test", Trigger::Wildcard, Action::Nodata),
            ("tree.test", Trigger::Subtree, Action::Block),
        ]);
        let p = PolicySet::compile(NameSet::default(), &[shared(0, &f)], 1);
        let d = |n: &str| p.decide(0, &k(n));
        let block = Decision::Enforce(Rule {
            feed: 0,
            action: Action::Block,
        });
        let nodata = Decision::Enforce(Rule {
            feed: 0,
            action: Action::Nodata,
        });
        assert_eq!(d("exact.test"), block);
        assert_eq!(d("a.exact.test"), Decision::Resolve);
        assert_eq!(d("wild.test"), Decision::Resolve);
        assert_eq!(d("a.wild.test"), nodata);
        assert_eq!(d("b.a.wild.test"), nodata);
        assert_eq!(d("tree.test"), block);
        assert_eq!(d("x.y.tree.test"), block);
        assert_eq!(d("test"), Decision::Resolve);
        assert_eq!(d("other.test"), Decision::Resolve);
    }

    #[test]
    fn first_feed_wins_then_exact_then_longest_wildcard() {
        let f0 = rules(&[("b.test", Trigger::Wildcard, Action::Drop)]);
        let f1 = rules(&[
            ("a.b.test", Trigger::Exact, Action::Block),
            ("x.b.test", Trigger::Wildcard, Action::Nodata),
            ("c.test", Trigger::Exact, Action::Block),
            ("c.test", Trigger::Wildcard, Action::Drop),
            ("y.c.test", Trigger::Wildcard, Action::Nodata),
        ]);
        let p = PolicySet::compile(NameSet::default(), &[shared(1, &f1), shared(0, &f0)], 1);
        let d = |n: &str| p.decide(0, &k(n));
        assert_eq!(
            d("a.b.test"),
            Decision::Enforce(Rule {
                feed: 0,
                action: Action::Drop
            })
        );
        assert_eq!(
            d("q.x.b.test"),
            Decision::Enforce(Rule {
                feed: 0,
                action: Action::Drop
            })
        );
        assert_eq!(
            d("c.test"),
            Decision::Enforce(Rule {
                feed: 1,
                action: Action::Block
            })
        );
        assert_eq!(
            d("q.y.c.test"),
            Decision::Enforce(Rule {
                feed: 1,
                action: Action::Nodata
            })
        );
        assert_eq!(
            d("y.c.test"),
            Decision::Enforce(Rule {
                feed: 1,
                action: Action::Drop
            })
        );
    }

    /// Wildcards as Unbound 1.17 applies them (see `Policy::add_shadows`).
    #[test]
    fn wildcards_shadowed_as_in_unbound() {
        let f = rules(&[
            ("over.test", Trigger::Wildcard, Action::Block),
            ("a.b.over.test", Trigger::Exact, Action::Passthru),
        ]);
        let g = rules(&[("over.test", Trigger::Wildcard, Action::Nodata)]);
        let p = PolicySet::compile(NameSet::default(), &[shared(0, &f)], 1);
        let d = |n: &str| p.decide(0, &k(n));
        let block = Decision::Enforce(Rule {
            feed: 0,
            action: Action::Block,
        });
        assert_eq!(d("a.b.over.test"), Decision::Passthru(0));
        assert_eq!(d("deep.a.b.over.test"), Decision::Resolve);
        assert_eq!(d("x.b.over.test"), Decision::Resolve);
        // sorts before a.b.over.test: Unbound's predecessor is *.over.test
        assert_eq!(d("0.b.over.test"), block);
        assert_eq!(d("b.over.test"), block);
        assert_eq!(d("c.over.test"), block);
        assert_eq!(d("z.c.over.test"), block);
        // a shadow in one feed does not hide another feed's wildcard
        let p = PolicySet::compile(NameSet::default(), &[shared(0, &f), shared(1, &g)], 1);
        assert_eq!(
            p.decide(0, &k("deep.a.b.over.test")),
            Decision::Enforce(Rule {
                feed: 1,
                action: Action::Nodata
            })
        );
    }

    #[test]
    fn allowlist_wins_and_tenants_only_add() {
        let shared_rules = rules(&[
            ("evil.test", Trigger::Subtree, Action::Block),
            ("ok.evil.test", Trigger::Exact, Action::Passthru),
            ("pass.test", Trigger::Exact, Action::Passthru),
        ]);
        let tenant_rules = rules(&[
            ("evil.test", Trigger::Subtree, Action::Passthru),
            ("strict.test", Trigger::Subtree, Action::Block),
            ("pass.test", Trigger::Exact, Action::Block),
        ]);
        let monitor_rules = rules(&[("watch.test", Trigger::Subtree, Action::Block)]);
        let t1 = [1];
        let feeds = [
            shared(0, &shared_rules),
            FeedSpec {
                id: 1,
                rules: &tenant_rules,
                mode: FeedMode::Block,
                tenants: Some(&t1),
            },
            FeedSpec {
                id: 2,
                rules: &monitor_rules,
                mode: FeedMode::Monitor,
                tenants: None,
            },
        ];
        let allow_key = k("safe.evil.test");
        let p = PolicySet::compile(NameSet::new([allow_key.as_slice()]), &feeds, 2);
        let block0 = Decision::Enforce(Rule {
            feed: 0,
            action: Action::Block,
        });
        let block1 = Decision::Enforce(Rule {
            feed: 1,
            action: Action::Block,
        });
        // the tenant's passthru cannot lift the shared block
        assert_eq!(p.decide(1, &k("www.evil.test")), block0);
        assert_eq!(p.decide(1, &k("x.safe.evil.test")), Decision::Allowlisted);
        assert_eq!(p.decide(0, &k("safe.evil.test")), Decision::Allowlisted);
        assert_eq!(p.decide(1, &k("a.strict.test")), block1);
        assert_eq!(p.decide(0, &k("a.strict.test")), Decision::Resolve);
        // a shared passthru does not lift a tenant's stricter block
        assert_eq!(p.decide(0, &k("pass.test")), Decision::Passthru(0));
        assert_eq!(p.decide(1, &k("pass.test")), block1);
        assert_eq!(p.decide(0, &k("ok.evil.test")), Decision::Passthru(0));
        assert_eq!(p.decide(0, &k("a.watch.test")), Decision::Monitor(2));
        assert_eq!(p.decide(7, &k("a.watch.test")), Decision::Monitor(2));
    }

    #[test]
    fn local_data_is_moved_into_the_set() {
        let mut f = FeedRules::new();
        let act = f.push_local(vec![LocalRecord {
            rtype: rtype::A,
            ttl: 60,
            rdata: Box::new([10, 0, 0, 1]),
        }]);
        f.push(&k("local.test"), Trigger::Exact, act);
        let p = PolicySet::compile(NameSet::default(), &[shared(0, &f)], 1);
        let Decision::Enforce(Rule {
            action: Action::Local(i),
            ..
        }) = p.decide(0, &k("local.test"))
        else {
            panic!("no local data");
        };
        assert_eq!(&*p.local_data(i)[0].rdata, &[10, 0, 0, 1]);
    }

    #[test]
    fn a_slot_reads_back_as_written() {
        let rules = [
            None,
            Some(Rule {
                feed: 0,
                action: Action::Block,
            }),
            Some(Rule {
                feed: 7,
                action: Action::Nodata,
            }),
            Some(Rule {
                feed: 300,
                action: Action::Passthru,
            }),
            Some(Rule {
                feed: FeedId::MAX,
                action: Action::Drop,
            }),
            Some(Rule {
                feed: 2,
                action: Action::Local(u32::MAX - 1),
            }),
        ];
        for exact in rules {
            for wild in rules {
                let slot = Slot { exact, wild };
                let mut b = [0xAAu8; 14];
                slot.write(&mut b);
                assert_eq!(Slot::read(&b), slot);
            }
        }
    }

    #[test]
    fn a_name_table_keeps_each_name_and_value_as_it_grows() {
        let mut t: NameTable<u32> = NameTable::default();
        let names: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| k(&format!("n{i}.grow.test")))
            .collect();
        for (i, n) in names.iter().enumerate() {
            t.update(n, || i as u32, |_| {});
        }
        // an update of a present name changes its value, not the count
        t.update(&names[42], || 0, |v| *v += 1_000_000);
        t.shrink_to_fit();
        assert_eq!(t.len(), 5000);
        for (i, n) in names.iter().enumerate() {
            let want = if i == 42 { 1_000_042 } else { i as u32 };
            assert_eq!(t.get(n), Some(want), "{i}");
        }
        assert_eq!(t.get(&k("grow.test")), None);
        assert_eq!(t.get(&k("n5000.grow.test")), None);
        // the empty name (the root) is a name like any other
        t.update(&[], || 9, |_| {});
        assert_eq!(t.get(&[]), Some(9));
    }

    #[test]
    fn a_removed_name_leaves_its_record_to_a_new_name_of_its_length() {
        let mut t: NameTable<u32> = NameTable::default();
        let names: Vec<Vec<u8>> = (0..100u32).map(|i| k(&format!("n{i:03}.test"))).collect();
        for (i, n) in names.iter().enumerate() {
            t.set(n, i as u32);
        }
        let arena = t.arena.len();
        for n in &names[..50] {
            assert!(t.remove(n));
        }
        assert!(!t.remove(&names[0]));
        assert_eq!(t.len(), 50);
        let new: Vec<Vec<u8>> = (0..50u32).map(|i| k(&format!("m{i:03}.test"))).collect();
        for (i, n) in new.iter().enumerate() {
            t.set(n, 1000 + i as u32);
        }
        assert_eq!(
            t.arena.len(),
            arena,
            "the new names took the removed records"
        );
        // a longer name has no record to take
        t.set(&k("longer.name.test"), 7);
        assert!(t.arena.len() > arena);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(t.get(n), (i >= 50).then_some(i as u32), "{i}");
        }
        for (i, n) in new.iter().enumerate() {
            assert_eq!(t.get(n), Some(1000 + i as u32));
        }
    }
}
