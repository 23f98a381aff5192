//! Small text rules shared by the DSL code: Java's notions of whitespace and trimming
//! (Roboconf is written in Java, and its behaviour depends on them), the name patterns
//! (strict id, flexible id, application name) and Roboconf's comma splitting.

/// Java's `String.trim()`: strips every char <= U+0020 at both ends.
pub fn jtrim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Java's `\s` in regular expressions.
pub fn is_jspace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

/// Roboconf's `isEmptyOrWhitespaces`.
pub fn is_blank(s: &str) -> bool {
    jtrim(s).is_empty()
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn matches_id(s: &str, extra: impl Fn(char) -> bool) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => chars.all(|c| is_word(c) || extra(c)),
        _ => false,
    }
}

/// `[a-zA-Z_](\w|-|\.)*`: component, facet, child and variable names.
pub fn is_strict_id(s: &str) -> bool {
    matches_id(s, |c| c == '-' || c == '.')
}

/// `[a-zA-Z_](\w|-| |\.)*`: instance and installer names.
pub fn is_flex_id(s: &str) -> bool {
    matches_id(s, |c| c == '-' || c == '.' || c == ' ')
}

/// `[a-zA-Z_](\w|[-.() ])*`: application names.
pub fn is_app_name(s: &str) -> bool {
    matches_id(s, |c| matches!(c, '-' | '.' | '(' | ')' | ' '))
}

/// Splits on `sep`, trims every item, and drops trailing empty items (as Java's
/// `String.split` does). A blank input gives nothing.
pub fn split_nicely(s: &str, sep: char) -> Vec<String> {
    if is_blank(s) {
        return Vec::new();
    }
    let mut items: Vec<String> = s.split(sep).map(|x| jtrim(x).to_string()).collect();
    // Java drops trailing empty strings (before trimming: only truly empty ones).
    let raw: Vec<&str> = s.split(sep).collect();
    while let Some(last) = raw.get(items.len().wrapping_sub(1)) {
        if last.is_empty() {
            items.pop();
        } else {
            break;
        }
    }
    items
}

/// 1-based column of byte offset `at` in `line`, counted in characters.
pub fn col_of(line: &str, at: usize) -> usize {
    line.get(..at).map_or(1, |p| p.chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_strict_id("Tomcat"));
        assert!(is_strict_id("my-app.v2"));
        assert!(!is_strict_id("my app"));
        assert!(!is_strict_id("1abc"));
        assert!(!is_strict_id(""));
        assert!(is_flex_id("vm 1"));
        assert!(!is_flex_id("\"vm\""));
        assert!(is_app_name("Legacy LAMP (test)"));
    }

    #[test]
    fn split() {
        assert_eq!(split_nicely("a, b ,c", ','), vec!["a", "b", "c"]);
        assert_eq!(split_nicely("a,", ','), vec!["a"]);
        assert_eq!(split_nicely("a,,b", ','), vec!["a", "", "b"]);
        assert_eq!(split_nicely(",a", ','), vec!["", "a"]);
        assert_eq!(split_nicely("a, ", ','), vec!["a", ""]);
        assert!(split_nicely("  ", ',').is_empty());
        assert!(split_nicely(",", ',').is_empty());
    }
}
