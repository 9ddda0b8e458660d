//! Fuzzes the DMARC aggregate / TLS-RPT report parser (gzip, zip, MIME, XML
//! and JSON containers): no input may panic.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use parapet_mailcheck::report;

static HOOK: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // mail-parser 0.11 has debug_assert!s that malformed MIME trips;
    // report/container.rs catches those panics and returns an error.
    // libfuzzer's panic hook would abort before the unwind reaches that
    // catch, so let panics raised inside mail-parser unwind; every other
    // panic still aborts.
    HOOK.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_mail_parser = info
                .location()
                .is_some_and(|l| l.file().contains("/mail-parser-"));
            if !in_mail_parser {
                fuzzer_hook(info);
            }
        }));
    });
    let _ = report::parse_bytes("fuzz", data);
});
