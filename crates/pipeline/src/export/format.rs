//! How an exported record is written: JSON, CEF (ArcSight Common Event
//! Format), RFC 5424 syslog framing and the Splunk HTTP Event Collector
//! envelope. The CEF mapping is documented field by field in docs/siem.md.

use parapet_core::alert::{Alert, Severity};
use parapet_store::StoredEvent;
use serde_json::{Value, json};

/// One thing sent to a destination.
#[derive(Debug, Clone)]
pub enum Record {
    Alert(Alert),
    Query(StoredEvent),
}

impl Record {
    pub fn tenant(&self) -> &str {
        match self {
            Record::Alert(a) => &a.tenant,
            Record::Query(q) => &q.tenant,
        }
    }

    /// When it happened, unix milliseconds: an alert's first sighting, a
    /// query's arrival.
    pub fn time_ms(&self) -> i64 {
        match self {
            Record::Alert(a) => a.first_seen,
            Record::Query(q) => q.time,
        }
    }

    /// The `sourcetype` of a Splunk event, and the syslog MSGID.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Alert(_) => "alert",
            Record::Query(_) => "query",
        }
    }

    /// The JSON form: an alert as the API shows it, a query event as
    /// stored (the client as its pseudonym), each with a `type`.
    pub fn to_json(&self) -> Value {
        match self {
            Record::Alert(a) => {
                let mut v = a.to_json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("type".into(), json!("alert"));
                }
                v
            }
            Record::Query(q) => json!({
                "type": "query",
                "id": q.id,
                "time": rfc3339_ms(q.time),
                "tenant": q.tenant,
                "client": q.client,
                "qname": q.qname,
                "qtype": qtype_name(q.qtype),
                "rcode": q.rcode.map(rcode_name),
                "action": q.action,
                "feed": q.feed,
                "node": q.node,
                "queries": q.queries,
                "last_time": q.last_time.map(rfc3339_ms),
            }),
        }
    }

    /// The syslog severity (RFC 5424 numbering): an alert's by its
    /// severity (high: err), a policy action `warning`, any other query `info`.
    fn syslog_severity(&self) -> u8 {
        match self {
            Record::Alert(a) => match a.severity {
                Severity::High => 3,
                Severity::Medium => 4,
                Severity::Low => 5,
                Severity::Info => 6,
            },
            Record::Query(q) if is_policy_action(&q.action) => 4,
            Record::Query(_) => 6,
        }
    }
}

fn is_policy_action(action: &str) -> bool {
    matches!(action, "blocked" | "nodata" | "dropped" | "local_data")
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of unix milliseconds (RFC 3339, UTC).
pub fn rfc3339_ms(ms: i64) -> String {
    let s = parapet_core::calendar::format_datetime(ms.div_euclid(1000));
    format!("{}.{:03}Z", &s[..s.len() - 1], ms.rem_euclid(1000))
}

fn qtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => format!("TYPE{n}"),
    }
}

fn rcode_name(rc: u8) -> String {
    match rc {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

/// The facility of every message: local0 (16), the usual one for an
/// application's security events that a SIEM collector routes by.
const FACILITY: u8 = 16;

/// An RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME parapet PROCID MSGID -
/// MSG`, with no structured data (everything is in MSG, as JSON or CEF).
pub fn rfc5424(r: &Record, hostname: &str, msg: &str) -> Vec<u8> {
    let pri = FACILITY * 8 + r.syslog_severity();
    format!(
        "<{pri}>1 {} {} parapet {} {} - {msg}",
        rfc3339_ms(r.time_ms()),
        syslog_header_field(hostname, 255),
        std::process::id(),
        r.kind(),
    )
    .into_bytes()
}

/// A header field as RFC 5424 allows: printable US-ASCII without spaces,
/// at most `max` characters, `-` when empty.
fn syslog_header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

/// CEF severity (0-10) of a Parapet severity.
fn cef_severity(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
    }
}

/// A CEF header field: `\` and `|` escaped, line breaks made spaces.
fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// A CEF extension value: `\` and `=` escaped, line breaks as `\n`/`\r`.
fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// The CEF line of a record (docs/siem.md has the mapping).
pub fn cef(r: &Record) -> String {
    let (sig, name, sev, ext) = match r {
        Record::Alert(a) => {
            let mut ext: Vec<(&str, String)> = vec![
                ("rt", a.last_seen.to_string()),
                ("start", a.first_seen.to_string()),
                ("end", a.last_seen.to_string()),
                ("externalId", a.id.to_string()),
                ("cat", "alert".into()),
                ("dhost", a.domain.clone()),
                ("cnt", a.count.to_string()),
                ("msg", a.reason.clone()),
                ("cs1Label", "tenant".into()),
                ("cs1", a.tenant.clone()),
                ("cs2Label", "status".into()),
                ("cs2", a.status.as_str().into()),
                ("cs3Label", "feeds".into()),
                ("cs3", a.feeds.join(",")),
                ("cs4Label", "nodes".into()),
                ("cs4", a.nodes.join(",")),
                ("cn1Label", "clients".into()),
                ("cn1", a.clients.to_string()),
            ];
            if let Some(e) = a.evidence.first() {
                ext.push(("cs5Label", "evidence".into()));
                ext.push(("cs5", e.clone()));
            }
            (
                a.rule.clone(),
                format!("{} alert for {}", a.rule, a.domain),
                cef_severity(a.severity),
                ext,
            )
        }
        Record::Query(q) => {
            let mut ext: Vec<(&str, String)> = vec![
                ("rt", q.time.to_string()),
                ("externalId", q.id.to_string()),
                ("cat", "dns".into()),
                ("act", q.action.clone()),
                ("dhost", q.qname.clone()),
                ("cnt", q.queries.to_string()),
                ("dvchost", q.node.clone()),
                ("cs1Label", "tenant".into()),
                ("cs1", q.tenant.clone()),
                ("cs2Label", "clientPseudonym".into()),
                ("cs2", q.client.clone()),
                ("cs3Label", "qtype".into()),
                ("cs3", qtype_name(q.qtype)),
            ];
            if let Some(rc) = q.rcode {
                ext.push(("cs4Label", "rcode".into()));
                ext.push(("cs4", rcode_name(rc)));
            }
            if let Some(f) = &q.feed {
                ext.push(("cs5Label", "feed".into()));
                ext.push(("cs5", f.clone()));
            }
            let policy = is_policy_action(&q.action);
            (
                format!("query.{}", q.action),
                format!("DNS query {}", q.action),
                if policy { 5 } else { 1 },
                ext,
            )
        }
    };
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_value(&v)))
        .collect();
    format!(
        "CEF:0|Parapet|Parapet|{}|{}|{}|{sev}|{}",
        cef_header(env!("CARGO_PKG_VERSION")),
        cef_header(&sig),
        cef_header(&name),
        ext.join(" ")
    )
}

