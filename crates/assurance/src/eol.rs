//! End of vendor support for operating systems and common desktop
//! software (Cyber Essentials: unsupported software must be removed).
//! A small table of what councils still run; an OS or program not listed
//! is not assumed unsupported.

use parapet_core::calendar::parse_datetime;

/// (substring of the lower-cased OS name, end of support). More specific
/// names first.
const OS: &[(&str, &str)] = &[
    ("windows server 2003", "2015-07-14"),
    ("windows server 2008", "2020-01-14"),
    ("windows server 2012", "2023-10-10"),
    ("windows xp", "2014-04-08"),
    ("windows vista", "2017-04-11"),
    ("windows 7", "2020-01-14"),
    ("windows 8.1", "2023-01-10"),
    ("windows 8", "2016-01-12"),
    ("windows 10", "2025-10-14"),
    ("centos linux 7", "2024-06-30"),
    ("centos 7", "2024-06-30"),
    ("centos linux 8", "2021-12-31"),
    ("centos 8", "2021-12-31"),
    ("ubuntu 14.04", "2019-04-30"),
    ("ubuntu 16.04", "2021-04-30"),
    ("ubuntu 18.04", "2023-05-31"),
    ("ubuntu 20.04", "2025-05-31"),
    ("debian 8", "2020-06-30"),
    ("debian 9", "2022-06-30"),
    ("debian 10", "2024-06-30"),
    ("debian gnu/linux 8", "2020-06-30"),
    ("debian gnu/linux 9", "2022-06-30"),
    ("debian gnu/linux 10", "2024-06-30"),
];

/// (lower-case program name prefix, end of support).
const SOFTWARE: &[(&str, &str)] = &[
    ("adobe flash player", "2020-12-31"),
    ("microsoft silverlight", "2021-10-12"),
    ("microsoft office 2007", "2017-10-10"),
    ("microsoft office 2010", "2020-10-13"),
    ("microsoft office 2013", "2023-04-11"),
    ("java 6 ", "2013-04-16"),
    ("java 7 ", "2015-04-14"),
    ("python 2.7", "2020-01-01"),
    ("python2.7", "2020-01-01"),
];

fn date(s: &str) -> i64 {
    parse_datetime(s).expect("valid table date")
}

/// When support for operating system `os` ended (or ends).
pub fn os_end_of_life(os: &str) -> Option<i64> {
    let l = os.to_ascii_lowercase();
    // "Windows 10" must not match "Windows 10 Enterprise LTSC 2021"
    if l.contains("ltsc") || l.contains("ltsb") {
        return None;
    }
    OS.iter()
        .find(|(n, _)| {
            l.find(n).is_some_and(|i| {
                // whole-word match: "windows 8" must not match "windows 8.1"
                let rest = &l[i + n.len()..];
                !(rest.starts_with(|c: char| c.is_ascii_alphanumeric())
                    || (!n.contains('.') && rest.starts_with('.')))
            })
        })
        .map(|(_, d)| date(d))
}

/// When support for program `name` ended, if it is in the table.
pub fn software_end_of_life(name: &str, _version: &str) -> Option<i64> {
    let l = name.to_ascii_lowercase();
    SOFTWARE
        .iter()
        .find(|(n, _)| {
            l.starts_with(n.trim_end())
                && (l.len() == n.trim_end().len() || l.starts_with(n) || !n.ends_with(' '))
        })
        .map(|(_, d)| date(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(
            os_end_of_life("Microsoft Windows Server 2012 R2 Standard"),
            parse_datetime("2023-10-10")
        );
        assert_eq!(
            os_end_of_life("Microsoft Windows 8.1 Pro"),
            parse_datetime("2023-01-10")
        );
        assert_eq!(
            os_end_of_life("Windows 8 Enterprise"),
            parse_datetime("2016-01-12")
        );
        assert_eq!(
            os_end_of_life("Microsoft Windows 10 Enterprise LTSC 2021"),
            None
        );
        assert_eq!(os_end_of_life("Microsoft Windows 11 Pro"), None);
        assert_eq!(
            os_end_of_life("Ubuntu 20.04.3 LTS"),
            parse_datetime("2025-05-31")
        );
        assert_eq!(
            software_end_of_life("Adobe Flash Player 32 NPAPI", ""),
            parse_datetime("2020-12-31")
        );
        assert_eq!(
            software_end_of_life("Java 7 Update 80", ""),
            parse_datetime("2015-04-14")
        );
        assert_eq!(software_end_of_life("Java 8 Update 301", ""), None);
        assert_eq!(software_end_of_life("7-Zip", ""), None);
    }
}
