//! Fuzzes zone-transfer message handling: a stream of length-prefixed
//! messages read as the answer to an AXFR or an IXFR (header, question,
//! records, the RFC 1995 layouts, limits), then what it brought rendered
//! as RPZ text and read back as rules, and the NOTIFY reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parapet_feeds::xfr::client::{Limits, Transfer, read_stream};
use parapet_feeds::xfr::{delta, msg};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let _ = msg::notify_zone(stream);
    let zone = b"\x03rpz\x04test";
    // the query ID is the stream's first message's, so the header check
    // does not stop every input at once
    let id = stream.get(2..4).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let have = (mode & 1 == 1).then_some(u32::from(mode >> 1));
    let limits = Limits {
        max_bytes: 1 << 20,
        max_messages: 64,
        ..Limits::default()
    };
    if let Ok(Transfer::Full(z)) = read_stream(id, zone, have, stream, limits) {
        let mut text = Vec::new();
        z.render(&mut text);
        let _ = delta::rules_of(&text, "fuzz");
    }
});
