//! The `dga` detection rule: does a registrable-domain label look like the
//! output of a domain generation algorithm?
//!
//! Malware that finds its command-and-control server through a DGA looks up
//! hundreds of pseudo-random names a day (`xjwqpzlkvbtrhd.com`,
//! `c351cd98a48e066d3ad32eb77625f72b.info`). People and companies choose
//! names built from words, so their letters follow each other the way they do
//! in language. The detector is a character-trigram model of legitimate
//! labels: it gives a label the average log-probability of its characters,
//! each given the two before it, and flags labels whose average is too low.
//!
//! * The model is trained on `data/legit-labels.txt`: 100,000 registrable
//!   labels from the Chromium HSTS preload list (see the file's header and
//!   `data/NOTICE.md`).
//! * Probabilities are add-one (add-k, k = 1) smoothed trigram estimates over
//!   39 symbols: `a`–`z`, `0`–`9`, `-`, "any other byte", and a boundary
//!   symbol that pads the start and marks the end of a label.
//! * The threshold depends on the label's length (8–9, 10–15, 16 or more
//!   characters): the average over a short label is noisier, so short labels
//!   must score lower to be flagged.
//! * Labels shorter than [`MIN_LEN`], labels made only of digits (and
//!   hyphens) and IDN labels (`xn--`) are never flagged: there is too little
//!   text in them, or it is not the language the model knows.
//!
//! `docs/dga.md` explains how the thresholds were chosen and gives the
//! measured false-positive and detection rates, with the command that
//! reproduces them.

use std::fmt;
use std::sync::LazyLock;

/// Symbols of the model: 0 is the boundary (start padding and end of label),
/// 1–26 are `a`–`z`, 27–36 are `0`–`9`, 37 is `-`, 38 is any other byte.
const SYMBOLS: usize = 39;
const BOUNDARY: usize = 0;
const OTHER: u8 = 38;

/// Add-k smoothing: every trigram counts as if seen `K` more times than it
/// was, so that no continuation has probability zero.
const K: f64 = 1.0;

/// Labels shorter than this (in bytes) are never flagged.
pub const MIN_LEN: usize = 8;

/// `(shortest length, threshold)`: a label of at least that many bytes (and
/// fewer than the next row's) is flagged when its score is below the
/// threshold. Each threshold is the 0.5% quantile of out-of-fold scores of
/// legitimate labels of those lengths (docs/dga.md).
const THRESHOLDS: [(usize, f64); 3] = [(MIN_LEN, -3.72), (10, -3.48), (16, -3.26)];

/// The shipped training corpus.
const CORPUS: &str = include_str!("../data/legit-labels.txt");

/// Maps a byte to its symbol (ASCII letters are folded to lower case).
const SYMBOL_OF: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let byte = i as u8;
        table[i] = match byte {
            b'a'..=b'z' => byte - b'a' + 1,
            b'A'..=b'Z' => byte - b'A' + 1,
            b'0'..=b'9' => byte - b'0' + 27,
            b'-' => 37,
            _ => OTHER,
        };
        i += 1;
    }
    table
};

#[inline]
fn symbol(byte: u8) -> usize {
    usize::from(SYMBOL_OF[usize::from(byte)])
}

#[inline]
fn index(a: usize, b: usize, c: usize) -> usize {
    (a * SYMBOLS + b) * SYMBOLS + c
}

/// The threshold for a label of `len` bytes (`len >= MIN_LEN`).
fn threshold(len: usize) -> f64 {
    let mut t = THRESHOLDS[0].1;
    for &(min, value) in &THRESHOLDS {
        if len >= min {
            t = value;
        }
    }
    t
}

/// The labels of the shipped corpus (comment and blank lines skipped).
fn corpus_labels() -> impl Iterator<Item = &'static str> {
    CORPUS
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

static EMBEDDED: LazyLock<DgaModel> = LazyLock::new(|| DgaModel::train(corpus_labels()));

/// A character-trigram model of legitimate domain labels.
pub struct DgaModel {
    /// `ln P(c | a b)` for every trigram, indexed by [`index`].
    log_prob: Box<[f32]>,
    /// How many labels the model was trained on.
    labels: usize,
}

