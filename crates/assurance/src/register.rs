//! The asset register: observations from every source, reconciled into
//! devices, as they stood at a given time.
//!
//! Matching keys, strongest first: directory/MDM device id, hardware
//! serial, MAC address, host name (case-insensitive, domain and trailing
//! `$` stripped). An IP address is used only to attach an observation that
//! carries no other key (a scanner that saw just an address), and only to
//! the device that held that address closest in time (within
//! [`IP_WINDOW`]): addresses move. Every merge records the key that made it;
//! disagreements between sources are kept as conflicts, never overwritten.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{AssetImport, AssetObs, AvObs, ImportMeta};
use serde::Serialize;

use crate::eol::os_end_of_life;
use crate::parse::Source;
use parapet_core::calendar::format_date;

/// How far apart in time two sightings of one IP may be to be one device.
pub const IP_WINDOW: i64 = 7 * 86_400;

/// Device classes of the committee report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Server,
    /// Desktops, laptops, tablets, thin clients.
    Workstation,
    Mobile,
    Network,
    Other,
    /// No source says: a data-quality exception.
    Unclassified,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Server => "server",
            Class::Workstation => "workstation",
            Class::Mobile => "mobile",
            Class::Network => "network",
            Class::Other => "other",
            Class::Unclassified => "unclassified",
        }
    }
}

/// One observation of a device, with where it came from.
#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    pub import: &'a ImportMeta,
    /// The import's rows (for the findings on this observation).
    pub data: &'a AssetImport,
    pub source: Source,
    pub obs: &'a AssetObs,
    /// Index of the observation within its import.
    pub seq: u32,
    /// When this source saw the device.
    pub at: i64,
}

impl Sighting<'_> {
    /// `inventory.csv line 4 (inventory-csv, 2021-09-28)`.
    pub fn cite(&self) -> String {
        format!(
            "{} {} ({}, {})",
            file_name(&self.import.path),
            self.obs.locator,
            self.source,
            format_date(self.at)
        )
    }
}

pub fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// One reconciled device.
#[derive(Debug, Clone)]
pub struct Device<'a> {
    /// The name shown: the short host name, else an address.
    pub name: String,
    pub sightings: Vec<Sighting<'a>>,
    pub class: Class,
    /// The rule and evidence that decided the class.
    pub class_rule: String,
    pub os: Option<String>,
    /// The sighting the OS was taken from.
    pub os_source: Option<String>,
    pub last_seen: i64,
    /// Seen by an inventory, MDM, EDR or agent (not only by scanners).
    pub managed: bool,
    pub lifecycle: Option<String>,
    /// How observations were joined: `MAC 00:50:…`, `host name srv01`.
    pub merged_by: Vec<String>,
    pub conflicts: Vec<String>,
}

impl Device<'_> {
    pub fn hostnames(&self) -> BTreeSet<String> {
        self.sightings
            .iter()
            .filter_map(|s| short_name(s.obs))
            .collect()
    }

    pub fn addresses(&self) -> BTreeSet<String> {
        self.sightings
            .iter()
            .flat_map(|s| s.obs.ips.iter().cloned())
            .collect()
    }

    pub fn macs(&self) -> BTreeSet<String> {
        self.sightings
            .iter()
            .flat_map(|s| s.obs.macs.iter().cloned())
            .collect()
    }

    /// Every name, address and identifier of the device (for leak tests and
    /// search).
    pub fn identifiers(&self) -> BTreeSet<String> {
        let mut out = self.hostnames();
        out.extend(self.addresses());
        out.extend(self.macs());
        for s in &self.sightings {
            out.extend(s.obs.fqdn.iter().cloned());
            out.extend(s.obs.hostname.iter().cloned());
        }
        out
    }

    /// The freshest AV observation of each source that reports AV.
    pub fn av(&self) -> Vec<(&Sighting<'_>, &AvObs)> {
        let mut best: BTreeMap<Source, (&Sighting<'_>, &AvObs)> = BTreeMap::new();
        for s in &self.sightings {
            if let Some(av) = &s.obs.av {
                let t = av.reported_at.unwrap_or(s.at);
                let newer = best
                    .get(&s.source)
                    .is_none_or(|(b, bav)| bav.reported_at.unwrap_or(b.at) < t);
                if newer {
                    best.insert(s.source, (s, av));
                }
            }
        }
        best.into_values().collect()
    }

    /// When support for the device's OS ended, if it has.
    pub fn os_end_of_life(&self) -> Option<i64> {
        self.os.as_deref().and_then(os_end_of_life)
    }
}

