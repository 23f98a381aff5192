//! Java `.properties` files (application descriptors, `*.target.properties`): `key = value`,
//! `key: value` or `key value`, `#` and `!` comments, trailing-backslash continuations and
//! the usual escapes. Each entry keeps the line it starts on.

/// One entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parses properties text; a later duplicate key replaces the earlier value.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let mut logical = String::new();
        let mut cur = lines[i]
            .trim_end_matches('\r')
            .trim_start_matches([' ', '\t', '\x0C']);
        i += 1;
        if logical.is_empty() && (cur.is_empty() || cur.starts_with('#') || cur.starts_with('!')) {
            continue;
        }
        loop {
            let trailing = cur.len() - cur.trim_end_matches('\\').len();
            if trailing % 2 == 1 && i < lines.len() {
                logical.push_str(&cur[..cur.len() - 1]);
                cur = lines[i]
                    .trim_end_matches('\r')
                    .trim_start_matches([' ', '\t', '\x0C']);
                i += 1;
            } else {
                logical.push_str(cur);
                break;
            }
        }
        let (key, value) = split_entry(&logical);
        let entry = Entry {
            key: unescape(&key),
            value: unescape(&value),
            line: start,
        };
        match out.iter_mut().find(|e| e.key == entry.key) {
            Some(e) => *e = entry,
            None => out.push(entry),
        }
    }
    out
}

/// Looks a key up.
pub fn get<'a>(entries: &'a [Entry], key: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.key == key)
}

fn split_entry(line: &str) -> (String, String) {
    let mut key_end = line.len();
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\x0C' {
            key_end = i;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start_matches([' ', '\t', '\x0C']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\x0C']);
    }
    (key.to_string(), rest.to_string())
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0C'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let e =
            parse("# c\n! c\na = 1\nb: two words\nc 3\nd=multi\\\n   line\ne\\:x = y\n\n  f=\n");
        let kv: Vec<(&str, &str, usize)> = e
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            kv,
            vec![
                ("a", "1", 3),
                ("b", "two words", 4),
                ("c", "3", 5),
                ("d", "multiline", 6),
                ("e:x", "y", 8),
                ("f", "", 10)
            ]
        );
    }
}
