//! The stored form of a frozen quarter: what `kpi_snapshots` holds for
//! every ended quarter of every council, and must read back for as long as
//! a council keeps its database.
//!
//! It has its own types ([`v1`]) rather than a derive on the working
//! [`KpiReport`], so the working type can be renamed and reshaped while
//! every stored quarter keeps its meaning; the JSON that `parapet kpi` and
//! the API print is a view of `KpiReport` and may change with it.
//!
//! Each body carries a `"version"`. Bodies stored before there was one are
//! version 1: v1 has exactly their keys (testdata/assurance/ holds one such
//! body, written by the build before this module). A later format is a new
//! module beside [`v1`] and a new [`FrozenQuarter`] variant; the old ones
//! stay, so old bodies still read.

pub mod v1;
pub mod v2;

use serde::{Deserialize, Serialize};

use crate::kpi::KpiReport;

/// The version new snapshots are written in.
pub const CURRENT_VERSION: u64 = 2;

/// A frozen quarter in one of the stored versions.
#[derive(Debug, Clone, PartialEq)]
pub enum FrozenQuarter {
    V1(v1::SnapshotV1),
    /// With the "no data" state.
    V2(v2::SnapshotV2),
}

/// Why a stored body is not a frozen quarter this build can read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Written by a newer build (or not by Parapet): reading it as a known
    /// version could mis-read figures a committee has already seen.
    #[error(
        "snapshot version {0} is not one this build reads (the newest it knows is {CURRENT_VERSION})"
    )]
    UnknownVersion(u64),
}

/// Only the version key; the rest of the body is skipped.
#[derive(Deserialize)]
struct VersionTag {
    version: Option<u64>,
}

/// A body with its version key first.
#[derive(Serialize)]
struct Tagged<'a, T> {
    version: u64,
    #[serde(flatten)]
    body: &'a T,
}

impl FrozenQuarter {
    /// Reads a stored body, in whichever version it was written.
    pub fn parse(body: &str) -> Result<Self, SnapshotError> {
        let tag: VersionTag = serde_json::from_str(body)?;
        match tag.version {
            // no key: stored before snapshots were versioned, which v1 mirrors
            None | Some(1) => Ok(Self::V1(serde_json::from_str(body)?)),
            Some(2) => Ok(Self::V2(serde_json::from_str(body)?)),
            Some(v) => Err(SnapshotError::UnknownVersion(v)),
        }
    }

    /// The body to store, with its `"version"`.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Self::V1(s) => serde_json::to_string(&Tagged {
                version: self.version(),
                body: s,
            }),
            Self::V2(s) => serde_json::to_string(&Tagged {
                version: self.version(),
                body: s,
            }),
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Self::V1(_) => 1,
            Self::V2(_) => 2,
        }
    }
}

/// Freezes a report in the current version.
impl From<&KpiReport> for FrozenQuarter {
    fn from(r: &KpiReport) -> Self {
        Self::V2(r.into())
    }
}

impl From<FrozenQuarter> for KpiReport {
    fn from(f: FrozenQuarter) -> Self {
        match f {
            FrozenQuarter::V1(s) => s.into(),
            FrozenQuarter::V2(s) => s.into(),
        }
    }
}
