//! Test inputs shared by the tests of every report module: the sample
//! reports under testdata/dmarc, containers built on the fly (gzip, zip,
//! e-mail) and a minimal aggregate report to vary.

use std::io::{Cursor, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{AggregateReport, Parsed, ReportError, TlsReport, parse_bytes};

pub(super) const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/dmarc");
pub(super) const LARGE: &str = "aggregate/!large-example.com!1711897200!1711983600.xml";
pub(super) const NICE: &str = "extract_report/nice-input.xml";

pub(super) fn read(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub(super) fn parse(rel: &str) -> Result<Vec<Parsed>, ReportError> {
    parse_bytes(rel, &read(rel))
}

pub(super) fn one_dmarc(rel: &str) -> AggregateReport {
    match parse(rel).unwrap_or_else(|e| panic!("{e}")).as_slice() {
        [Parsed::Dmarc(r)] => r.clone(),
        other => panic!("{rel}: expected one aggregate report, got {other:?}"),
    }
}

pub(super) fn one_tls(rel: &str) -> TlsReport {
    match parse(rel).unwrap_or_else(|e| panic!("{e}")).as_slice() {
        [Parsed::TlsRpt(r)] => r.clone(),
        other => panic!("{rel}: expected one TLS report, got {other:?}"),
    }
}

pub(super) fn reason(rel: &str) -> String {
    match parse(rel) {
        Ok(v) => panic!("{rel}: parsed, expected an error: {v:?}"),
        Err(e) => {
            assert_eq!(e.file, rel);
            e.reason
        }
    }
}

pub(super) fn str_reason(xml: &str) -> String {
    match parse_bytes("t.xml", xml.as_bytes()) {
        Ok(v) => panic!("parsed, expected an error: {v:?}"),
        Err(e) => e.reason,
    }
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(super) fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A multipart e-mail with a text part and one attachment.
pub(super) fn eml(ctype: &str, encoding: &str, name: &str, body: &str) -> Vec<u8> {
    format!(
        "From: reporter@example.net\r\nTo: rua@example.gov.uk\r\n\
         Subject: Report domain: example.com Submitter: example.net\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate report.\r\n\
         --b1\r\nContent-Type: {ctype}; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: {encoding}\r\n\r\n{body}\r\n--b1--\r\n"
    )
    .into_bytes()
}

pub(super) fn b64(data: &[u8]) -> String {
    let s = STANDARD.encode(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

pub(super) fn minimal(metadata: &str, policy: &str, record: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata>{metadata}</report_metadata>\
         <policy_published>{policy}</policy_published><record>{record}</record></feedback>"
    )
}

pub(super) const META: &str = "<org_name>Org</org_name><email>r@example.net</email>\
    <report_id>42</report_id><date_range><begin>100</begin><end>200</end></date_range>";
pub(super) const POLICY: &str = "<domain>example.com</domain><p>reject</p>";
pub(super) const RECORD: &str = "<row><source_ip>192.0.2.1</source_ip><count>3</count>\
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>\
    </policy_evaluated></row><identifiers><header_from>example.com</header_from>\
    </identifiers><auth_results><spf><domain>example.com</domain><result>pass</result>\
    </spf></auth_results>";