/// Short host name: lower case, domain and trailing `$` stripped.
pub fn normalise_host(h: &str) -> Option<String> {
    let h = h.trim().trim_end_matches('$').to_ascii_lowercase();
    if h.is_empty() || h.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let short = h.split('.').next().unwrap_or(&h).to_string();
    (!short.is_empty()).then_some(short)
}

fn short_name(o: &AssetObs) -> Option<String> {
    o.hostname
        .as_deref()
        .and_then(normalise_host)
        .or_else(|| o.fqdn.as_deref().and_then(normalise_host))
}

fn useful_serial(s: &str) -> Option<String> {
    let l = s.trim().to_ascii_lowercase();
    let junk = [
        "",
        "0",
        "none",
        "n/a",
        "default string",
        "to be filled by o.e.m.",
        "system serial number",
        "not specified",
        "0123456789",
    ];
    (!junk.contains(&l.as_str())).then_some(l)
}

fn useful_mac(m: &str) -> Option<String> {
    (!m.is_empty() && m != "00:00:00:00:00:00" && m != "ff:ff:ff:ff:ff:ff").then(|| m.to_string())
}

struct Dsu(Vec<usize>);

impl Dsu {
    fn find(&mut self, x: usize) -> usize {
        let mut r = x;
        while self.0[r] != r {
            r = self.0[r];
        }
        let mut x = x;
        while self.0[x] != r {
            let n = self.0[x];
            self.0[x] = r;
            x = n;
        }
        r
    }
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        self.0[ra.max(rb)] = ra.min(rb);
        true
    }
}

const RETIRED: &[&str] = &[
    "disposed",
    "in stock",
    "instock",
    "awaiting disposal",
    "retired",
    "decommissioned",
    "lost",
    "stolen",
];

/// Whether an inventory lifecycle status takes the device out of scope.
pub fn retired(lifecycle: &str) -> bool {
    let l = lifecycle.trim().to_ascii_lowercase();
    RETIRED.contains(&l.as_str())
}

fn classify_type(t: &str) -> Option<Class> {
    let l = t.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| l.contains(w));
    if any(&["server", "domain controller", "hypervisor", "esxi"]) {
        Some(Class::Server)
    } else if any(&[
        "laptop",
        "notebook",
        "desktop",
        "workstation",
        "tablet",
        "thin client",
        "ultrabook",
        "2-in-1",
        "2 in 1",
        "surface",
        "all-in-one",
        "pc",
    ]) {
        Some(Class::Workstation)
    } else if any(&["phone", "mobile", "smartphone"]) {
        Some(Class::Mobile)
    } else if any(&[
        "firewall",
        "router",
        "switch",
        "access point",
        "network",
        "load balancer",
    ]) {
        Some(Class::Network)
    } else if any(&["printer", "mfd", "camera", "iot", "ups"]) {
        Some(Class::Other)
    } else {
        None
    }
}