/// A Splunk HTTP Event Collector event: the record's JSON under `event`,
/// its time in seconds, `sourcetype` `parapet:alert` or `parapet:query`.
pub fn hec_event(r: &Record, host: &str) -> Value {
    hec(r.to_json(), r.kind(), r.time_ms(), host)
}

/// The HEC envelope of any JSON event.
pub fn hec(event: Value, kind: &str, time_ms: i64, host: &str) -> Value {
    json!({
        "time": time_ms as f64 / 1000.0,
        "host": host,
        "source": "parapet",
        "sourcetype": format!("parapet:{kind}"),
        "event": event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_core::alert::AlertStatus;

    fn alert() -> Alert {
        Alert {
            id: 7,
            tenant: "north|council".into(),
            rule: "feed.block".into(),
            domain: "evil.test".into(),
            severity: Severity::High,
            status: AlertStatus::New,
            first_seen: 1_764_000_000_123,
            last_seen: 1_764_000_060_000,
            count: 3,
            clients: 2,
            feeds: vec!["urlhaus".into()],
            reason: "listed by a=b\\c\nnext".into(),
            evidence: vec!["evil.test A".into()],
            nodes: vec!["n1".into()],
            history: vec![],
        }
    }

    #[test]
    fn cef_escapes_header_and_extension() {
        let line = cef(&Record::Alert(alert()));
        assert!(
            line.starts_with(&format!(
                "CEF:0|Parapet|Parapet|{}|feed.block|feed.block alert for evil.test|8|",
                env!("CARGO_PKG_VERSION")
            )),
            "{line}"
        );
        assert!(line.contains(r"msg=listed by a\=b\\c\nnext "), "{line}");
        assert!(
            line.contains("cs1Label=tenant cs1=north|council "),
            "{line}"
        );
        assert!(line.contains("rt=1764000060000 start=1764000000123 "));
    }

    #[test]
    fn syslog_message_has_the_5424_header() {
        let r = Record::Alert(alert());
        let m = String::from_utf8(rfc5424(&r, "node one", "{}")).unwrap();
        // local0 (16) * 8 + err (3)
        let want = format!(
            "<131>1 2025-11-24T16:00:00.123Z nodeone parapet {} alert - {{}}",
            std::process::id()
        );
        assert_eq!(m, want);
    }

    #[test]
    fn query_json_names_types_and_keeps_the_pseudonym() {
        let q = StoredEvent {
            id: 5,
            time: 1_000,
            tenant: "t".into(),
            client: "0102030405060708".into(),
            qname: "x.test".into(),
            qtype: 28,
            rcode: Some(3),
            action: "blocked".into(),
            feed: Some("f".into()),
            node: "n".into(),
            queries: 2,
            last_time: Some(1_500),
        };
        let v = Record::Query(q).to_json();
        assert_eq!(v["qtype"], "AAAA");
        assert_eq!(v["rcode"], "NXDOMAIN");
        assert_eq!(v["client"], "0102030405060708");
        assert_eq!(v["time"], "1970-01-01T00:00:01.000Z");
        let hec = hec(v, "query", 1_500, "n");
        assert_eq!(hec["time"], 1.5);
        assert_eq!(hec["sourcetype"], "parapet:query");
    }
}
