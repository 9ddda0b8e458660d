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
}

#[derive(Debug, Clone, Copy)]
struct FeedEntry {
    off: u32,
    len: u8,
    kind: Trigger,
    action: Action,
}

/// How a rule's name matches a query name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.entries.len()
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
    _value: std::marker::PhantomData<V>,
}

impl<V> Default for NameTable<V> {
    fn default() -> Self {
        Self {
            arena: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
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

    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(self.hasher.hash_one(key), key).is_some()
    }

    /// Hands the value for `key` (`make()` when absent, then inserted) to
    /// `change`, and keeps what it leaves.
    pub fn update(&mut self, key: &[u8], make: impl FnOnce() -> V, change: impl FnOnce(&mut V)) {
        let hash = self.hasher.hash_one(key);
        let off = match self.find(hash, key) {
            Some(off) => off,
            None => {
                let off = u32::try_from(self.arena.len()).expect("name arena exceeds 4 GiB");
                let len = u8::try_from(key.len()).expect("a key-form name is at most 255 bytes");
                self.arena.push(len);
                self.arena.resize(self.arena.len() + V::SIZE, 0);
                make().write(&mut self.arena[off as usize + 1..]);
                self.arena.extend_from_slice(key);
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
        self.arena.capacity() + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}

/// Lists of values by name, for the rarely used tables (RPZ wildcard
/// shadows, later feeds' wildcards at one name).
#[derive(Debug, Clone)]
struct NameLists<T> {
    index: NameTable<u32>,
    lists: Vec<Vec<T>>,
}

impl<T> Default for NameLists<T> {
    fn default() -> Self {
        Self {
            index: NameTable::default(),
            lists: Vec::new(),
        }
    }
}

impl<T> NameLists<T> {
    fn get(&self, key: &[u8]) -> Option<&[T]> {
        self.index
            .get(key)
            .map(|i| self.lists[i as usize].as_slice())
    }

    /// The list for `key`, empty when new.
    fn list_mut(&mut self, key: &[u8]) -> &mut Vec<T> {
        let next = u32::try_from(self.lists.len()).expect("more than 4G lists");
        let mut i = next;
        self.index.update(key, || next, |v| i = *v);
        if i == next {
            self.lists.push(Vec::new());
        }
        &mut self.lists[i as usize]
    }

    fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    fn shrink_to_fit(&mut self) {
        self.index.shrink_to_fit();
        self.lists.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.index.heap_bytes()
            + self.lists.capacity() * std::mem::size_of::<Vec<T>>()
            + self
                .lists
                .iter()
                .map(|l| l.capacity() * std::mem::size_of::<T>())
                .sum::<usize>()
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

/// The merged rules of several feeds.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    table: NameTable<Slot>,
    /// RPZ wildcard shadows (see [`Policy::shadowed`]): for a name `C` whose
    /// parent `W` has a `*.W` trigger, the canonically smallest trigger name
    /// at or below `C`, per feed. Empty unless an RPZ feed has wildcards.
    shadows: NameLists<(FeedId, Box<[u8]>)>,
    /// Wildcards of later feeds at a name whose slot holds an earlier
    /// feed's, consulted only when that one is shadowed.
    more_wild: NameLists<Rule>,
}

impl Policy {
    /// Merges feeds, highest priority (lowest [`FeedId`]) first: for each
    /// name and trigger kind the first rule wins. Local data moves into
    /// `local`, which [`Action::Local`] indexes afterwards.
    pub fn compile<'a>(
        feeds: impl IntoIterator<Item = (FeedId, &'a FeedRules)>,
        local: &mut Vec<Vec<LocalRecord>>,
    ) -> Self {
        let mut feeds: Vec<_> = feeds.into_iter().collect();
        feeds.sort_by_key(|(id, _)| *id);
        let names: usize = feeds.iter().map(|(_, f)| f.len()).sum();
        let bytes: usize = feeds.iter().map(|(_, f)| f.arena.len()).sum();
        let mut policy = Policy {
            table: NameTable::with_capacity(names, bytes),
            shadows: NameLists::default(),
            more_wild: NameLists::default(),
        };
        for &(feed, rules) in &feeds {
            for (key, kind, action) in rules.iter() {
                let action = match action {
                    Action::Local(i) => {
                        local.push(rules.local[i as usize].clone());
                        Action::Local((local.len() - 1) as u32)
                    }
                    a => a,
                };
                let rule = Rule { feed, action };
                let mut earlier_wild = None;
                policy.table.update(key, Slot::default, |slot| {
                    if matches!(kind, Trigger::Exact | Trigger::Subtree) && slot.exact.is_none() {
                        slot.exact = Some(rule);
                    }
                    if matches!(kind, Trigger::Wildcard | Trigger::Subtree) {
                        match slot.wild {
                            None => slot.wild = Some(rule),
                            Some(w) => earlier_wild = Some(w),
                        }
                    }
                });
                if earlier_wild.is_some_and(|w| w.feed != feed) {
                    let more = policy.more_wild.list_mut(key);
                    if more.last().is_none_or(|r| r.feed != feed) {
                        more.push(rule);
                    }
                }
            }
        }
        for &(feed, rules) in &feeds {
            policy.add_shadows(feed, rules);
        }
        policy.table.shrink_to_fit();
        policy.shadows.shrink_to_fit();
        policy.more_wild.shrink_to_fit();
        policy
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
            // the trigger's own name in the zone: `*.W` for a wildcard
            owner.clear();
            match kind {
                Trigger::Exact => {}
                Trigger::Wildcard => owner.extend_from_slice(b"\x01*"),
                Trigger::Subtree => continue,
            }
            owner.extend_from_slice(key);
            let mut at = 0;
            while at < owner.len() {
                let parent = at + 1 + owner[at] as usize;
                if bases.table.contains(&owner[parent..]) {
                    let list = self.shadows.list_mut(&owner[at..]);
                    match list.iter_mut().find(|(f, _)| *f == feed) {
                        Some((_, min)) => {
                            if canonical_cmp(&owner, min).is_lt() {
                                *min = owner.as_slice().into();
                            }
                        }
                        None => list.push((feed, owner.as_slice().into())),
                    }
                }
                at = parent;
            }
        }
    }

    /// Whether feed `feed`'s wildcard at `qname[base..]` is hidden from
    /// `qname`, whose label just below the base starts at `child`.
    #[inline]
    fn shadowed(&self, feed: FeedId, qname: &[u8], child: usize) -> bool {
        if self.shadows.is_empty() {
            return false;
        }
        self.shadows.get(&qname[child..]).is_some_and(|list| {
            list.iter()
                .any(|(f, min)| *f == feed && canonical_cmp(min, qname).is_le())
        })
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
                let more = || self.more_wild.get(&qname[off..]).unwrap_or(&[]);
                for r in std::iter::once(w).chain(more().iter().copied()) {
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

    /// Distinct names with at least one rule.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes() + self.shadows.heap_bytes() + self.more_wild.heap_bytes()
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
/// feeds, tenant feeds, monitor-only feeds.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    allow: NameSet,
    shared: Policy,
    shared_monitor: Policy,
    /// Indexed by [`TenantId`]; empty policies for tenants without feeds.
    tenants: Vec<TenantPolicy>,
    local: Vec<Vec<LocalRecord>>,
}

#[derive(Debug, Default, Clone)]
struct TenantPolicy {
    enforce: Policy,
    monitor: Policy,
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
        let shared = Policy::compile(pick(FeedMode::Block, None), &mut local);
        let shared_monitor = Policy::compile(pick(FeedMode::Monitor, None), &mut local);
        let tenants = (0..tenant_count)
            .map(|t| {
                let t = t as TenantId;
                TenantPolicy {
                    enforce: Policy::compile(pick(FeedMode::Block, Some(t)), &mut local),
                    monitor: Policy::compile(pick(FeedMode::Monitor, Some(t)), &mut local),
                }
            })
            .collect();
        Self {
            allow,
            shared,
            shared_monitor,
            tenants,
            local,
        }
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
    /// This policy with `delta` applied to `feed`, sharing what the change
    /// does not touch; `None` when the change needs the caller to compile
    /// the policy afresh from the feeds.
    pub fn apply_delta(&self, feed: FeedId, delta: &FeedDelta) -> Option<PolicySet> {
        let _ = (feed, delta);
        None
    }

    pub fn local_data(&self, index: u32) -> &[LocalRecord] {
        self.local.get(index as usize).map_or(&[], Vec::as_slice)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::text_to_key;

    fn k(s: &str) -> Vec<u8> {
        text_to_key(s).unwrap()
    }

    fn rules(entries: &[(&str, Trigger, Action)]) -> FeedRules {
        let mut r = FeedRules::new();
        for (n, t, a) in entries {
            r.push(&k(n), *t, *a);
        }
        r
    }

    fn shared(id: FeedId, rules: &FeedRules) -> FeedSpec<'_> {
        FeedSpec {
            id,
            rules,
            mode: FeedMode::Block,
            tenants: None,
        }
    }

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
}
