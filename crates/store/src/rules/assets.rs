//! How the asset register's lists (addresses, MAC addresses, CVEs) are
//! stored on both backends: one text column each, space-separated.

/// A list as one column.
pub(crate) fn join_words(v: &[String]) -> String {
    v.join(" ")
}

/// The inverse of [`join_words`].
pub(crate) fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}
