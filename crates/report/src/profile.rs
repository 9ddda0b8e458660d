//! A council's report profile: the words of its committee report that no
//! figure gives (who wrote it, for which meeting, what the committee is
//! asked to do, the PSN status and the exemption of the appendix), as the
//! installation configures them per tenant.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The recommendation when the profile gives none.
pub const DEFAULT_RECOMMENDATION: &str = "That the contents of the report be noted.";

/// The public-interest test when the profile gives none (Schedule 12A,
/// Part 2, paragraph 10: exempt information stays exempt only while the
/// public interest in withholding it outweighs that in disclosing it).
pub const DEFAULT_PUBLIC_INTEREST: &str = "In all the circumstances of the case, the public interest in maintaining the exemption outweighs the public interest in disclosing the information: the appendix names the council's devices, their unpatched vulnerabilities and how incidents were handled, which would help an attacker to compromise the council's systems and the services and personal data they hold. The figures themselves, and what is being done about them, are in this public report.";

/// The report profile of one council (`[[tenants]] report = { … }`).
/// Everything is optional: what is missing gets a default or is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportProfile {
    /// The council's name on the report (over the tenant's `display_name`).
    pub council: Option<String>,
    /// The committee the report goes to.
    pub committee: Option<String>,
    /// The report's author, as a name and job title.
    pub author: Option<String>,
    /// How to reach the author (telephone, e-mail).
    pub contact: Option<String>,
    /// The agenda item, e.g. `Item 7`.
    pub agenda_item: Option<String>,
    /// What the committee is asked to resolve.
    pub recommendation: Option<String>,
    /// The council's Public Services Network compliance.
    pub psn: Option<Psn>,
    /// The paragraph of Schedule 12A the exempt appendix is withheld under.
    pub exemption: Option<String>,
    /// The public-interest test for withholding the appendix.
    pub public_interest: Option<String>,
}

impl ReportProfile {
    /// The recommendation to print.
    pub fn recommendation(&self) -> &str {
        self.recommendation
            .as_deref()
            .unwrap_or(DEFAULT_RECOMMENDATION)
    }

    /// The public-interest wording to print.
    pub fn public_interest(&self) -> &str {
        self.public_interest
            .as_deref()
            .unwrap_or(DEFAULT_PUBLIC_INTEREST)
    }

    /// Each field filled from `fallback` where this profile has none (a
    /// tenant's profile over the installation's `[assurance] report`).
    pub fn or(mut self, fallback: &ReportProfile) -> Self {
        fn fill<T: Clone>(x: &mut Option<T>, f: &Option<T>) {
            if x.is_none() {
                x.clone_from(f);
            }
        }
        fill(&mut self.council, &fallback.council);
        fill(&mut self.committee, &fallback.committee);
        fill(&mut self.author, &fallback.author);
        fill(&mut self.contact, &fallback.contact);
        fill(&mut self.agenda_item, &fallback.agenda_item);
        fill(&mut self.recommendation, &fallback.recommendation);
        fill(&mut self.psn, &fallback.psn);
        fill(&mut self.exemption, &fallback.exemption);
        fill(&mut self.public_interest, &fallback.public_interest);
        self
    }
}

/// PSN compliance: `psn = "not applicable"`, or
/// `psn = { certified = "2026-03-01", expires = "2027-03-01" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Psn {
    NotApplicable,
    /// Dates as `YYYY-MM-DD`.
    Certified {
        certified: String,
        expires: String,
    },
}

impl Psn {
    /// The sentence the Purpose and the Summary print, judged on `date`
    /// (`YYYY-MM-DD`, the report's date): ISO dates compare as strings.
    pub fn sentence(&self, date: &str) -> String {
        match self {
            Psn::NotApplicable => {
                "Public Services Network (PSN) compliance: not applicable; the council does not connect to the PSN.".to_string()
            }
            Psn::Certified { certified, expires } if expires.as_str() < date => format!(
                "Public Services Network (PSN) compliance: the council's certificate, issued {}, expired on {}; a renewal is needed to keep the connection.",
                long_date(certified),
                long_date(expires)
            ),
            Psn::Certified { certified, expires } => format!(
                "Public Services Network (PSN) compliance: the council holds a PSN compliance certificate issued {}, valid until {}.",
                long_date(certified),
                long_date(expires)
            ),
        }
    }
}

