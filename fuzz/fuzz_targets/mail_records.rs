//! Fuzzes the Mail Check record parsers (SPF, DMARC, DKIM) and their
//! record-level checks: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parapet_mailcheck::{dkim, dmarc, spf};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let (Some(r), _) = spf::parse(&text) {
        let _ = spf::check_record(&r);
    }
    let with_prefix = format!("v=spf1 {text}");
    if let (Some(r), _) = spf::parse(&with_prefix) {
        let _ = spf::check_record(&r);
    }
    if let (Some(r), _) = dmarc::parse(&text) {
        let _ = dmarc::check(&r);
        let _ = dmarc::external_destinations(&r, "example.gov.uk");
    }
    if let (Some(k), _) = dkim::parse(&text) {
        let _ = dkim::check(&k);
    }
});
