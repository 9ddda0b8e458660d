//! Reporting quarters. Councils report by the local-government financial
//! year (April–March) and write a quarter as `2021-22-Q2` (July–September
//! 2021); calendar quarters (`2021-Q3`) are a configuration option.

use std::fmt;
use std::str::FromStr;

use parapet_core::calendar::days_from_civil;

/// Which year quarters are counted in.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum QuarterStyle {
    /// April–March, `2021-22-Q2`.
    #[default]
    Financial,
    /// January–December, `2021-Q3`.
    Calendar,
}

/// One quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quarter {
    /// The (financial or calendar) year it belongs to: for `2021-22-Q2`, 2021.
    pub year: i64,
    /// 1–4.
    pub q: u8,
    pub style: QuarterStyle,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a quarter: write 2021-22-Q2 (financial year April–March) or 2021-Q3 (calendar)"
)]
pub struct BadQuarter(pub String);

/// A quarter written in another style than the installation counts in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{written}`: this installation counts {} ([assurance] quarters)", match .style {
    QuarterStyle::Financial => "financial-year quarters (April–March): write e.g. 2021-22-Q2",
    QuarterStyle::Calendar => "calendar quarters: write e.g. 2021-Q3",
})]
pub struct WrongStyle {
    pub written: String,
    /// The style the installation counts in.
    pub style: QuarterStyle,
}

