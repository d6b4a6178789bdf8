//! Schema decoding that reports every problem in one pass: after each decode error the
//! offending key is removed and decoding is retried, so `config validate` lists every bad key.

use serde_json::Value;

use super::{Config, ConfigIssue};

impl Config {
    /// Parses JSON5 text, collecting every schema problem: the config it returns is the file
    /// with the offending keys left out (so their defaults apply), beside the list of problems.
    /// Only a JSON5 syntax error stops it.
    pub(super) fn parse_lenient(text: &str) -> Result<(Config, Vec<ConfigIssue>), String> {
        let mut value: Value = json5::from_str(text).map_err(|e| e.to_string())?;
        let mut issues = Vec::new();
        // Each failed decode names one problem; drop that key and decode again, so one run
        // reports them all. The bound only guards against a pathological file.
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, Config>(&value) {
                Ok(config) => return Ok((config, issues)),
                Err(err) => {
                    let (path, message) = describe(&err);
                    let removed = remove_path(&mut value, &path);
                    issues.push(ConfigIssue {
                        path: if path.is_empty() {
                            "(root)".into()
                        } else {
                            path
                        },
                        message,
                    });
                    if !removed {
                        break;
                    }
                }
            }
        }
        Ok((Config::default(), issues))
    }
}

/// The key path and message of one decode error. For an unknown key serde reports the parent
/// path; the key is in the message, so it is appended to the path.
fn describe(err: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let mut path = err.path().to_string();
    if path == "." {
        path.clear();
    }
    let message = err.inner().to_string();
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            let key = &rest[..end];
            if !path.ends_with(key) {
                path = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
            }
            let expected = rest[end + 1..].trim_start_matches(", ");
            return (path, format!("unknown key; {expected}"));
        }
    }
    (path, message)
}

/// Removes the value at a `a.b[2].c` path; false when the path does not lead anywhere.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let mut segments = Vec::new();
    for dotted in path.split('.').filter(|s| !s.is_empty()) {
        let mut rest = dotted;
        if let Some(i) = rest.find('[') {
            segments.push(Segment::Key(rest[..i].to_string()));
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                match rest[1..end].parse() {
                    Ok(n) => segments.push(Segment::Index(n)),
                    Err(_) => return false,
                }
                rest = &rest[end + 1..];
            }
        } else {
            segments.push(Segment::Key(rest.to_string()));
        }
    }
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut cursor = value;
    for seg in parents {
        cursor = match (seg, cursor) {
            (Segment::Key(k), Value::Object(map)) => match map.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Index(i), Value::Array(items)) => match items.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cursor) {
        (Segment::Key(k), Value::Object(map)) => map.remove(k).is_some(),
        (Segment::Index(i), Value::Array(items)) if *i < items.len() => {
            // Replace rather than shift, so later indices in the file keep their numbers.
            items[*i] = Value::Null;
            true
        }
        _ => false,
    }
}

enum Segment {
    Key(String),
    Index(usize),
}
