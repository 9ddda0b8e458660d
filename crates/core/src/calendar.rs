//! The workspace's one calendar: civil dates of unix times, the timestamp
//! forms Parapet writes, and the date forms that exports and reports use.
//! Unix seconds unless a name says milliseconds.
//!
//! Two forms of a time: machine forms (JSON, the API, stored text) are
//! RFC 3339 in UTC ([`format_datetime`]); a time a person reads (a table,
//! an e-mail, a page) is UK local time, GMT or BST ([`format_local`]), from
//! the time zone database compiled in. Dates and quarter boundaries are
//! UTC calendar days, as the KPI definitions count them.

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: `(year, month, day)`.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Unix seconds of a valid date and time.
pub fn ymd_hms(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    Some(
        days_from_civil(y, mo, d) * 86_400
            + i64::from(h) * 3600
            + i64::from(mi) * 60
            + i64::from(s),
    )
}

/// `YYYY-MM-DD` of unix seconds.
pub fn format_date(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` of unix seconds.
pub fn format_datetime(t: i64) -> String {
    let secs = t.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        format_date(t),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` of unix milliseconds, to the second.
pub fn format_datetime_ms(ms: i64) -> String {
    format_datetime(ms.div_euclid(1000))
}

/// Unix seconds of an RFC 3339 `date-time` (`2016-04-01T23:59:59Z`,
/// fractions and `±hh:mm` offsets allowed; a leap second counts as the
/// next second).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = b.get(from..to)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')),
        )
    };
    let sep = |at: usize, ok: &[u8]| b.get(at).is_some_and(|c| ok.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo)
        || d < 1
        || d > i64::from(days_in_month(y, mo as u32))
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1, i + 3)?, num(i + 4, i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Europe/London, from the time zone database compiled into the binary
/// (so a host without /usr/share/zoneinfo still shows BST in summer).
fn london() -> jiff::tz::TimeZone {
    static TZ: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
    TZ.get_or_init(|| jiff::tz::TimeZone::get("Europe/London").unwrap_or(jiff::tz::TimeZone::UTC))
        .clone()
}

/// `YYYY-MM-DD HH:MM:SS GMT` (or `BST`) of unix seconds: the time in UK
/// local time, as a person reads it.
pub fn format_local(t: i64) -> String {
    in_london(t, "%Y-%m-%d %H:%M:%S %Z").unwrap_or_else(|| format_datetime(t))
}

/// `YYYY-MM-DD`: the day it is at unix second `t` in the UK (a date a
/// person reads, such as a report's).
pub fn format_local_date(t: i64) -> String {
    in_london(t, "%Y-%m-%d").unwrap_or_else(|| format_date(t))
}

/// Unix second `t` in UK local time, formatted by `strftime`; `None`
/// beyond the years jiff represents (±9999), where callers fall back to
/// the UTC form.
fn in_london(t: i64, format: &str) -> Option<String> {
    let ts = jiff::Timestamp::from_second(t).ok()?;
    Some(ts.to_zoned_datetime(london()).strftime(format).to_string())
}

/// [`format_local`] of unix milliseconds, to the second.
pub fn format_local_ms(ms: i64) -> String {
    format_local(ms.div_euclid(1000))
}

/// How far unix second `t` is from `now`, as a person says it ("just
/// now", "5 minutes ago", "3 hours ago", "2 days ago", "in 4 hours");
/// `None` beyond 30 days, where the date alone says enough.
pub fn relative(t: i64, now: i64) -> Option<String> {
    let d = now.saturating_sub(t);
    let a = d.unsigned_abs();
    if a > 30 * 86_400 {
        return None;
    }
    if a < 60 {
        return Some("just now".into());
    }
    let (n, unit) = if a < 3600 {
        (a / 60, "minute")
    } else if a < 86_400 {
        (a / 3600, "hour")
    } else {
        (a / 86_400, "day")
    };
    let s = if n == 1 { "" } else { "s" };
    Some(if d > 0 {
        format!("{n} {unit}{s} ago")
    } else {
        format!("in {n} {unit}{s}")
    })
}

/// A time in a machine form (RFC 3339, as the API gives it) shown in UK
/// local time; anything else is returned as it is.
pub fn local_from_rfc3339(s: &str) -> String {
    parse_rfc3339(s).map_or_else(|| s.to_string(), format_local)
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 9 {
        return None;
    }
    s.parse().ok()
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses the date forms exports use, to unix seconds UTC:
/// - ISO 8601 / RFC 3339: `2021-07-15`, `2021-07-15T10:00:00Z`,
///   `2021-07-15 10:00:00`, fractions and `+01:00` offsets;
/// - `2021/07/15` (Nessus `patch_publication_date`);
/// - `Thu Jul 15 10:00:00 2021` (Nessus `HOST_START`, C `asctime`);
/// - a bare unix timestamp of 9–10 digits (`HOST_START_TIMESTAMP`).
///
/// Day-first and month-first slash dates (`15/07/2021`) are refused: they
/// are ambiguous, and a wrong guess would move a finding's age.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if (9..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    if s.as_bytes()[0].is_ascii_alphabetic() {
        return parse_asctime(s);
    }
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, ""),
    };
    let sep = if date.contains('-') { '-' } else { '/' };
    let mut parts = date.split(sep);
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 {
        return None;
    }
    let (y, m, d) = (i64::from(num(y)?), num(m)?, num(d)?);
    if rest.is_empty() {
        return ymd_hms(y, m, d, 0, 0, 0);
    }
    // time, then optional fraction, then Z / ±hh:mm / ±hhmm
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let time = time.trim().split('.').next()?;
    let mut t = time.split(':');
    let h = num(t.next()?)?;
    let mi = num(t.next()?)?;
    let sec = t.next().map_or(Some(0), num)?;
    if t.next().is_some() {
        return None;
    }
    let base = ymd_hms(y, m, d, h, mi, sec)?;
    let off = match offset {
        "" | "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            let hh = i64::from(num(&digits[..2])?);
            let mm = i64::from(num(&digits[2..])?);
            sign * (hh * 3600 + mm * 60)
        }
    };
    Some(base - off)
}