/// Why a quarter given by a user was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuarterArgError {
    #[error(transparent)]
    Bad(#[from] BadQuarter),
    #[error(transparent)]
    WrongStyle(#[from] WrongStyle),
}

impl Quarter {
    /// Parses a quarter a user wrote, which must be in `style` (the
    /// installation's `[assurance] quarters`).
    pub fn parse_in(s: &str, style: QuarterStyle) -> Result<Self, QuarterArgError> {
        let q: Quarter = s.parse()?;
        if q.style != style {
            return Err(WrongStyle {
                written: s.to_string(),
                style,
            }
            .into());
        }
        Ok(q)
    }
}

impl FromStr for Quarter {
    type Err = BadQuarter;

    fn from_str(s: &str) -> Result<Self, BadQuarter> {
        let bad = || BadQuarter(s.to_string());
        let upper = s.trim().to_ascii_uppercase();
        let (year_part, q) = upper.rsplit_once("-Q").ok_or_else(bad)?;
        let q: u8 = q.parse().map_err(|_| bad())?;
        if !(1..=4).contains(&q) {
            return Err(bad());
        }
        let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
        match year_part.split_once('-') {
            Some((y, next)) if digits(y, 4) && digits(next, 2) => {
                let year: i64 = y.parse().map_err(|_| bad())?;
                if (year + 1) % 100 != next.parse::<i64>().map_err(|_| bad())? {
                    return Err(bad());
                }
                Ok(Self {
                    year,
                    q,
                    style: QuarterStyle::Financial,
                })
            }
            None if digits(year_part, 4) => Ok(Self {
                year: year_part.parse().map_err(|_| bad())?,
                q,
                style: QuarterStyle::Calendar,
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.style {
            QuarterStyle::Financial => {
                write!(f, "{}-{:02}-Q{}", self.year, (self.year + 1) % 100, self.q)
            }
            QuarterStyle::Calendar => write!(f, "{}-Q{}", self.year, self.q),
        }
    }
}

impl Quarter {
    /// The first month (year, month) of the quarter.
    fn first_month(&self) -> (i64, u32) {
        let offset = match self.style {
            QuarterStyle::Financial => 3,
            QuarterStyle::Calendar => 0,
        };
        let m0 = offset + (u32::from(self.q) - 1) * 3; // 0-based months from January of `year`
        (self.year + i64::from(m0 / 12), m0 % 12 + 1)
    }

    /// First second of the quarter (UTC).
    pub fn start(&self) -> i64 {
        let (y, m) = self.first_month();
        days_from_civil(y, m, 1) * 86_400
    }

    /// The snapshot date T: the last second of the quarter.
    pub fn end(&self) -> i64 {
        self.next().start() - 1
    }

    pub fn next(&self) -> Self {
        if self.q == 4 {
            Self {
                year: self.year + 1,
                q: 1,
                ..*self
            }
        } else {
            Self {
                q: self.q + 1,
                ..*self
            }
        }
    }

    pub fn previous(&self) -> Self {
        if self.q == 1 {
            Self {
                year: self.year - 1,
                q: 4,
                ..*self
            }
        } else {
            Self {
                q: self.q - 1,
                ..*self
            }
        }
    }

    /// The quarter containing unix time `t`.
    pub fn containing(t: i64, style: QuarterStyle) -> Self {
        let (y, m, _) = parapet_core::calendar::civil_from_days(t.div_euclid(86_400));
        match style {
            QuarterStyle::Calendar => Self {
                year: y,
                q: ((m - 1) / 3 + 1) as u8,
                style,
            },
            QuarterStyle::Financial => {
                let (year, m0) = if m >= 4 { (y, m - 4) } else { (y - 1, m + 8) };
                Self {
                    year,
                    q: (m0 / 3 + 1) as u8,
                    style,
                }
            }
        }
    }

    /// e.g. `July–September 2021`.
    pub fn months(&self) -> String {
        const NAMES: [&str; 12] = [
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
        let (y, m) = self.first_month();
        let last = (m + 1) % 12 + 1;
        let y_last = if last < m { y + 1 } else { y };
        if y_last == y {
            format!("{}–{} {y}", NAMES[m as usize - 1], NAMES[last as usize - 1])
        } else {
            format!(
                "{} {y}–{} {y_last}",
                NAMES[m as usize - 1],
                NAMES[last as usize - 1]
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_core::calendar::parse_datetime;

    #[test]
    fn financial_quarters_as_committees_write_them() {
        let q: Quarter = "2021-22-Q2".parse().unwrap();
        assert_eq!(q.start(), parse_datetime("2021-07-01").unwrap());
        assert_eq!(q.end(), parse_datetime("2021-09-30T23:59:59Z").unwrap());
        assert_eq!(q.months(), "July–September 2021");
        assert_eq!(q.to_string(), "2021-22-Q2");
        let q4: Quarter = "2021-22-q4".parse().unwrap();
        assert_eq!(q4.start(), parse_datetime("2022-01-01").unwrap());
        assert_eq!(q4.end(), parse_datetime("2022-03-31T23:59:59Z").unwrap());
        assert_eq!(q4.next().to_string(), "2022-23-Q1");
        assert_eq!("2022-23-Q1".parse::<Quarter>().unwrap().previous(), q4);
        assert_eq!(
            Quarter::containing(
                parse_datetime("2022-02-10").unwrap(),
                QuarterStyle::Financial
            ),
            q4
        );
        assert_eq!(
            Quarter::containing(
                parse_datetime("2021-04-01").unwrap(),
                QuarterStyle::Financial
            )
            .to_string(),
            "2021-22-Q1"
        );
        let q1: Quarter = "2021-22-Q3".parse().unwrap();
        assert_eq!(q1.months(), "October–December 2021");
        assert_eq!(
            "2021-22-Q4".parse::<Quarter>().unwrap().months(),
            "January–March 2022"
        );
    }

    #[test]
    fn calendar_quarters_and_bad_input() {
        let q: Quarter = "2021-Q3".parse().unwrap();
        assert_eq!(q.start(), parse_datetime("2021-07-01").unwrap());
        assert_eq!(q.previous().to_string(), "2021-Q2");
        assert_eq!(q.previous().previous().previous().to_string(), "2020-Q4");
        for bad in [
            "2021-23-Q2",
            "2021-22-Q5",
            "2021-22-Q0",
            "Q2",
            "2021-22",
            "21-22-Q1",
            "2021-2022-Q1",
        ] {
            assert!(bad.parse::<Quarter>().is_err(), "{bad}");
        }
    }
}