fn classify_os(os: &str) -> Option<Class> {
    let l = os.to_ascii_lowercase();
    let flat: String = l.chars().filter(|c| !c.is_whitespace()).collect();
    let any = |words: &[&str]| words.iter().any(|w| l.contains(w) || flat.contains(w));
    if any(&["server", "esxi", "vmkernel"]) {
        Some(Class::Server)
    } else if any(&["ipados"]) {
        Some(Class::Workstation)
    } else if any(&["ios", "android"]) && !l.contains("cisco") {
        Some(Class::Mobile)
    } else if any(&["cisco", "fortios", "junos", "pan-os", "routeros", "sonicos"]) {
        Some(Class::Network)
    } else if any(&[
        "windows",
        "macos",
        "mac os",
        "os x",
        "chromeos",
        "chrome os",
    ]) {
        Some(Class::Workstation)
    } else if any(&[
        "linux", "ubuntu", "debian", "centos", "red hat", "rhel", "suse", "rocky", "alma",
        "freebsd", "unix", "solaris", "aix",
    ]) {
        Some(if any(&["desktop", "workstation"]) {
            Class::Workstation
        } else {
            Class::Server
        })
    } else {
        None
    }
}

fn classify_name(name: &str) -> Option<Class> {
    const SERVER: &[&str] = &[
        "srv", "svr", "server", "dc0", "dc1", "sql", "fs0", "app0", "esx",
    ];
    const WORKSTATION: &[&str] = &["lt", "lap", "nb", "ws", "pc", "dt", "desk", "tab", "wks"];
    let first = name.split(['-', '_', '.']).next().unwrap_or(name);
    let alpha: String = first
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    if SERVER.iter().any(|p| first.starts_with(p)) {
        Some(Class::Server)
    } else if WORKSTATION.contains(&alpha.as_str()) {
        Some(Class::Workstation)
    } else {
        None
    }
}

