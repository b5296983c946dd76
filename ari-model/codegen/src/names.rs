//! Rust names for swagger names, and doc text that rustdoc renders as the spec meant it.

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "yield",
];

/// `channelId` → `channel_id`, `bridge_type` → `bridge_type`, `deviceStates` → `device_states`.
pub fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let previous_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            let previous_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (previous_lower || (previous_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

/// A field or function identifier, escaping keywords as raw identifiers.
pub fn field_ident(name: &str) -> String {
    let ident = snake(name);
    if KEYWORDS.contains(&ident.as_str()) {
        format!("r#{ident}")
    } else {
        ident
    }
}

/// `originateWithId` → `OriginateWithId`, `transfer_progress` → `TransferProgress`,
/// `Dialing Offhook` → `DialingOffhook`, `NOT_INUSE` → `NotInuse`, `OffHook` → `OffHook`.
pub fn pascal(name: &str) -> String {
    let mut out = String::new();
    for part in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        let all_upper = part.chars().all(|c| !c.is_ascii_lowercase());
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            let rest: String = chars.collect();
            out.push_str(&if all_upper {
                rest.to_ascii_lowercase()
            } else {
                rest
            });
        }
    }
    out
}

/// The variant for one allowed value of enum `enum_name`.
///
/// Symbols get names (`*` → `Star`, `#` → `Hash`); a leading digit gets a `V` prefix; and
/// the spec's own value `Unknown` becomes `Unknown` + the enum's last word (`UnknownState`)
/// because `Unknown(String)` is the catch-all for values the crate does not know.
pub fn variant(enum_name: &str, value: &str) -> String {
    let name = match value {
        "*" => "Star".to_owned(),
        "#" => "Hash".to_owned(),
        _ => pascal(value),
    };
    if name == "Unknown" {
        let last_word_start = enum_name
            .rfind(|c: char| c.is_ascii_uppercase())
            .unwrap_or(0);
        return format!("Unknown{}", &enum_name[last_word_start..]);
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("V{name}")
    } else {
        name
    }
}

/// Doc-comment lines for spec text: `///` lines that rustdoc renders as plain prose
/// (no accidental HTML tags, intra-doc links, code blocks or bare-URL warnings).
pub fn doc_lines(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut previous_blank = true;
    for line in text.trim().lines() {
        let line = line.trim();
        if line.is_empty() {
            if !previous_blank {
                out.push_str(indent);
                out.push_str("///\n");
            }
            previous_blank = true;
            continue;
        }
        previous_blank = false;
        out.push_str(indent);
        out.push_str("/// ");
        out.push_str(&escape_markdown(line));
        out.push('\n');
    }
    out
}

fn escape_markdown(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    for word in line.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        if word.starts_with("http://") || word.starts_with("https://") {
            let url = word.trim_end_matches(['.', ',', ')', ';']);
            out.push('<');
            out.push_str(url);
            out.push('>');
            out.push_str(&word[url.len()..]);
            continue;
        }
        for c in word.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '[' | ']' | '*' | '_' | '`' | '\\' | '#' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case() {
        assert_eq!(snake("channelId"), "channel_id");
        assert_eq!(snake("otherChannelId"), "other_channel_id");
        assert_eq!(snake("bridge_type"), "bridge_type");
        assert_eq!(snake("maxDurationSeconds"), "max_duration_seconds");
        assert_eq!(snake("deviceStates"), "device_states");
        assert_eq!(snake("connection_type"), "connection_type");
        assert_eq!(field_ident("type"), "r#type");
    }

    #[test]
    fn pascal_case() {
        assert_eq!(pascal("originateWithId"), "OriginateWithId");
        assert_eq!(pascal("transfer_progress"), "TransferProgress");
        assert_eq!(pascal("Dialing Offhook"), "DialingOffhook");
        assert_eq!(pascal("Pre-ring"), "PreRing");
        assert_eq!(pascal("NOT_INUSE"), "NotInuse");
        assert_eq!(pascal("OffHook"), "OffHook");
    }

    #[test]
    fn variants() {
        assert_eq!(variant("ChannelState", "Unknown"), "UnknownState");
        assert_eq!(variant("DeviceStateValue", "UNKNOWN"), "UnknownValue");
        assert_eq!(variant("TerminateOn", "*"), "Star");
        assert_eq!(variant("TerminateOn", "#"), "Hash");
        assert_eq!(variant("X", "2way"), "V2way");
    }

    #[test]
    fn docs_are_plain_prose() {
        let docs = doc_lines(
            "Dial <number> [see] https://wiki.asterisk.org/x.\n\n    indented",
            "",
        );
        assert_eq!(
            docs,
            "/// Dial &lt;number&gt; \\[see\\] <https://wiki.asterisk.org/x>.\n///\n/// indented\n"
        );
    }
}
