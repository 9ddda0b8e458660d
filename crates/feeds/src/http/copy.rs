//! The last good copy of a URL feed on disk, and what is known of its
//! fetches: `<dir>/<name>` holds the body that last parsed, `<dir>/<name>.json`
//! its validators and the fetch history. Both are replaced atomically
//! (temporary file, fsync, rename, fsync of the folder), so a crash leaves
//! the old version or the new one, never half of one. The state names the
//! body's length and SHA-256, so a body and state that do not belong
//! together are noticed and the next fetch asks for the whole feed again.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Validators;

/// What is known of a URL feed's fetches, kept beside its copy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FetchState {
    /// The URL configured when the copy was fetched, and the format it
    /// parsed as: a copy kept for another URL or format is fetched afresh.
    pub url: String,
    pub format: String,
    /// The validators of the copy on disk.
    pub validators: Validators,
    /// Length and SHA-256 of the copy on disk.
    pub bytes: u64,
    pub sha256: String,
    /// Entries in the copy on disk.
    pub entries: u64,
    /// Unix seconds: the last attempt, the last success, the last new version.
    pub last_fetch: u64,
    pub last_success: u64,
    pub last_change: u64,
    /// The last attempt's error; `None` once a fetch succeeds.
    pub last_error: Option<String>,
    pub last_error_at: u64,
    pub fetches: u64,
    pub failures: u64,
}

/// Where one feed's copy lives.
#[derive(Debug, Clone)]
pub struct Copy {
    dir: PathBuf,
    name: String,
}

/// Whether `name` can name a file of its own: letters, digits, `-`, `_`,
/// `.`, not starting with a dot, at most 100 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Copy {
    /// The copy of feed `name` in `dir` (e.g. `<store path>/feeds`).
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// The body's file, for the loader to read like any feed file.
    pub fn body_path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.name))
    }

    /// The state on disk; the default (nothing known) when there is none
    /// or it does not parse.
    pub fn read_state(&self) -> FetchState {
        std::fs::read(self.state_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Whether the body on disk is the one `state` describes (by length:
    /// the loader checks the content when it parses it).
    pub fn holds(&self, state: &FetchState) -> bool {
        std::fs::metadata(self.body_path()).is_ok_and(|m| m.len() == state.bytes)
            && !state.sha256.is_empty()
    }

    pub fn read_body(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.body_path())
    }

    /// Replaces the body.
    pub fn write_body(&self, bytes: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.dir, &self.name, bytes)
    }

    /// Replaces the state.
    pub fn write_state(&self, state: &FetchState) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        write_atomically(&self.dir, &format!("{}.json", self.name), &json)
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Writes `dir/name` so that it holds the old content or the new, whatever
/// happens: a temporary file beside it, synced, renamed over it, and the
/// folder synced so that the rename itself survives a crash.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dir.join(name))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_and_state_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let copy = Copy::new(&dir.path().join("feeds"), "urlhaus");
        assert_eq!(copy.read_state(), FetchState::default());
        let body = b"evil.test\n";
        copy.write_body(body).unwrap();
        let state = FetchState {
            url: "https://h.test/x".into(),
            validators: Validators {
                etag: Some("\"v1\"".into()),
                last_modified: None,
            },
            bytes: body.len() as u64,
            sha256: sha256_hex(body),
            entries: 1,
            ..FetchState::default()
        };
        assert!(!copy.holds(&FetchState::default()));
        copy.write_state(&state).unwrap();
        assert_eq!(copy.read_state(), state);
        assert!(copy.holds(&state));
        assert_eq!(copy.read_body().unwrap(), body);
        // no temporary file is left behind
        let names: Vec<_> = std::fs::read_dir(dir.path().join("feeds"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // a body that no longer matches its state is noticed
        copy.write_body(b"other.test\nmore.test\n").unwrap();
        assert!(!copy.holds(&state));
    }

    #[test]
    fn names_that_can_be_files() {
        assert!(valid_name("urlhaus"));
        assert!(valid_name("abuse.ch-hosts_1"));
        for bad in ["", ".hidden", "a/b", "..", "a b", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
