//! Frozen quarters: what `quarter_kpis` stores for an ended quarter must
//! stay readable by every later build.

use parapet_assurance::frozen::quarter_kpis;
use parapet_assurance::kpi::Settings;

use crate::estate::{self, QUARTER, TENANT};

/// The body stored for 2021-22-Q2 before snapshots had a version.
const FROZEN_V0: &str = "testdata/assurance/frozen-v0-2021-22-Q2.json";

/// Writes [`FROZEN_V0`]: the exact body `quarter_kpis` hands the store when
/// it freezes the estate's 2021-22-Q2 (`serde_json::to_string` of the
/// working `KpiReport`). Run once, by hand, at the build whose format it
/// records:
/// `cargo test -p parapet-assurance --test it -- --ignored write_frozen_v0`.
#[test]
#[ignore = "writes a fixture; run by hand"]
fn write_frozen_v0() {
    let mut store = estate::northshire();
    let q = QUARTER.parse().unwrap();
    let report = quarter_kpis(&mut store, TENANT, q, &Settings::default(), estate::now()).unwrap();
    assert!(!report.frozen, "computed now, frozen from now on");
    let (_, body) = &store.snapshots[&(TENANT.to_string(), QUARTER.to_string())];
    let path = estate::repo_root().join(FROZEN_V0);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
}