/// `2026-03-01` as `1 March 2026`, the form a committee reads.
pub(crate) fn long_date(d: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    match parse_date(d) {
        Some((y, m, day)) => format!("{day} {} {y}", MONTHS[m as usize - 1]),
        None => d.to_string(),
    }
}

/// `YYYY-MM-DD` as (year, month, day), checked against the calendar.
fn parse_date(d: &str) -> Option<(i64, u32, u32)> {
    let b = d.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, day) = (
        d[..4].parse::<i64>().ok()?,
        d[5..7].parse::<u32>().ok()?,
        d[8..].parse::<u32>().ok()?,
    );
    parapet_core::calendar::ymd_hms(y, m, day, 0, 0, 0)?;
    Some((y, m, day))
}

impl<'de> Deserialize<'de> for Psn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Psn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    r#""not applicable" or { certified = "YYYY-MM-DD", expires = "YYYY-MM-DD" }"#,
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Psn, E> {
                if s.eq_ignore_ascii_case("not applicable") {
                    Ok(Psn::NotApplicable)
                } else {
                    Err(E::custom(format!(
                        "`{s}`: expected \"not applicable\" or a table {{ certified = \"YYYY-MM-DD\", expires = \"YYYY-MM-DD\" }}"
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Psn, A::Error> {
                let (mut certified, mut expires) = (None::<String>, None::<String>);
                while let Some(k) = map.next_key::<String>()? {
                    let v: String = map.next_value()?;
                    if parse_date(&v).is_none() {
                        return Err(de::Error::custom(format!(
                            "psn.{k}: `{v}` is not a date (YYYY-MM-DD)"
                        )));
                    }
                    match k.as_str() {
                        "certified" => certified = Some(v),
                        "expires" => expires = Some(v),
                        _ => {
                            return Err(de::Error::custom(format!(
                                "psn: unknown field `{k}` (certified, expires)"
                            )));
                        }
                    }
                }
                match (certified, expires) {
                    (Some(c), Some(e)) if c <= e => Ok(Psn::Certified {
                        certified: c,
                        expires: e,
                    }),
                    (Some(c), Some(e)) => Err(de::Error::custom(format!(
                        "psn: expires ({e}) is before certified ({c})"
                    ))),
                    _ => Err(de::Error::custom(
                        "psn: both `certified` and `expires` are needed (or \"not applicable\")",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        psn: Psn,
    }

    #[test]
    fn psn_is_not_applicable_or_two_dates() {
        let t: T = toml::from_str("psn = \"Not applicable\"").unwrap();
        assert_eq!(t.psn, Psn::NotApplicable);
        let t: T = toml::from_str("psn = { certified = \"2026-03-01\", expires = \"2027-02-28\" }")
            .unwrap();
        assert!(
            t.psn
                .sentence("2026-12-05")
                .contains("issued 1 March 2026, valid until 28 February 2027")
        );
        assert!(
            t.psn
                .sentence("2027-03-01")
                .contains("expired on 28 February 2027")
        );
        for bad in [
            "psn = \"yes\"",
            "psn = { certified = \"2026-02-30\", expires = \"2027-01-01\" }",
            "psn = { certified = \"2026-03-01\" }",
            "psn = { certified = \"2026-03-01\", expires = \"2025-01-01\" }",
        ] {
            let e = toml::from_str::<T>(bad).err().expect(bad).to_string();
            assert!(e.contains("line 1"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_tenant_profile_falls_back_field_by_field() {
        let base = ReportProfile {
            author: Some("A".into()),
            committee: Some("Audit".into()),
            ..ReportProfile::default()
        };
        let p = ReportProfile {
            committee: Some("Finance".into()),
            ..ReportProfile::default()
        }
        .or(&base);
        assert_eq!(p.author.as_deref(), Some("A"));
        assert_eq!(p.committee.as_deref(), Some("Finance"));
        assert_eq!(p.recommendation(), DEFAULT_RECOMMENDATION);
    }
}