impl fmt::Debug for DgaModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DgaModel")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl DgaModel {
    /// The model trained on the shipped corpus (`data/legit-labels.txt`,
    /// embedded in the binary), built once on first use (a few milliseconds in a
    /// release build).
    pub fn embedded() -> &'static DgaModel {
        &EMBEDDED
    }

    /// Trains on the given labels (surrounding whitespace is ignored, empty
    /// labels are skipped).
    pub fn train<'a>(labels: impl IntoIterator<Item = &'a str>) -> DgaModel {
        let mut counts = vec![0u32; SYMBOLS * SYMBOLS * SYMBOLS];
        let mut trained = 0;
        for label in labels {
            let label = label.trim();
            if label.is_empty() {
                continue;
            }
            trained += 1;
            let (mut a, mut b) = (BOUNDARY, BOUNDARY);
            for &byte in label.as_bytes() {
                let c = symbol(byte);
                counts[index(a, b, c)] += 1;
                (a, b) = (b, c);
            }
            counts[index(a, b, BOUNDARY)] += 1;
        }

        let mut log_prob = vec![0f32; counts.len()].into_boxed_slice();
        for (row, out) in counts
            .chunks_exact(SYMBOLS)
            .zip(log_prob.chunks_exact_mut(SYMBOLS))
        {
            let total: u64 = row.iter().map(|&n| u64::from(n)).sum();
            let denominator = (total as f64 + K * SYMBOLS as f64).ln();
            for (&n, p) in row.iter().zip(out) {
                *p = ((f64::from(n) + K).ln() - denominator) as f32;
            }
        }
        DgaModel {
            log_prob,
            labels: trained,
        }
    }

    /// Average per-character log-probability of `label` (lower = more
    /// random-looking). Labels are lower-case ASCII `[a-z0-9-]`; other bytes
    /// may appear and must not panic.
    ///
    /// The average is over the label's bytes plus the end of the label, in
    /// natural-log units: about -2.5 for a typical legitimate label,
    /// about -4 for uniformly random letters.
    pub fn score(&self, label: &str) -> f64 {
        let bytes = label.as_bytes();
        let (mut a, mut b) = (BOUNDARY, BOUNDARY);
        let mut sum = 0f64;
        for &byte in bytes {
            let c = symbol(byte);
            sum += f64::from(self.log_prob[index(a, b, c)]);
            (a, b) = (b, c);
        }
        sum += f64::from(self.log_prob[index(a, b, BOUNDARY)]);
        sum / (bytes.len() + 1) as f64
    }

    /// `Some(score)` when `label` looks algorithmically generated, `None`
    /// otherwise. Short labels (< 8 chars) and labels that are all digits
    /// (or digits and hyphens, like `144-217-180-114`) or contain `xn--`
    /// are never flagged.
    pub fn is_dga(&self, label: &str) -> Option<f64> {
        let bytes = label.as_bytes();
        if bytes.len() < MIN_LEN
            || bytes.iter().all(|&b| b.is_ascii_digit() || b == b'-')
            || bytes.windows(4).any(|w| w.eq_ignore_ascii_case(b"xn--"))
        {
            return None;
        }
        let score = self.score(label);
        (score < threshold(bytes.len())).then_some(score)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Instant;

    use super::*;

    /// The deterministic split: every fifth label of the shipped corpus is
    /// held out, the other four fifths are for training.
    fn split() -> (Vec<&'static str>, Vec<&'static str>) {
        let mut train = Vec::new();
        let mut held_out = Vec::new();
        for (i, label) in corpus_labels().enumerate() {
            if i % 5 == 4 {
                held_out.push(label);
            } else {
                train.push(label);
            }
        }
        (train, held_out)
    }

    /// Reimplementations of published DGAs, from the public analyses cited
    /// on each. They produce the label only (no TLD). Where a published list
    /// of names exists, `generators_reproduce_published_names` checks the
    /// reimplementation against it.
    mod families {
        /// The Park–Miller "minimal standard" generator, as used by Ramnit.
        pub struct ParkMiller(pub u32);

        impl ParkMiller {
            pub fn next_mod(&mut self, modulus: u32) -> u32 {
                let x = i64::from(self.0);
                let next = 16807 * (x % 127_773) - 2836 * (x / 127_773);
                self.0 = next as u32;
                self.0 % modulus
            }
        }

        /// Conficker.C (2009): 50,000 names a day, each 4 to 9 random
        /// lower-case letters (P. Porras, H. Saidi, V. Yegneswaran, "An
        /// Analysis of Conficker C", SRI International, 2009). Lengths and
        /// alphabet are Conficker.C's; the random numbers come from
        /// Park–Miller, not from Conficker's own generator.
        pub fn conficker_c(seed: u32, n: usize) -> Vec<String> {
            let mut rng = ParkMiller(seed);
            (0..n)
                .map(|_| {
                    let len = 4 + rng.next_mod(6);
                    (0..len)
                        .map(|_| char::from(b'a' + rng.next_mod(26) as u8))
                        .collect()
                })
                .collect()
        }

        /// CryptoLocker (2013): three shift-and-xor registers seeded from the
        /// date, 12–15 letters from `a`–`y`, 1,000 names a day (S. Yazdi,
        /// "A closer look at CryptoLocker's DGA", Fortinet, 2014; M. Rivero
        /// López's reimplementation, 2013).
        pub fn cryptolocker(day: u32, month: u32, year: u32, n: usize) -> Vec<String> {
            const M: u64 = 0xFFFF_FFFF;
            (0..n as u64)
                .map(|z| {
                    let mut d = u64::from(day) * 65537;
                    let mut m = u64::from(month) * 65537;
                    let mut y = (u64::from(year) + z) * 65537;
                    let len = (((d >> 3) ^ (y >> 8) ^ (y >> 11)) & 3) + 12;
                    let mut label = String::new();
                    for _ in 0..len {
                        d = ((((d << 13) & M) >> 19) ^ (((d >> 1) << 13) & M) ^ (d >> 19)) & M;
                        m = ((((m << 2) & M) >> 25) ^ (((m >> 3) << 7) & M) ^ (m >> 25)) & M;
                        y = ((((y << 3) & M) >> 11) ^ (((y >> 4) << 21) & M) ^ (y >> 11)) & M;
                        label.push(char::from(b'a' + ((y ^ m ^ d) % 25) as u8));
                    }
                    label
                })
                .collect()
        }

        /// Necurs (2015–): a 64-bit mixing function over the date, a
        /// sequence number and a per-botnet magic number; 7–21 letters from
        /// `a`–`y`, 2,048 names every four days (J. Bader, "The DGAs of
        /// Necurs", 2015).
        pub fn necurs(year: u64, month: u64, day: u64, magic: u64, n: u64) -> Vec<String> {
            fn mix(mut value: u64) -> u64 {
                let rounds = (value & 0x7F) + 21;
                for i in 0..rounds {
                    value = value.wrapping_add(
                        (value.wrapping_mul(7) ^ (value << 15))
                            .wrapping_add(8 * i)
                            .wrapping_sub(value >> 5),
                    );
                }
                value
            }
            (0..n)
                .map(|sequence| {
                    let mut v = mix(year);
                    v = mix(v.wrapping_add(month + 43690));
                    v = mix(v.wrapping_add(day >> 2));
                    v = mix(v.wrapping_add(sequence));
                    v = mix(v.wrapping_add(magic));
                    let len = v % 15 + 7;
                    let mut label = String::new();
                    for i in 0..len {
                        v = mix(v.wrapping_add(i));
                        label.push(char::from(b'a' + (v % 25) as u8));
                        v = mix(v.wrapping_add(0xAB_BEDF));
                    }
                    label
                })
                .collect()
        }

        /// Ramnit (2010–): Park–Miller draws from a per-campaign seed,
        /// 8–19 letters from `a`–`y` (J. Bader, "The DGA of Ramnit", 2014).
        pub fn ramnit(seed: u32, n: usize) -> Vec<String> {
            let mut rng = ParkMiller(seed);
            (0..n)
                .map(|_| {
                    let seed_a = rng.0;
                    let len = rng.next_mod(12) + 8;
                    let seed_b = rng.0;
                    let label = (0..len)
                        .map(|_| char::from(b'a' + rng.next_mod(25) as u8))
                        .collect();
                    let product = u64::from(seed_a) * u64::from(seed_b);
                    rng.0 = product.wrapping_add(product >> 32) as u32;
                    label
                })
                .collect()
        }

        /// Bamital (2009–2013) named its servers with 32 hex digits, an MD5
        /// digest of a date-derived string (Symantec and Microsoft, Bamital
        /// takedown reports, 2013). This generator hashes `YYYYMMDD-<n>`:
        /// the shape of Bamital's names, not its exact input.
        pub fn bamital_style(year: u32, month: u32, day: u32, n: usize) -> Vec<String> {
            (0..n)
                .map(|i| {
                    let digest = md5(format!("{year:04}{month:02}{day:02}-{i}").as_bytes());
                    digest.iter().map(|b| format!("{b:02x}")).collect()
                })
                .collect()
        }

        /// Tinba (2012–): each 12-letter name is derived from the previous
        /// one and a 16-byte seed string (J. Bader, "New top level domains
        /// for Tinba's DGA", 2015; seeds and first names from samples
        /// published there).
        pub fn tinba(seed: &[u8; 16], first: &str, n: usize) -> Vec<String> {
            let mut previous: Vec<u8> = first.as_bytes().to_vec();
            let seed_sum: u32 = seed.iter().map(|&b| u32::from(b)).sum();
            let mut out = Vec::new();
            for _ in 0..n {
                let mut sum = seed_sum;
                let mut t = seed[15];
                let mut label = Vec::new();
                for i in 0..12 {
                    loop {
                        t = t.wrapping_add(previous[i]);
                        t ^= sum as u8;
                        t = t.wrapping_add(previous[i + 1]);
                        if t > b'a' && t < b'z' {
                            label.push(t);
                            break;
                        }
                        sum += 1;
                    }
                }
                // Only the first 13 bytes of the previous name are read, so
                // the TLD that follows the dot does not matter.
                previous = label.clone();
                previous.extend_from_slice(b".com");
                out.push(String::from_utf8(label).expect("ASCII letters"));
            }
            out
        }

        /// Locky (2016), first DGA: multiply-and-rotate hashing of the date
        /// and a per-sample seed, 5–15 letters from `a`–`y`, eight names
        /// every two days (Forcepoint, "Locky's new DGA", 2016; J. Bader's
        /// reimplementation; configuration of a published sample, seed 62).
        pub fn locky(dates: impl IntoIterator<Item = (u32, u32, u32)>) -> Vec<String> {
            const C1: u32 = 0xB119_24E1;
            const C2: u32 = 0x1BF5;
            const C3: u32 = 0x2710_0001;
            const C4: u32 = 0x2709_A354;
            const SEED: u32 = 62;
            let step = |v: u32| v.wrapping_mul(C1).rotate_right(7);
            let mut out = Vec::new();
            for (year, month, day) in dates {
                let mut t = step(year.wrapping_add(C2));
                t = step(t.wrapping_add(SEED).wrapping_add(C3));
                t = step(t.wrapping_add(day / 2).wrapping_add(C3));
                t = step(t.wrapping_add(month).wrapping_add(C4));
                for nr in 0..8u32 {
                    let nr = nr.rotate_left(21);
                    let s = SEED.rotate_left(17);
                    let mut r =
                        step(nr.wrapping_add(t).wrapping_add(s).wrapping_add(C3)).wrapping_add(C3);
                    let len = r % 11 + 5;
                    let mut label = String::new();
                    for i in 0..len {
                        r = step(r.rotate_left(i)).wrapping_add(C3);
                        label.push(char::from(b'a' + (r % 25) as u8));
                    }
                    out.push(label);
                }
            }
            out
        }

        /// CoreBot (2015): a linear congruential generator seeded from the
        /// date, 12–23 characters from `a`–`y` and `0`–`8` (J. Bader, "The
        /// DGA of CoreBot", 2015; the configuration of the published names).
        pub fn corebot(year: u32, month: u32, day: u32, n: usize) -> Vec<String> {
            // Deliberately without `z` and `9`, as in the original.
            let charset: Vec<u8> = (b'a'..=b'y').chain(b'0'..=b'8').collect();
            let mut r: u32 = 0x1DB9_8930;
            r = r
                .wrapping_add(year)
                .wrapping_add(((1 << 16) + (month << 8)) | day);
            let mut next = move || {
                r = r.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                r
            };
            (0..n)
                .map(|_| {
                    let len = 12 + next() % 12;
                    (0..len)
                        .map(|_| char::from(charset[next() as usize % charset.len()]))
                        .collect()
                })
                .collect()
        }

        /// Symmi's seed for a date: one seed per half month.
        pub fn symmi_seed(year: u32, month: u32, day: u32) -> u32 {
            10000 * (day / 16 * 100 + month) + year + 42
        }

        /// Symmi (2014–): alternating vowels and consonants drawn with the
        /// MSVC `rand()` generator, 8–15 letters, 64 names per half month
        /// (J. Bader, "The DGA of Symmi", 2015). Pronounceable by design.
        pub fn symmi(seed: u32, n: usize) -> Vec<String> {
            let mut state = seed;
            let mut rand = move || {
                state = state.wrapping_mul(214_013).wrapping_add(2_531_011);
                (state >> 16) & 0x7FFF
            };
            let letters: [&[u8]; 2] = [b"aeiouy", b"bcdfghklmnpqrstvwxz"];
            (0..n)
                .map(|_| {
                    let len = 8 + rand() % 8;
                    let mut label = String::new();
                    let mut first = 0;
                    for i in 0..len as usize {
                        if i % 2 == 0 {
                            first = usize::from(rand() & 0x100 != 0);
                        }
                        let s = rand() as usize;
                        let set = letters[(first + i) % 2];
                        // Symmi never picks the last letter of either set.
                        label.push(char::from(set[s % (set.len() - 1)]));
                    }
                    label
                })
                .collect()
        }

        /// MD5 (RFC 1321), for the Bamital-style generator.
        pub fn md5(message: &[u8]) -> [u8; 16] {
            const SHIFT: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
            let k: Vec<u32> = (1..=64)
                .map(|i| (f64::from(i).sin().abs() * 4_294_967_296.0) as u32)
                .collect();
            let mut data = message.to_vec();
            let bits = (message.len() as u64).wrapping_mul(8);
            data.push(0x80);
            while data.len() % 64 != 56 {
                data.push(0);
            }
            data.extend_from_slice(&bits.to_le_bytes());
            let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
            for chunk in data.chunks_exact(64) {
                let w: Vec<u32> = chunk
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let [mut a, mut b, mut c, mut d] = h;
                for i in 0..64 {
                    let (f, g) = match i / 16 {
                        0 => ((b & c) | (!b & d), i),
                        1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                        2 => (b ^ c ^ d, (3 * i + 5) % 16),
                        _ => (c ^ (b | !d), (7 * i) % 16),
                    };
                    let rotated = a
                        .wrapping_add(f)
                        .wrapping_add(k[i])
                        .wrapping_add(w[g])
                        .rotate_left(SHIFT[i / 16 * 4 + i % 4]);
                    (a, d, c) = (d, c, b);
                    b = b.wrapping_add(rotated);
                }
                for (x, y) in h.iter_mut().zip([a, b, c, d]) {
                    *x = x.wrapping_add(y);
                }
            }
            let mut out = [0u8; 16];
            for (bytes, word) in out.chunks_exact_mut(4).zip(h) {
                bytes.copy_from_slice(&word.to_le_bytes());
            }
            out
        }
    }

    use families::*;

    /// One generated family and the detection rate asserted for it: the
    /// rate the embedded model measured (docs/dga.md), rounded down.
    struct Family {
        name: &'static str,
        labels: Vec<String>,
        floor: f64,
    }

    /// Drops repeated labels, keeping the first of each.
    fn unique(labels: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut seen = HashSet::new();
        labels
            .into_iter()
            .filter(|l| seen.insert(l.clone()))
            .collect()
    }

    /// A few hundred labels of each family, from fixed seeds and dates.
    fn families() -> Vec<Family> {
        vec![
            Family {
                name: "conficker.c",
                labels: unique(
                    [0x1234_5678u32, 0x0BAD_CAFE]
                        .map(|s| conficker_c(s, 200))
                        .concat(),
                ),
                floor: 0.24,
            },
            Family {
                name: "cryptolocker",
                labels: unique(
                    [(19, 12, 2013), (1, 3, 2014), (15, 6, 2014)]
                        .map(|(d, m, y)| cryptolocker(d, m, y, 100))
                        .concat(),
                ),
                floor: 0.97,
            },
            Family {
                name: "necurs",
                labels: unique(
                    [(2015, 8, 28), (2016, 5, 12)]
                        .map(|(y, m, d)| necurs(y, m, d, 9, 150))
                        .concat(),
                ),
                floor: 0.86,
            },
            Family {
                name: "ramnit",
                labels: unique(
                    [0x7915_9C10u32, 0xEF21_4BBF, 0x2848_8EEA]
                        .map(|s| ramnit(s, 100))
                        .concat(),
                ),
                floor: 0.94,
            },
            Family {
                name: "bamital-style",
                labels: unique(
                    [(2012, 6, 1), (2012, 9, 30)]
                        .map(|(y, m, d)| bamital_style(y, m, d, 150))
                        .concat(),
                ),
                floor: 1.0,
            },
            Family {
                name: "tinba",
                labels: unique(
                    [
                        tinba(b"oGkS3w3sGGOGG7oc", "ssrgwnrmgrxe.com", 150),
                        tinba(b"jc74FlUna852Ji9o", "blackfreeqazyio.cc", 150),
                    ]
                    .concat(),
                ),
                floor: 0.98,
            },
            Family {
                name: "locky",
                // Locky's names change every other day.
                labels: unique(locky((0..40).map(|i| (2016, 1 + i / 14, 1 + 2 * (i % 14))))),
                floor: 0.64,
            },
            Family {
                name: "corebot",
                labels: unique(
                    [(2015, 9, 8), (2016, 1, 8)]
                        .map(|(y, m, d)| corebot(y, m, d, 150))
                        .concat(),
                ),
                floor: 1.0,
            },
            Family {
                name: "symmi",
                labels: unique(
                    [
                        (2015, 8, 16),
                        (2015, 9, 1),
                        (2015, 9, 16),
                        (2015, 10, 1),
                        (2015, 10, 16),
                    ]
                    .map(|(y, m, d)| symmi(symmi_seed(y, m, d), 64))
                    .concat(),
                ),
                floor: 0.40,
            },
        ]
    }

    fn flagged(model: &DgaModel, labels: &[impl AsRef<str>]) -> usize {
        labels
            .iter()
            .filter(|l| model.is_dga(l.as_ref()).is_some())
            .count()
    }

    fn rate(model: &DgaModel, labels: &[impl AsRef<str>]) -> f64 {
        flagged(model, labels) as f64 / labels.len() as f64
    }

    fn eligible<S: AsRef<str>>(labels: &[S]) -> Vec<&str> {
        labels
            .iter()
            .map(AsRef::as_ref)
            .filter(|l| l.len() >= MIN_LEN)
            .collect()
    }

    #[test]
    fn md5_matches_rfc_1321() {
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    /// The reimplementations give the names the analyses published.
    #[test]
    fn generators_reproduce_published_names() {
        let cryptolocker = cryptolocker(19, 12, 2013, 1000);
        for name in [
            "sljjjupfgagolpg",
            "vxagtvsyqxtrfcm",
            "wxphewjnfhlyyjj",
            "xckjffnjivafxen",
        ] {
            assert!(cryptolocker.iter().any(|l| l == name), "{name}");
        }
        assert_eq!(
            necurs(2015, 8, 28, 9, 4),
            [
                "nccojqvabqvkiwhj",
                "hoedwwwywnmmbi",
                "aeaeneaoinf",
                "ccecggc"
            ]
        );
        assert_eq!(
            ramnit(0x7915_9C10, 3),
            ["knpqxlxcwtlvgrdyhd", "nvlyffua", "hgyudheedieibxy"]
        );
        assert_eq!(
            tinba(b"jc74FlUna852Ji9o", "blackfreeqazyio.cc", 3),
            ["nvfowikhevmy", "sjhuqlwrqhqx", "pxqgonyogeee"]
        );
        assert_eq!(
            locky([(2016, 2, 28)]),
            [
                "gegjiimqmlgtdmk",
                "pccibcjncnhjn",
                "rddipikmrap",
                "mmhmkqfc",
                "vkcims",
                "qtysmobytagnrv",
                "suhpqiumpjsv",
                "cscffbwbhs"
            ]
        );
        assert_eq!(
            corebot(2015, 9, 8, 3),
            ["lkhylm0mhyfuhg", "s63234wluv5v365bwp5", "afe6mfy23xcxgfa"]
        );
        assert_eq!(
            symmi(symmi_seed(2015, 8, 16), 3),
            ["ogovugtuipawi", "afowkaupbabe", "ipkureleakm"]
        );
    }

    #[test]
    fn detects_generated_families() {
        let model = DgaModel::embedded();
        for family in families() {
            assert!(family.labels.len() >= 250, "{}", family.name);
            let rate = rate(model, &family.labels);
            assert!(
                rate >= family.floor,
                "{}: detected {rate:.4} < floor {}",
                family.name,
                family.floor
            );
        }
    }

    /// Trained on four fifths of the corpus, the model flags at most 0.5% of
    /// the held-out fifth (counting only labels long enough to be flagged).
    #[test]
    fn held_out_false_positive_rate() {
        let (train, held_out) = split();
        let model = DgaModel::train(train);
        let held_out = eligible(&held_out);
        let fpr = rate(&model, &held_out);
        assert!(fpr <= 0.005, "held-out false-positive rate {fpr:.5}");
        let fpr = rate(
            DgaModel::embedded(),
            &eligible(&corpus_labels().collect::<Vec<_>>()),
        );
        assert!(fpr <= 0.005, "training-list false-positive rate {fpr:.5}");
    }

    /// Names that councils' networks look up every day.
    #[test]
    fn council_names_are_not_flagged() {
        const BENIGN: &[&str] = &[
            "gov",
            "nhs",
            "nhsmail",
            "bbc",
            "microsoft",
            "microsoftonline",
            "office365",
            "office",
            "outlook",
            "live",
            "windowsupdate",
            "windows",
            "msftconnecttest",
            "googleapis",
            "gstatic",
            "googleusercontent",
            "google",
            "youtube",
            "akamaiedge",
            "akamaihd",
            "akamaized",
            "edgekey",
            "cloudflare",
            "cloudfront",
            "amazonaws",
            "azureedge",
            "azurewebsites",
            "sharepoint",
            "onedrive",
            "teams",
            "skype",
            "zoom",
            "salesforce",
            "force",
            "servicenow",
            "adobe",
            "apple",
            "icloud",
            "mozilla",
            "firefox",
            "digicert",
            "letsencrypt",
            "lancashire",
            "northyorks",
            "cornwall",
            "westminster",
            "manchester",
            "birmingham",
            "leicestershire",
            "nottinghamshire",
            "buckinghamshire",
            "hertfordshire",
            "worcestershire",
            "gloucestershire",
            "cambridgeshire",
            "northamptonshire",
            "oxfordshire",
            "staffordshire",
            "warwickshire",
            "derbyshire",
            "lincolnshire",
            "wiltshire",
            "somerset",
            "eastsussex",
            "westsussex",
            "kent",
            "essex",
            "surreycc",
            "hampshire",
            "royalgreenwich",
            "towerhamlets",
            "kingston",
            "southwark",
            "lambeth",
            "hackney",
            "islington",
            "camden",
            "newcastle",
            "sunderland",
            "middlesbrough",
            "gateshead",
            "wolverhampton",
            "sandwell",
            "walsall",
            "dudley",
            "stockport",
            "trafford",
            "tameside",
            "wakefield",
            "kirklees",
            "calderdale",
            "barnsley",
            "rotherham",
            "doncaster",
            "sheffield",
            "leeds",
            "bradford",
            "liverpool",
            "knowsley",
            "wirral",
            "sefton",
            "stoke",
            "cheshirewestandchester",
            "cheshireeast",
            "shropshire",
            "herefordshire",
            "cumbria",
            "northumberland",
            "durham",
            "edinburgh",
            "glasgow",
            "aberdeenshire",
            "highland",
            "cardiff",
            "swansea",
            "gwynedd",
            "belfastcity",
            "civilservice",
            "hmrc",
            "dwp",
            "gchq",
            "ncsc",
            "ons",
            "parliament",
            "police",
            "met",
            "fire",
            "ambulance",
            "ukri",
            "jisc",
            "ja",
            "sophos",
            "mimecast",
            "proofpoint",
            "crowdstrike",
            "sentinelone",
            "okta",
            "duosecurity",
            "citrix",
            "vmware",
            "cisco",
            "webex",
            "gotomeeting",
            "docusign",
            "dropbox",
            "box",
            "slack",
            "zendesk",
            "atlassian",
            "github",
            "gitlab",
            "mailchimp",
            "sendgrid",
            "twilio",
            "govdelivery",
            "gov-uk",
            "capita",
            "civica",
            "idox",
            "northgate",
            "agilisys",
            "liquidlogic",
            "mosaic",
            "eclipse",
            "talktalk",
            "bt",
            "sky",
            "virginmedia",
            "vodafone",
            "ee",
            "three",
            "o2",
            "wikipedia",
            "linkedin",
            "facebook",
            "instagram",
            "twitter",
            "whatsapp",
            "tiktok",
            "netflix",
            "spotify",
            "paypal",
            "barclays",
            "hsbc",
            "lloydsbank",
            "natwest",
            "santander",
            "nationwide",
            "tesco",
            "sainsburys",
            "asda",
            "amazon",
            "ebay",
            "argos",
            "royalmail",
            "dpd",
            "hermesworld",
            "evri",
            "trainline",
            "nationalrail",
            "tfl",
            "metoffice",
        ];
        let model = DgaModel::embedded();
        for name in BENIGN {
            assert_eq!(
                model.is_dga(name),
                None,
                "{name} score {}",
                model.score(name)
            );
        }
    }

    #[test]
    fn exemptions() {
        let model = DgaModel::embedded();
        // Random-looking, but too short, digits only, or IDN.
        for label in [
            "qzxjkv",
            "xqzvkjw",
            "8473625190",
            "144-217-180-114",
            "xn--qzxjkvbwpfhgt",
        ] {
            assert_eq!(model.is_dga(label), None, "{label}");
        }
        // The same letters, long enough, are flagged, with their score.
        let label = "qzxjkvbwpfhgt";
        assert_eq!(model.is_dga(label), Some(model.score(label)));
        // Upper-case ASCII is folded.
        assert_eq!(model.score("QzXjKvBwPfHgT"), model.score(label));
    }

    #[test]
    fn the_embedded_model_is_trained_on_the_whole_corpus() {
        // build time is measured by the ignored `report` test, never asserted
        let model = DgaModel::train(corpus_labels());
        assert_eq!(model.labels, 100_000);
        assert!(format!("{model:?}").contains("100000"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(label in "\\PC{0,80}") {
            let model = DgaModel::embedded();
            let score = model.score(&label);
            proptest::prop_assert!(score.is_finite() && score < 0.0);
            if let Some(s) = model.is_dga(&label) {
                proptest::prop_assert_eq!(s, score);
            }
        }

        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let label = String::from_utf8_lossy(&bytes);
            let model = DgaModel::embedded();
            proptest::prop_assert!(model.score(&label).is_finite());
            let _ = model.is_dga(&label);
        }
    }

    /// Prints the figures in docs/dga.md:
    ///
    /// `cargo test -p parapet-detect --release --lib dga::tests::report -- --ignored --nocapture`
    #[test]
    #[ignore = "prints the figures for docs/dga.md"]
    fn report() {
        let all: Vec<&str> = corpus_labels().collect();
        let (train, held_out) = split();

        // Thresholds: out-of-fold scores of the training four fifths (each
        // quarter scored by a model trained on the other three), 0.5%
        // quantile per length band.
        let mut out_of_fold: Vec<(usize, f64)> = Vec::new();
        for fold in 0..4 {
            let model = DgaModel::train(
                train
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 4 != fold)
                    .map(|(_, l)| *l),
            );
            out_of_fold.extend(
                train
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 4 == fold)
                    .map(|(_, l)| (l.len(), model.score(l))),
            );
        }
        println!("thresholds (0.5% quantile of out-of-fold scores, nearest rank):");
        for (lo, hi) in [(8, 9), (10, 15), (16, usize::MAX)] {
            let mut scores: Vec<f64> = out_of_fold
                .iter()
                .filter(|(n, _)| (lo..=hi).contains(n))
                .map(|(_, s)| *s)
                .collect();
            scores.sort_by(f64::total_cmp);
            let q = scores[(scores.len() as f64 * 0.005) as usize];
            let band = if hi == usize::MAX {
                format!("{lo}+")
            } else {
                format!("{lo}-{hi}")
            };
            println!("  length {band}: n={} threshold {q:.3}", scores.len());
        }
        println!("  in use: {THRESHOLDS:?}");

        let start = Instant::now();
        let embedded = DgaModel::train(all.iter().copied());
        println!("\ntraining on the full corpus: {:?}", start.elapsed());
        let model80 = DgaModel::train(train.iter().copied());

        let start = Instant::now();
        let mut hits = 0;
        for _ in 0..10 {
            hits += flagged(&embedded, &all);
        }
        let per_label = start.elapsed() / (10 * all.len() as u32);
        println!("is_dga: {per_label:?} per label ({hits} hits)");

        println!("\nfalse positives (flagged / labels):");
        for (name, model, labels) in [
            ("training list, embedded model", &embedded, &all),
            ("held-out 20%, model of the other 80%", &model80, &held_out),
        ] {
            let long = eligible(labels);
            let n = flagged(model, labels);
            println!(
                "  {name}: {n} / {} = {:.3}% of all labels, {n} / {} = {:.3}% of labels >= {MIN_LEN} chars",
                labels.len(),
                100.0 * n as f64 / labels.len() as f64,
                long.len(),
                100.0 * n as f64 / long.len() as f64
            );
        }

        println!("\ndetection (embedded model; 80% model in brackets):");
        for family in families() {
            let long = eligible(&family.labels);
            println!(
                "  {:<14} {:>4} labels: {:>6.2}% ({:>6.2}%); of the {:>3} >= {MIN_LEN} chars: {:>6.2}%",
                family.name,
                family.labels.len(),
                100.0 * rate(&embedded, &family.labels),
                100.0 * rate(&model80, &family.labels),
                long.len(),
                100.0 * rate(&embedded, &long),
            );
        }

        let mut fp: Vec<(f64, &str)> = held_out
            .iter()
            .filter_map(|l| model80.is_dga(l).map(|s| (s, *l)))
            .collect();
        fp.sort_by(|a, b| a.0.total_cmp(&b.0));
        println!("\nheld-out labels flagged:");
        for (score, label) in fp {
            println!("  {score:.3} {label}");
        }
        let mut missed: Vec<String> = families()
            .into_iter()
            .filter(|f| f.name != "conficker.c" && f.name != "symmi")
            .flat_map(|f| f.labels)
            .filter(|l| l.len() >= MIN_LEN && embedded.is_dga(l).is_none())
            .collect();
        missed.truncate(40);
        println!("\nsome missed labels >= {MIN_LEN} chars: {missed:?}");
    }
}
