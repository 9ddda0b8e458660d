//! The SMTP TLS report parser (TLS-RPT, RFC 8460, JSON): the report's
//! types, and field access through a small wrapper that names the field
//! at fault, as a path, in every error.

use serde_json::{Map, Value};

use super::Res;
use super::text::{strip_bom, utf8_error};
use parapet_core::calendar::parse_rfc3339;

/// TLS-RPT `policy-type`.
const TLS_POLICY_TYPES: &[&str] = &["sts", "tlsa", "no-policy-found"];

/// One TLS-RPT `failure-details` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    pub result_type: String,
    pub sending_mta_ip: Option<String>,
    pub receiving_mx_hostname: Option<String>,
    pub count: u64,
}

/// One TLS-RPT `policies` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicyResult {
    pub policy_type: String,
    pub policy_domain: String,
    pub mx_hosts: Vec<String>,
    pub successful: u64,
    pub failed: u64,
    pub failures: Vec<TlsFailure>,
}

/// An SMTP TLS report. Times are unix seconds (converted from RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsReport {
    pub org_name: String,
    pub report_id: String,
    pub begin: i64,
    pub end: i64,
    pub policies: Vec<TlsPolicyResult>,
}

fn json_kind(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

/// JSON field access with the path (`at`, ending in `/` unless empty) in
/// errors. `null` counts as missing.
struct J<'v> {
    obj: &'v Map<String, Value>,
    at: String,
}

impl<'v> J<'v> {
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn req(&self, key: &str) -> Res<&'v Value> {
        self.get(key)
            .ok_or_else(|| format!("{}{key}: missing", self.at))
    }

    fn wrong(&self, key: &str, want: &str, v: &Value) -> String {
        format!("{}{key}: expected {want}, found {}", self.at, json_kind(v))
    }

    fn str(&self, key: &str) -> Res<&'v str> {
        let v = self.req(key)?;
        v.as_str().ok_or_else(|| self.wrong(key, "a string", v))
    }

    fn non_empty(&self, key: &str) -> Res<&'v str> {
        let s = self.str(key)?.trim();
        if s.is_empty() {
            return Err(format!("{}{key}: empty", self.at));
        }
        Ok(s)
    }

    fn opt_str(&self, key: &str) -> Res<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
                .ok_or_else(|| self.wrong(key, "a string", v)),
        }
    }

    fn count(&self, key: &str) -> Res<u64> {
        let v = self.req(key)?;
        v.as_u64()
            .ok_or_else(|| self.wrong(key, "a non-negative integer", v))
    }

    fn obj(&self, key: &str) -> Res<J<'v>> {
        let v = self.req(key)?;
        let obj = v
            .as_object()
            .ok_or_else(|| self.wrong(key, "an object", v))?;
        Ok(J {
            obj,
            at: format!("{}{key}/", self.at),
        })
    }

    fn arr(&self, key: &str) -> Res<Option<&'v Vec<Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a list", v)),
        }
    }

    fn time(&self, key: &str) -> Res<i64> {
        let s = self.str(key)?;
        parse_rfc3339(s).ok_or_else(|| {
            format!(
                "{}{key}: {:?} is not an RFC 3339 date-time",
                self.at,
                s.chars().take(60).collect::<String>()
            )
        })
    }

    /// The `index`th element of list `key`, which must be an object.
    fn item(&self, key: &str, index: usize, v: &'v Value) -> Res<J<'v>> {
        let at = format!("{}{key}[{index}]", self.at);
        let obj = v
            .as_object()
            .ok_or_else(|| format!("{at}: expected an object, found {}", json_kind(v)))?;
        Ok(J {
            obj,
            at: format!("{at}/"),
        })
    }
}

