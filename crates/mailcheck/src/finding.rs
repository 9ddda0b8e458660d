//! Findings: what Mail Check reports about a domain. Every finding has a
//! stable code (`spf.too_many_lookups`), a severity and a plain-English
//! message saying what to change.

use std::fmt;

/// How serious a finding is. Any `Error` makes `parapet mailcheck` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable code, `area.name`: `spf.missing`, `dmarc.policy_none`...
    pub code: &'static str,
    pub severity: Level,
    /// What is wrong and what to change, in plain English.
    pub message: String,
    /// The record (or record name) the finding is about, when there is one.
    pub record: Option<String>,
}

impl Finding {
    pub fn new(code: &'static str, severity: Level, message: impl Into<String>) -> Self {
        Self {
            code,
            severity,
            message: message.into(),
            record: None,
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, Level::Error, message)
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, Level::Warning, message)
    }

    pub fn info(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, Level::Info, message)
    }

    /// The record this finding is about.
    pub fn on(mut self, record: impl Into<String>) -> Self {
        self.record = Some(record.into());
        self
    }
}

/// Most findings kept for one record; a huge broken record must not turn
/// into thousands of findings that each carry a copy of it.
pub(crate) const MAX_FINDINGS: usize = 32;

/// A capped list of findings about one record (used by the record parsers).
pub(crate) struct Findings {
    list: Vec<Finding>,
    dropped: usize,
    /// Code of the closing "more not listed" finding, e.g. `dmarc.truncated`.
    truncated_code: &'static str,
    /// How the message names the record, e.g. "this key record".
    what: &'static str,
}

impl Findings {
    pub(crate) fn new(truncated_code: &'static str, what: &'static str) -> Self {
        Self {
            list: Vec::new(),
            dropped: 0,
            truncated_code,
            what,
        }
    }

    pub(crate) fn push(&mut self, finding: Finding) {
        if self.list.len() < MAX_FINDINGS {
            self.list.push(finding);
        } else {
            self.dropped += 1;
        }
    }

    /// For the findings that matter most, even past the cap.
    pub(crate) fn push_always(&mut self, finding: Finding) {
        self.list.push(finding);
    }

    pub(crate) fn finish(mut self, raw: &str) -> Vec<Finding> {
        if self.dropped > 0 {
            self.list.push(
                Finding::info(
                    self.truncated_code,
                    format!(
                        "{} further findings about {} are not listed; fix the ones above first.",
                        self.dropped, self.what
                    ),
                )
                .on(raw),
            );
        }
        self.list
    }
}
