//! Number agreement for the sentences the report generates from counts:
//! "1 server was", "2 servers were", "1 has warnings only".

/// `n` and the noun that agrees with it: `1 server`, `2 servers`.
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", noun(n, one, many))
}

/// The noun that agrees with `n`.
pub(crate) fn noun<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `was` or `were`.
pub(crate) fn was(n: u64) -> &'static str {
    noun(n, "was", "were")
}

/// `is` or `are`.
pub(crate) fn is(n: u64) -> &'static str {
    noun(n, "is", "are")
}

/// `has` or `have`.
pub(crate) fn has(n: u64) -> &'static str {
    noun(n, "has", "have")
}

/// A verb in the present tense that agrees with `n`: `passes`/`pass`,
/// `meets`/`meet`.
pub(crate) fn verb<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    noun(n, one, many)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree() {
        assert_eq!(
            format!("{} {}", count(1, "server", "servers"), was(1)),
            "1 server was"
        );
        assert_eq!(
            format!("{} {}", count(2, "server", "servers"), was(2)),
            "2 servers were"
        );
        assert_eq!(
            format!("{} {}", count(0, "server", "servers"), was(0)),
            "0 servers were"
        );
        assert_eq!(format!("1 {}", has(1)), "1 has");
        assert_eq!(format!("3 {}", is(3)), "3 are");
        assert_eq!(verb(1, "passes", "pass"), "passes");
    }
}