pub(super) fn parse_tlsrpt(data: &[u8]) -> Res<TlsReport> {
    let data = strip_bom(data);
    let text = std::str::from_utf8(data).map_err(|e| utf8_error(data, e, false))?;
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("the JSON top level is not an object: not a TLS-RPT report")?;
    let top = J {
        obj,
        at: String::new(),
    };
    let org_name = top.str("organization-name")?.trim().to_owned();
    let report_id = top.non_empty("report-id")?.to_owned();
    let range = top.obj("date-range")?;
    let begin = range.time("start-datetime")?;
    let end = range.time("end-datetime")?;
    if begin > end {
        return Err("date-range: start-datetime is after end-datetime".into());
    }
    let mut policies = Vec::new();
    let list = top
        .arr("policies")?
        .ok_or_else(|| "policies: missing".to_string())?;
    for (i, item) in list.iter().enumerate() {
        let entry = top.item("policies", i, item)?;
        let policy = entry.obj("policy")?;
        let policy_type = policy.str("policy-type")?.trim();
        if !TLS_POLICY_TYPES.contains(&policy_type) {
            return Err(format!(
                "{}policy-type: {policy_type:?} is not one of {}",
                policy.at,
                TLS_POLICY_TYPES.join("|")
            ));
        }
        let policy_domain = policy.non_empty("policy-domain")?.to_owned();
        let mx_hosts = match policy.get("mx-host") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.trim().to_owned()],
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(j, h)| {
                    h.as_str().map(|s| s.trim().to_owned()).ok_or_else(|| {
                        format!(
                            "{}mx-host[{j}]: expected a string, found {}",
                            policy.at,
                            json_kind(h)
                        )
                    })
                })
                .collect::<Res<Vec<_>>>()?,
            Some(other) => return Err(policy.wrong("mx-host", "a string or a list", other)),
        };
        let summary = entry.obj("summary")?;
        let successful = summary.count("total-successful-session-count")?;
        let failed = summary.count("total-failure-session-count")?;
        let mut failures = Vec::new();
        for (j, d) in entry
            .arr("failure-details")?
            .map(|v| v.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let d = entry.item("failure-details", j, d)?;
            failures.push(TlsFailure {
                result_type: d.non_empty("result-type")?.to_owned(),
                sending_mta_ip: d.opt_str("sending-mta-ip")?,
                receiving_mx_hostname: d.opt_str("receiving-mx-hostname")?,
                count: d.count("failed-session-count")?,
            });
        }
        policies.push(TlsPolicyResult {
            policy_type: policy_type.to_owned(),
            policy_domain,
            mx_hosts,
            successful,
            failed,
            failures,
        });
    }
    Ok(TlsReport {
        org_name,
        report_id,
        begin,
        end,
        policies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::*;
    use crate::report::{Parsed, parse_bytes};

    #[test]
    fn tlsrpt_fields() {
        let r = one_tls("smtp_tls/rfc8460.json");
        assert_eq!(r.org_name, "Company-X");
        assert_eq!(r.begin, 1_459_468_800); // 2016-04-01T00:00:00Z
        assert_eq!(r.end, 1_459_555_199); // 2016-04-01T23:59:59Z
        let p = &r.policies[0];
        assert_eq!(p.policy_type, "sts");
        assert_eq!(p.policy_domain, "company-y.example");
        assert_eq!(p.mx_hosts, vec!["*.mail.company-y.example".to_string()]);
        assert_eq!((p.successful, p.failed), (5326, 303));
        assert_eq!(
            p.failures[0],
            TlsFailure {
                result_type: "certificate-expired".into(),
                sending_mta_ip: Some("2001:db8:abcd:0012::1".into()),
                receiving_mx_hostname: Some("mx1.mail.company-y.example".into()),
                count: 100,
            }
        );
        assert_eq!(p.failures.iter().map(|f| f.count).sum::<u64>(), 303);
        let r = one_tls("smtp_tls/google.com_smtp_tls_report.eml");
        assert_eq!(r.org_name, "Google Inc.");
        assert_eq!((r.begin, r.end), (1_725_321_600, 1_725_407_999));
        let p = &r.policies[0];
        assert_eq!(p.policy_type, "no-policy-found");
        assert_eq!(p.policy_domain, "cardinalhealth.ca");
        assert_eq!((p.successful, p.failed), (48, 0));
        assert!(p.failures.is_empty() && p.mx_hosts.is_empty());
        let r = one_tls("smtp_tls/mail.ru.json");
        assert_eq!(
            r.policies[0].failures[1].result_type,
            "sts-policy-fetch-error"
        );
        assert_eq!(r.policies[0].failures[1].sending_mta_ip, None);
        // mx-host as a list.
        let json = br#"{"organization-name":"o","report-id":"r",
            "date-range":{"start-datetime":"2024-01-01T00:00:00+01:00","end-datetime":"2024-01-01T23:59:59.5Z"},
            "policies":[{"policy":{"policy-type":"tlsa","policy-domain":"d","mx-host":["a","b"]},
            "summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}"#;
        match parse_bytes("j", json).unwrap().as_slice() {
            [Parsed::TlsRpt(r)] => {
                assert_eq!(r.policies[0].mx_hosts, vec!["a", "b"]);
                assert_eq!(r.begin, 1_704_067_200 - 3600);
                assert_eq!(r.end, 1_704_153_599);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tlsrpt_errors_name_the_field() {
        let base: Value = serde_json::from_slice(&read("smtp_tls/rfc8460.json")).unwrap();
        let cases: &[(&str, Value, &str)] = &[
            ("/report-id", Value::Null, "report-id: missing"),
            ("/report-id", "".into(), "report-id: empty"),
            (
                "/date-range/start-datetime",
                "2016-04-01".into(),
                "date-range/start-datetime: \"2016-04-01\" is not an RFC 3339 date-time",
            ),
            (
                "/date-range/end-datetime",
                "2015-04-01T00:00:00Z".into(),
                "date-range: start-datetime is after end-datetime",
            ),
            (
                "/policies/0/summary/total-failure-session-count",
                (-1).into(),
                "policies[0]/summary/total-failure-session-count: expected a non-negative integer, found -1",
            ),
            (
                "/policies/0/policy/policy-type",
                "STS".into(),
                "policies[0]/policy/policy-type: \"STS\" is not one of sts|tlsa|no-policy-found",
            ),
            (
                "/policies/0/policy/mx-host",
                5.into(),
                "policies[0]/policy/mx-host: expected a string or a list, found 5",
            ),
            (
                "/policies/0/failure-details/2/failed-session-count",
                "3".into(),
                "policies[0]/failure-details[2]/failed-session-count: expected a non-negative integer, found \"3\"",
            ),
            ("/policies", Value::Null, "policies: missing"),
        ];
        for (pointer, value, want) in cases {
            let mut v = base.clone();
            *v.pointer_mut(pointer).unwrap() = value.clone();
            let data = serde_json::to_vec(&v).unwrap();
            let e = parse_bytes("t.json", &data).unwrap_err();
            assert_eq!(&e.reason, want, "{pointer}");
        }
        let e = parse_bytes("t.json", b"{\"a\": [1, 2,}").unwrap_err();
        assert!(
            e.reason.starts_with("invalid JSON: ") && e.reason.contains("line 1"),
            "{e}"
        );
        let e = parse_bytes("t.json", b"{\"organization-name\": \"\x91\"}").unwrap_err();
        assert!(
            e.reason
                .starts_with("invalid UTF-8 (byte 0x91) at line 1, column 24"),
            "{e}"
        );
    }
}
