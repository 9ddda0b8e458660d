//! The query-event search both backends run ([`crate::EventQuery`]): its
//! conditions as SQL over the same columns, with each dialect's parameter
//! markers, so that SQLite and PostgreSQL find the same rows.
//!
//! Names are matched through `rname`, the stored name reversed character
//! by character: a suffix (`example.org`) becomes a prefix
//! (`gro.elpmaxe`), which a B-tree index finds as one range.

use crate::{EventQuery, MAX_SEARCH_DEPTH, MAX_SEARCH_LIMIT, NameMatch};

/// One bound value of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Bytes(Vec<u8>),
}

/// The columns a search returns, in [`crate::StoredEvent`]'s order.
pub(crate) const COLUMNS: &str =
    "id, time, tenant, client, qname, qtype, rcode, action, feed, node, queries, last_time";

/// A name as stored: lower case, no final dot (the root stays `.`).
pub(crate) fn stored_form(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    match n.strip_suffix('.') {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => n,
    }
}

/// `name` reversed character by character: the `rname` column.
pub(crate) fn reversed(name: &str) -> String {
    name.chars().rev().collect()
}

/// A search's `WHERE` conditions (joined by `AND`, `TRUE` when none) and
/// its parameters, numbered from 1 through `marker`.
pub(crate) struct Conditions {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Conditions {
    pub(crate) fn new(q: &EventQuery, marker: impl Fn(usize) -> String) -> Self {
        let mut c = Conditions {
            sql: String::new(),
            params: Vec::new(),
        };
        let mut push = |c: &mut Conditions, cond: &str, p: Param| {
            c.params.push(p);
            let m = marker(c.params.len());
            if !c.sql.is_empty() {
                c.sql.push_str(" AND ");
            }
            c.sql.push_str(&cond.replace('?', &m));
        };
        if let Some(t) = &q.tenant {
            push(&mut c, "tenant = ?", Param::Text(t.clone()));
        }
        if let Some(p) = q.client {
            push(&mut c, "client = ?", Param::Bytes(p.to_vec()));
        }
        match (&q.name, q.name_match) {
            (Some(n), NameMatch::Exact) => {
                push(&mut c, "rname = ?", Param::Text(reversed(&stored_form(n))));
            }
            (Some(n), NameMatch::Suffix) => c.suffix(&stored_form(n), &mut push),
            (None, _) => {}
        }
        if let Some(d) = &q.domain {
            c.suffix(&stored_form(d), &mut push);
        }
        if let Some(a) = &q.action {
            push(&mut c, "action = ?", Param::Text(a.clone()));
        }
        if let Some(f) = &q.feed {
            push(&mut c, "feed = ?", Param::Text(f.clone()));
        }
        if let Some(t) = q.since {
            push(&mut c, "time >= ?", Param::Int(t));
        }
        if let Some(t) = q.until {
            push(&mut c, "time < ?", Param::Int(t));
        }
        if c.sql.is_empty() {
            c.sql.push_str("1 = 1");
        }
        c
    }

    /// `name` and every name under it: one range of `rname` (the reversed
    /// name, up to it followed by `/`, the byte after `.`), then only the
    /// name itself or a label boundary right after it: the range also holds
    /// names that continue it with a lower byte (`bad-example.org`
    /// reversed continues `gro.elpmaxe` with `-`).
    fn suffix(&mut self, name: &str, push: &mut impl FnMut(&mut Conditions, &str, Param)) {
        let r = reversed(name);
        let len = r.chars().count();
        push(self, "rname >= ?", Param::Text(r.clone()));
        push(self, "rname < ?", Param::Text(format!("{r}/")));
        // the length is a number computed here, not user text
        self.sql.push_str(&format!(
            " AND (length(rname) = {len} OR substr(rname, {}, 1) = '.')",
            len + 1
        ));
    }
}

/// The limit and offset of a search, within the bounds every backend keeps.
pub(crate) fn page(q: &EventQuery) -> (i64, i64) {
    let limit = q.limit.clamp(1, MAX_SEARCH_LIMIT);
    let limit = limit.min(MAX_SEARCH_DEPTH.saturating_sub(q.offset));
    (limit as i64, q.offset.min(MAX_SEARCH_DEPTH) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_number_their_parameters_in_order() {
        let q = EventQuery {
            tenant: Some("north".into()),
            name: Some("Example.ORG.".into()),
            name_match: NameMatch::Suffix,
            since: Some(5),
            ..EventQuery::default()
        };
        let c = Conditions::new(&q, |i| format!("${i}"));
        assert_eq!(
            c.sql,
            "tenant = $1 AND rname >= $2 AND rname < $3 AND (length(rname) = 11 OR substr(rname, 12, 1) = '.') AND time >= $4"
        );
        assert_eq!(
            c.params,
            [
                Param::Text("north".into()),
                Param::Text("gro.elpmaxe".into()),
                Param::Text("gro.elpmaxe/".into()),
                Param::Int(5)
            ]
        );
        let none = Conditions::new(&EventQuery::default(), |_| "?".into());
        assert_eq!(none.sql, "1 = 1");
    }

    #[test]
    fn pages_stay_within_the_bounds() {
        let q = |offset, limit| EventQuery {
            offset,
            limit,
            ..EventQuery::default()
        };
        assert_eq!(page(&q(0, 0)), (1, 0));
        assert_eq!(page(&q(0, 100_000)), (MAX_SEARCH_LIMIT as i64, 0));
        assert_eq!(page(&q(MAX_SEARCH_DEPTH - 10, 50)), (10, 9_990));
        assert_eq!(page(&q(MAX_SEARCH_DEPTH + 10, 50)).0, 0);
    }
}
