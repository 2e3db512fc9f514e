//! Server names for SNI: exact names and `*.` wildcards, each with its own value.
//!
//! Names compare without regard to ASCII case (DNS names are case-insensitive); a `*` stands for
//! exactly one whole label, and only as the first label (`*.example.com` matches
//! `a.example.com`, not `example.com` or `a.b.example.com`). An exact pattern beats a wildcard.

/// Patterns in the order added; a pattern added again replaces the earlier entry.
#[derive(Debug)]
pub struct ServerNames<T> {
    entries: Vec<(String, T)>,
}

impl<T> Default for ServerNames<T> {
    fn default() -> Self {
        ServerNames { entries: Vec::new() }
    }
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl<T> ServerNames<T> {
    pub fn insert(&mut self, pattern: &str, value: T) {
        let pattern = normalize(pattern);
        match self.entries.iter_mut().find(|(existing, _)| *existing == pattern) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((pattern, value)),
        }
    }

    /// Removes the entry of exactly this pattern; returns whether there was one.
    pub fn remove(&mut self, pattern: &str) -> bool {
        let pattern = normalize(pattern);
        let before = self.entries.len();
        self.entries.retain(|(existing, _)| *existing != pattern);
        self.entries.len() != before
    }

    /// The entry for `name`: an exact pattern first (so a pattern finds itself), else a wildcard.
    pub fn find(&self, name: &str) -> Option<(&str, &T)> {
        let name = normalize(name);
        let exact = self.entries.iter().find(|(pattern, _)| *pattern == name);
        let wildcard = || {
            let (_, parent) = name.split_once('.')?;
            self.entries.iter().find(|(pattern, _)| pattern.strip_prefix("*.") == Some(parent))
        };
        exact.or_else(wildcard).map(|(pattern, value)| (pattern.as_str(), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_single_label_wildcards() {
        let mut names = ServerNames::default();
        names.insert("*.example.com", 1);
        names.insert("api.example.com", 2);
        names.insert("Other.Test", 3);
        assert_eq!(names.find("www.example.com"), Some(("*.example.com", &1)));
        assert_eq!(names.find("API.example.com"), Some(("api.example.com", &2)));
        assert_eq!(names.find("other.test."), Some(("other.test", &3)));
        assert_eq!(names.find("example.com"), None);
        assert_eq!(names.find("a.b.example.com"), None);
        assert_eq!(names.find("*.example.com"), Some(("*.example.com", &1)));
        assert_eq!(names.find("localhost"), None);
    }

    #[test]
    fn adding_a_pattern_again_replaces_it_and_removal_is_exact() {
        let mut names = ServerNames::default();
        names.insert("*.example.com", 1);
        names.insert("*.EXAMPLE.com", 2);
        assert_eq!(names.find("a.example.com"), Some(("*.example.com", &2)));
        assert!(!names.remove("a.example.com"));
        assert!(names.remove("*.example.com"));
        assert!(!names.remove("*.example.com"));
        assert_eq!(names.find("a.example.com"), None);
    }
}