fn parse_asctime(s: &str) -> Option<i64> {
    let f: Vec<&str> = s.split_whitespace().collect();
    // [Www] Mmm D HH:MM:SS YYYY
    let f = if f.len() == 5 { &f[1..] } else { &f[..] };
    if f.len() != 4 {
        return None;
    }
    let m = MONTHS
        .iter()
        .position(|m| f[0].len() >= 3 && f[0][..3].eq_ignore_ascii_case(m))? as u32
        + 1;
    let d = num(f[1])?;
    let mut t = f[2].split(':');
    let (h, mi, sec) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    let y = i64::from(num(f[3])?);
    ymd_hms(y, m, d, h, mi, sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn relative_times_read_as_a_person_says_them() {
        let now = 1_800_000_000;
        assert_eq!(relative(now - 5, now).as_deref(), Some("just now"));
        assert_eq!(relative(now - 60, now).as_deref(), Some("1 minute ago"));
        assert_eq!(
            relative(now - 3 * 3600 - 59, now).as_deref(),
            Some("3 hours ago")
        );
        assert_eq!(
            relative(now - 2 * 86_400, now).as_deref(),
            Some("2 days ago")
        );
        assert_eq!(relative(now + 4 * 3600, now).as_deref(), Some("in 4 hours"));
        assert_eq!(relative(now - 31 * 86_400, now), None);
    }

    #[test]
    fn export_date_forms() {
        let day = 1_626_307_200; // 2021-07-15
        assert_eq!(parse_datetime("2021-07-15"), Some(day));
        assert_eq!(parse_datetime("2021/07/15"), Some(day));
        assert_eq!(parse_datetime("2021-07-15T10:00:00Z"), Some(day + 36_000));
        assert_eq!(parse_datetime("2021-07-15 10:00:00"), Some(day + 36_000));
        assert_eq!(
            parse_datetime("2021-07-15T10:00:00.1234567Z"),
            Some(day + 36_000)
        );
        assert_eq!(
            parse_datetime("2021-07-15T11:00:00+01:00"),
            Some(day + 36_000)
        );
        assert_eq!(parse_datetime("2021-07-15T09:00-0100"), Some(day + 36_000));
        assert_eq!(
            parse_datetime("Thu Jul 15 10:00:00 2021"),
            Some(day + 36_000)
        );
        assert_eq!(
            parse_datetime("Thu Jul  15 10:00:00 2021"),
            Some(day + 36_000)
        );
        assert_eq!(parse_datetime("1626343200"), Some(day + 36_000));
        for bad in [
            "15/07/2021",
            "2021-02-30",
            "2021-13-01",
            "",
            "yesterday",
            "2021-07-15T25:00",
            "21-07-15",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert_eq!(format_datetime(day + 36_000), "2021-07-15T10:00:00Z");
    }

    #[test]
    fn rfc3339_of_milliseconds() {
        assert_eq!(format_datetime_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_datetime_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_datetime_ms(1_795_000_000_999),
            "2026-11-18T11:06:40Z"
        );
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2016-04-01T23:59:59Z"), Some(1_459_555_199));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.123456z"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_rfc3339("2024-01-01 01:00:00+01:00"),
            Some(1_704_067_200)
        );
        assert_eq!(
            parse_rfc3339("2023-12-31T19:00:00-05:00"),
            Some(1_704_067_200)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1));
        for bad in [
            "",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00+24:00",
            "2024-1-01T00:00:00Z",
            "+024-01-01T00:00:00Z",
            "2024-01-01T00:00:00ZZ",
            "2024-01-01T00:00:00Z\u{e9}",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_time_is_gmt_in_winter_and_bst_in_summer() {
        // 2021-07-15T10:00:00Z and 2021-01-15T10:00:00Z
        assert_eq!(format_local(1_626_343_200), "2021-07-15 11:00:00 BST");
        assert_eq!(format_local(1_610_704_800), "2021-01-15 10:00:00 GMT");
        // the clocks went forward at 01:00 UTC on 2021-03-28
        assert_eq!(format_local(1_616_893_199), "2021-03-28 00:59:59 GMT");
        assert_eq!(format_local(1_616_893_200), "2021-03-28 02:00:00 BST");
        assert_eq!(
            format_local_ms(1_626_343_200_999),
            "2021-07-15 11:00:00 BST"
        );
        assert_eq!(
            local_from_rfc3339("2021-07-15T10:00:00Z"),
            "2021-07-15 11:00:00 BST"
        );
        assert_eq!(local_from_rfc3339("never"), "never");
        // 23:30 UTC in summer is already the next day in the UK
        assert_eq!(format_local_date(1_626_391_800), "2021-07-16");
        assert_eq!(format_date(1_626_391_800), "2021-07-15");
    }

    proptest! {
        #[test]
        fn civil_round_trip(z in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(z);
            prop_assert_eq!(days_from_civil(y, m, d), z);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_datetime(&s);
        }
    }
}
