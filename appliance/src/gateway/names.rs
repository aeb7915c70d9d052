//! Public names and which service answers to them.
//!
//! A service is named exactly (`shop.example.org`) or by a wildcard (`*.example.org`,
//! which matches any name ending in `.example.org`, one label or more, but not
//! `example.org` itself). Names compare without regard to case. A [`NameTable`] finds the
//! service for a name: an exact name first, else the wildcard with the longest suffix.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::sni::host_name;

/// A service's name as configured.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NamePattern {
    /// Exactly this name (lowercase).
    Exact(String),
    /// Any name ending in `.` + this suffix (lowercase, without the `*.`).
    Wildcard(String),
}

impl NamePattern {
    /// Reads `shop.example.org` or `*.example.org`.
    pub fn parse(text: &str) -> Result<NamePattern, String> {
        let (wild, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if name.contains('*') {
            return Err(format!(
                "Name {text:?}: a wildcard is only allowed as the first label, like *.example.org"
            ));
        }
        let Some(name) = host_name(name.as_bytes()) else {
            return Err(format!(
                "Name {text:?} is not a DNS name (letters, digits, '-', '_' and dots; labels up to 63 characters)"
            ));
        };
        if wild && !name.contains('.') {
            return Err(format!(
                "Name {text:?} would match every name under a top-level domain; use a longer suffix"
            ));
        }
        Ok(if wild {
            NamePattern::Wildcard(name)
        } else {
            NamePattern::Exact(name)
        })
    }

    /// Whether `name` (already lowercase) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => exact == name,
            NamePattern::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamePattern::Exact(name) => f.write_str(name),
            NamePattern::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// Names to values (service indices), for one kind of listener.
#[derive(Debug, Clone, Default)]
pub struct NameTable<T> {
    exact: Vec<(String, T)>,
    /// Longest suffix first, so the first match is the longest.
    wildcards: Vec<(String, T)>,
}

impl<T: Copy> NameTable<T> {
    /// An empty table.
    pub fn new() -> NameTable<T> {
        NameTable {
            exact: Vec::new(),
            wildcards: Vec::new(),
        }
    }

    /// Whether the table has no name at all.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcards.is_empty()
    }

    /// Adds a pattern; a pattern already present keeps its first value.
    pub fn insert(&mut self, pattern: &NamePattern, value: T) {
        let (list, name) = match pattern {
            NamePattern::Exact(n) => (&mut self.exact, n),
            NamePattern::Wildcard(s) => (&mut self.wildcards, s),
        };
        if list.iter().any(|(n, _)| n == name) {
            return;
        }
        list.push((name.clone(), value));
        self.wildcards
            .sort_by_key(|(s, _)| core::cmp::Reverse(s.len()));
    }

    /// The value for `name` (any case, a trailing dot ignored).
    pub fn lookup(&self, name: &str) -> Option<T> {
        let name = host_name(name.as_bytes())?;
        if let Some((_, v)) = self.exact.iter().find(|(n, _)| *n == name) {
            return Some(*v);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| NamePattern::Wildcard(suffix.clone()).matches(&name))
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> NamePattern {
        NamePattern::parse(text).unwrap()
    }

    #[test]
    fn patterns_parse_lowercase_and_refuse_bad_names() {
        assert_eq!(
            p("Shop.Example.org"),
            NamePattern::Exact("shop.example.org".into())
        );
        assert_eq!(
            p("*.Example.org"),
            NamePattern::Wildcard("example.org".into())
        );
        assert_eq!(format!("{}", p("*.example.org")), "*.example.org");
        assert!(NamePattern::parse("a.*.org").is_err());
        assert!(NamePattern::parse("*").is_err());
        assert!(NamePattern::parse("*.org").is_err());
        assert!(NamePattern::parse("shop example").is_err());
        assert!(NamePattern::parse("").is_err());
    }

    #[test]
    fn wildcards_match_subdomains_but_not_the_bare_suffix() {
        let w = p("*.example.org");
        assert!(w.matches("a.example.org"));
        assert!(w.matches("a.b.example.org"));
        assert!(!w.matches("example.org"));
        assert!(!w.matches("badexample.org"));
        assert!(!w.matches(".example.org"));
    }

    #[test]
    fn exact_beats_wildcard_and_the_longest_wildcard_wins() {
        let mut t = NameTable::new();
        t.insert(&p("*.example.org"), 1);
        t.insert(&p("*.shop.example.org"), 2);
        t.insert(&p("www.shop.example.org"), 3);
        t.insert(&p("*.example.org"), 9);
        assert_eq!(t.lookup("a.example.org"), Some(1));
        assert_eq!(t.lookup("x.shop.example.org"), Some(2));
        assert_eq!(t.lookup("WWW.Shop.Example.org."), Some(3));
        assert_eq!(t.lookup("shop.example.org"), Some(1));
        assert_eq!(t.lookup("example.org"), None);
        assert_eq!(t.lookup("other.net"), None);
        assert_eq!(t.lookup("bad name"), None);
    }
}