/// Builds the register from the imports (oldest first), as it stood at
/// `until`: observations dated later are ignored.
pub fn reconcile<'a>(imports: &'a [(ImportMeta, AssetImport)], until: i64) -> Vec<Device<'a>> {
    let mut sightings: Vec<Sighting<'a>> = Vec::new();
    for (meta, imp) in imports {
        let Ok(source) = meta.source.parse::<Source>() else {
            continue;
        };
        for (seq, obs) in imp.assets.iter().enumerate() {
            let at = obs
                .scan
                .map(|s| s.at)
                .filter(|t| *t != i64::MIN)
                .or(obs.last_seen)
                .unwrap_or(meta.as_of);
            if at > until {
                continue;
            }
            sightings.push(Sighting {
                import: meta,
                data: imp,
                source,
                obs,
                seq: seq as u32,
                at,
            });
        }
    }
    let n = sightings.len();
    let mut dsu = Dsu((0..n).collect());
    let mut reasons: HashMap<usize, Vec<String>> = HashMap::new();
    let mut keyed: HashMap<String, usize> = HashMap::new();
    for (i, s) in sightings.iter().enumerate() {
        let o = s.obs;
        let mut keys: Vec<(String, String)> = Vec::new();
        if let Some(id) = o
            .device_id
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            keys.push((
                format!("id:{}", id.to_ascii_lowercase()),
                format!("device id {id}"),
            ));
        }
        if let Some(sn) = o.serial.as_deref().and_then(useful_serial) {
            keys.push((format!("sn:{sn}"), format!("serial {sn}")));
        }
        for m in o.macs.iter().filter_map(|m| useful_mac(m)) {
            keys.push((format!("mac:{m}"), format!("MAC {m}")));
        }
        if let Some(h) = short_name(o) {
            keys.push((format!("host:{h}"), format!("host name {h}")));
        }
        for (k, why) in keys {
            match keyed.get(&k) {
                Some(&j) => {
                    if dsu.union(i, j) {
                        reasons.entry(i).or_default().push(why);
                    }
                }
                None => {
                    keyed.insert(k, i);
                }
            }
        }
    }
    // address-only sightings: attach to the device that held the address
    // closest in time, within the window
    let mut by_ip: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in sightings.iter().enumerate() {
        for ip in &s.obs.ips {
            by_ip.entry(ip.as_str()).or_default().push(i);
        }
    }
    let has_key = |o: &AssetObs| {
        short_name(o).is_some()
            || o.device_id.is_some()
            || o.serial.as_deref().and_then(useful_serial).is_some()
            || o.macs.iter().any(|m| useful_mac(m).is_some())
    };
    for i in 0..n {
        let s = &sightings[i];
        if has_key(s.obs) {
            continue;
        }
        let mut best: Option<(i64, usize, &str)> = None;
        for ip in &s.obs.ips {
            for &j in by_ip.get(ip.as_str()).into_iter().flatten() {
                if j == i || !has_key(sightings[j].obs) {
                    continue;
                }
                let gap = (sightings[j].at - s.at).abs();
                if gap <= IP_WINDOW && best.is_none_or(|(g, _, _)| gap < g) {
                    best = Some((gap, j, ip.as_str()));
                }
            }
        }
        if let Some((gap, j, ip)) = best {
            dsu.union(i, j);
            reasons
                .entry(i)
                .or_default()
                .push(format!("address {ip} held {} day(s) apart", gap / 86_400));
        } else {
            // several address-only sightings of one address: one device
            for ip in &s.obs.ips {
                for &j in by_ip.get(ip.as_str()).into_iter().flatten() {
                    if j < i
                        && !has_key(sightings[j].obs)
                        && (sightings[j].at - s.at).abs() <= IP_WINDOW
                        && dsu.union(i, j)
                    {
                        reasons.entry(i).or_default().push(format!("address {ip}"));
                    }
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let r = dsu.find(i);
        groups.entry(r).or_default().push(i);
    }
    let mut slots: Vec<Option<Sighting<'a>>> = sightings.into_iter().map(Some).collect();
    let mut devices: Vec<Device<'a>> = groups
        .into_values()
        .map(|members| {
            let mut merged_by: Vec<String> = members
                .iter()
                .flat_map(|m| reasons.remove(m).unwrap_or_default())
                .collect();
            merged_by.sort();
            merged_by.dedup();
            let sights: Vec<Sighting<'a>> = members
                .iter()
                .map(|&m| slots[m].take().expect("each once"))
                .collect();
            build_device(sights, merged_by)
        })
        .collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    devices
}

fn build_device<'a>(mut sightings: Vec<Sighting<'a>>, merged_by: Vec<String>) -> Device<'a> {
    sightings.sort_by_key(|s| std::cmp::Reverse(s.at));
    let names: BTreeSet<String> = sightings.iter().filter_map(|s| short_name(s.obs)).collect();
    let name = sightings
        .iter()
        .find_map(|s| short_name(s.obs))
        .or_else(|| sightings.iter().find_map(|s| s.obs.ips.first().cloned()))
        .unwrap_or_else(|| "(unnamed)".into());
    let mut conflicts = Vec::new();
    if names.len() > 1 {
        conflicts.push(format!(
            "host names differ: {}",
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    // OS: the most recent from a managed source, else any
    let os_of = |pred: &dyn Fn(&Sighting<'_>) -> bool| {
        sightings
            .iter()
            .filter(|s| pred(s))
            .find_map(|s| s.obs.os.clone().map(|o| (o, s)))
    };
    let os = os_of(&|s| s.source.is_managed()).or_else(|| os_of(&|_| true));
    // class, by precedence of evidence
    let mut class = None;
    let mut rule = String::new();
    let mut verdicts: Vec<(Class, String)> = Vec::new();
    for s in sightings
        .iter()
        .filter(|s| s.source == Source::InventoryCsv)
    {
        if let Some(c) = s.obs.device_type.as_deref().and_then(classify_type) {
            verdicts.push((
                c,
                format!(
                    "inventory device type '{}' ({})",
                    s.obs.device_type.as_deref().unwrap_or(""),
                    s.cite()
                ),
            ));
        }
    }
    for s in sightings.iter().filter(|s| s.source == Source::DefenderCsv) {
        if let Some(c) = s
            .obs
            .device_type
            .as_deref()
            .and_then(classify_type)
            .or_else(|| s.obs.os.as_deref().and_then(classify_os))
        {
            verdicts.push((
                c,
                format!(
                    "Defender device type/OS platform '{}' ({})",
                    s.obs
                        .device_type
                        .as_deref()
                        .or(s.obs.os.as_deref())
                        .unwrap_or(""),
                    s.cite()
                ),
            ));
        }
    }
    for s in sightings
        .iter()
        .filter(|s| !matches!(s.source, Source::InventoryCsv | Source::DefenderCsv))
    {
        if let Some(c) = s.obs.os.as_deref().and_then(classify_os) {
            verdicts.push((
                c,
                format!("OS '{}' ({})", s.obs.os.as_deref().unwrap_or(""), s.cite()),
            ));
        }
    }
    for s in &sightings {
        if s.source == Source::InventoryCsv
            && s.obs.device_type.is_none()
            && let Some(c) = s.obs.os.as_deref().and_then(classify_os)
        {
            verdicts.push((
                c,
                format!("OS '{}' ({})", s.obs.os.as_deref().unwrap_or(""), s.cite()),
            ));
        }
    }
    if let Some((c, why)) = verdicts.first() {
        class = Some(*c);
        rule = why.clone();
        let others: BTreeSet<&str> = verdicts
            .iter()
            .filter(|(o, _)| o != c)
            .map(|(o, _)| o.as_str())
            .collect();
        if !others.is_empty() {
            conflicts.push(format!(
                "class: {} by {}, but {} by other sources",
                c.as_str(),
                why,
                others.into_iter().collect::<Vec<_>>().join("/")
            ));
        }
    }
    if class.is_none()
        && let Some(c) = names.iter().find_map(|n| classify_name(n).map(|c| (c, n)))
    {
        class = Some(c.0);
        rule = format!("host name convention '{}'", c.1);
    }
    let class = class.unwrap_or(Class::Unclassified);
    if class == Class::Unclassified {
        rule = "no source gives a device type or OS".into();
    }
    let lifecycle = sightings
        .iter()
        .filter(|s| s.source == Source::InventoryCsv)
        .find_map(|s| s.obs.lifecycle.clone());
    Device {
        name,
        managed: sightings.iter().any(|s| s.source.is_managed()),
        last_seen: sightings.iter().map(|s| s.at).max().unwrap_or(0),
        os_source: os.as_ref().map(|(_, s)| s.cite()),
        os: os.map(|(o, _)| o),
        class,
        class_rule: rule,
        lifecycle,
        merged_by,
        conflicts,
        sightings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(id: i64, source: &str, as_of: i64, assets: Vec<AssetObs>) -> (ImportMeta, AssetImport) {
        (
            ImportMeta {
                id,
                source: source.into(),
                path: format!("f{id}"),
                as_of,
                ..ImportMeta::default()
            },
            AssetImport {
                source: source.into(),
                as_of,
                assets,
                ..AssetImport::default()
            },
        )
    }

    fn obs(host: Option<&str>, ips: &[&str], macs: &[&str], seen: i64) -> AssetObs {
        AssetObs {
            hostname: host.map(str::to_string),
            ips: ips.iter().map(|s| s.to_string()).collect(),
            macs: macs.iter().map(|s| s.to_string()).collect(),
            last_seen: Some(seen),
            ..AssetObs::default()
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn fqdn_short_name_mac_and_moving_addresses() {
        let t = 1000 * DAY;
        let imports = vec![
            imp(
                1,
                "inventory-csv",
                t,
                vec![
                    AssetObs {
                        fqdn: Some("SRV-FS01.council.local".into()),
                        device_type: Some("Virtual server".into()),
                        ..obs(None, &["10.0.0.5"], &[], t)
                    },
                    obs(
                        Some("LT-0001"),
                        &["10.0.1.20"],
                        &["00:11:22:33:44:55"],
                        t - 20 * DAY,
                    ),
                    obs(Some("LT-0002"), &["10.0.1.20"], &[], t),
                ],
            ),
            imp(
                2,
                "nessus",
                t,
                vec![
                    obs(Some("srv-fs01$"), &["10.0.0.5"], &[], t),
                    // the laptop renamed: same MAC
                    obs(Some("LT-0001-NEW"), &[], &["00:11:22:33:44:55"], t),
                    // address only: LT-0002 held it today, LT-0001 twenty days ago
                    obs(None, &["10.0.1.20"], &[], t),
                    // address nobody held: its own (unmanaged) device
                    obs(None, &["10.9.9.9"], &[], t),
                ],
            ),
        ];
        let reg = reconcile(&imports, t);
        let names: Vec<&str> = reg.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["10.9.9.9", "lt-0001-new", "lt-0002", "srv-fs01"]
        );
        let fs = &reg[3];
        assert_eq!(fs.sightings.len(), 2);
        assert_eq!(fs.class, Class::Server);
        assert!(
            fs.class_rule.contains("Virtual server"),
            "{}",
            fs.class_rule
        );
        let lt1 = &reg[1];
        assert!(lt1.merged_by.iter().any(|m| m.contains("MAC")));
        assert!(
            lt1.conflicts
                .iter()
                .any(|c| c.contains("host names differ"))
        );
        assert_eq!(
            reg[2].sightings.len(),
            2,
            "the address-only sighting joins today's holder"
        );
        assert!(!reg[0].managed);
        // later observations are not in an earlier register
        assert_eq!(reconcile(&imports, t - DAY).len(), 1);
    }

    #[test]
    fn a_new_network_card_keeps_the_device() {
        let t = 1000 * DAY;
        let imports = vec![
            imp(
                1,
                "inventory-csv",
                t - 40 * DAY,
                vec![obs(Some("WS-7"), &[], &["00:11:22:33:44:01"], t - 40 * DAY)],
            ),
            imp(
                2,
                "nessus",
                t,
                vec![obs(
                    Some("ws-7.council.local"),
                    &[],
                    &["00:11:22:33:44:99"],
                    t,
                )],
            ),
        ];
        let reg = reconcile(&imports, t);
        assert_eq!(reg.len(), 1);
        assert_eq!(reg[0].macs().len(), 2, "both cards are kept");
        assert_eq!(reg[0].merged_by, vec!["host name ws-7"]);
        assert!(
            reg[0].conflicts.is_empty(),
            "a MAC change is not a conflict"
        );
    }

    #[test]
    fn classification_rules() {
        assert_eq!(classify_os("WindowsServer2019"), Some(Class::Server));
        assert_eq!(classify_os("Windows10"), Some(Class::Workstation));
        assert_eq!(
            classify_os("Microsoft Windows 11 Pro"),
            Some(Class::Workstation)
        );
        assert_eq!(classify_os("Ubuntu 20.04 LTS"), Some(Class::Server));
        assert_eq!(classify_os("iPadOS 15"), Some(Class::Workstation));
        assert_eq!(classify_os("iOS 15"), Some(Class::Mobile));
        assert_eq!(classify_os("Cisco IOS 15.2"), Some(Class::Network));
        assert_eq!(classify_type("Laptop"), Some(Class::Workstation));
        assert_eq!(classify_type("Tablet"), Some(Class::Workstation));
        assert_eq!(classify_type("Multi-function printer"), Some(Class::Other));
        assert_eq!(classify_name("srv-sql01"), Some(Class::Server));
        assert_eq!(classify_name("lt0042"), Some(Class::Workstation));
        assert_eq!(classify_name("reception"), None);
        assert_eq!(normalise_host("WS-01.Council.Local"), Some("ws-01".into()));
        assert_eq!(normalise_host("10.0.0.1"), None);
    }
}
