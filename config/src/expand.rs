//! Expansion of `$name`, `${name}` and `$(name)` references in string values.

use std::collections::{BTreeMap, HashMap};

use figment::value::Value;

use crate::error::{Origin, Problem};
use crate::keys::{domain_of, keys, suggest};

/// One merged top-level value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    pub(crate) origin: Origin,
    /// The value is not given but derived: the default of `mydomain`,
    /// computed from the effective `myhostname`.
    pub(crate) derived: bool,
}

/// A parsed string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Literal text (`$$` already turned into `$`).
    Literal(String),
    /// A reference to the value of another key.
    Ref(String),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `s` into literal text and references.
pub(crate) fn parse_template(s: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            literal.push(c);
            continue;
        }
        let name = match chars.peek().copied() {
            Some('$') => {
                chars.next();
                literal.push('$');
                continue;
            }
            Some(open @ ('{' | '(')) => {
                let close = if open == '{' { '}' } else { ')' };
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == close {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(format!("unterminated '${open}{name}' (missing '{close}')"));
                }
                if name.is_empty() || !name.chars().all(is_name_char) {
                    let detail = if name.contains(['?', ':']) {
                        "conditional expansion is not supported"
                    } else {
                        "a reference must name a key"
                    };
                    return Err(format!(
                        "'${open}{name}{close}' is not a valid reference: {detail}"
                    ));
                }
                name
            }
            Some(c) if is_name_char(c) => {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if !is_name_char(c) {
                        break;
                    }
                    name.push(c);
                    chars.next();
                }
                name
            }
            _ => {
                return Err("'$' must be followed by a key name, '{name}' or '(name)' \
                     (write '$$' for a literal '$')"
                    .to_owned());
            }
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Ref(name));
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// Expands `template` with `lookup`; `None` if the template is malformed or
/// names a key `lookup` does not know.
pub(crate) fn expand_with(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let mut out = String::new();
    for piece in parse_template(template).ok()? {
        match piece {
            Piece::Literal(text) => out.push_str(&text),
            Piece::Ref(name) => out.push_str(&lookup(&name)?),
        }
    }
    Some(out)
}

/// Renders a value for use inside a string: lists are joined with ", ",
/// booleans are "yes" / "no".
fn plain(value: &Value) -> Result<String, &'static str> {
    Ok(match value {
        Value::String(_, s) => s.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Num(_, n) => {
            if let Some(u) = n.to_u128() {
                u.to_string()
            } else if let Some(i) = n.to_i128() {
                i.to_string()
            } else {
                n.to_f64().map(|f| f.to_string()).unwrap_or_default()
            }
        }
        Value::Empty(..) => String::new(),
        Value::Array(_, items) => items
            .iter()
            .map(plain)
            .collect::<Result<Vec<_>, _>>()?
            .join(", "),
        Value::Dict(..) => return Err("a table"),
    })
}

enum State {
    InProgress,
    Done(Option<Value>),
}

struct Expander<'a> {
    entries: &'a BTreeMap<String, Entry>,
    state: HashMap<String, State>,
    /// The keys being expanded, outermost first.
    stack: Vec<String>,
    problems: Vec<Problem>,
}

impl Expander<'_> {
    /// The expanded value of `key`, or `None` if it failed (the failure has
    /// been reported, once, at its cause).
    fn value(&mut self, key: &str) -> Option<Value> {
        if let Some(State::Done(value)) = self.state.get(key) {
            return value.clone();
        }
        let entries = self.entries;
        let entry = &entries[key];
        self.state.insert(key.to_owned(), State::InProgress);
        self.stack.push(key.to_owned());
        let result = if entry.derived {
            self.text_of(key, "myhostname")
                .map(|host| Value::from(domain_of(&host)))
        } else {
            match &entry.value {
                Value::String(tag, s) => self.expand_str(key, s).map(|s| Value::String(*tag, s)),
                Value::Array(tag, items) => {
                    let mut out = Vec::with_capacity(items.len());
                    let mut ok = true;
                    for item in items {
                        match item {
                            Value::String(tag, s) => match self.expand_str(key, s) {
                                Some(s) => out.push(Value::String(*tag, s)),
                                None => ok = false,
                            },
                            other => out.push(other.clone()),
                        }
                    }
                    ok.then_some(Value::Array(*tag, out))
                }
                other => Some(other.clone()),
            }
        };
        self.stack.pop();
        self.state
            .insert(key.to_owned(), State::Done(result.clone()));
        result
    }

    fn expand_str(&mut self, key: &str, s: &str) -> Option<String> {
        let pieces = match parse_template(s) {
            Ok(pieces) => pieces,
            Err(message) => {
                let origin = &self.entries[key].origin;
                self.problems.push(Problem::reference(
                    origin,
                    key,
                    format!("{message}, in {s:?}"),
                ));
                return None;
            }
        };
        let mut out = String::new();
        let mut ok = true;
        for piece in pieces {
            match piece {
                Piece::Literal(text) => out.push_str(&text),
                Piece::Ref(name) => match self.text_of(key, &name) {
                    Some(text) => out.push_str(&text),
                    None => ok = false,
                },
            }
        }
        ok.then_some(out)
    }

    /// The expanded value of `name` as text, for a reference in `key`.
    fn text_of(&mut self, key: &str, name: &str) -> Option<String> {
        let origin = &self.entries[key].origin;
        if !self.entries.contains_key(name) {
            let hint = suggest(name, keys())
                .map(|s| format!(" (did you mean '${s}'?)"))
                .unwrap_or_default();
            self.problems.push(Problem::reference(
                origin,
                key,
                format!("reference to unknown key '${name}'{hint}"),
            ));
            return None;
        }
        if let Some(State::InProgress) = self.state.get(name) {
            let start = self.stack.iter().position(|k| k == name).unwrap_or(0);
            let chain: Vec<String> = self.stack[start..]
                .iter()
                .chain(std::iter::once(&name.to_owned()))
                .map(|k| format!("${k}"))
                .collect();
            let origin = &self.entries[name].origin;
            self.problems.push(Problem::reference(
                origin,
                name,
                format!("reference cycle: {}", chain.join(" -> ")),
            ));
            return None;
        }
        let value = self.value(name)?;
        match plain(&value) {
            Ok(text) => Some(text),
            Err(what) => {
                self.problems.push(Problem::reference(
                    origin,
                    key,
                    format!("'${name}' is {what} and cannot be used in a string"),
                ));
                None
            }
        }
    }
}

/// Expands the references in every string value of `entries`, in place.
/// Entries whose expansion failed are removed, and the problems returned.
pub(crate) fn expand_all(entries: &mut BTreeMap<String, Entry>) -> Vec<Problem> {
    let mut expander = Expander {
        entries,
        state: HashMap::new(),
        stack: Vec::new(),
        problems: Vec::new(),
    };
    let keys: Vec<String> = entries.keys().cloned().collect();
    let results: Vec<(String, Option<Value>)> = keys
        .into_iter()
        .map(|key| {
            let value = expander.value(&key);
            (key, value)
        })
        .collect();
    let problems = expander.problems;
    for (key, value) in results {
        match value {
            Some(value) => {
                if let Some(entry) = entries.get_mut(&key) {
                    entry.value = value;
                    entry.derived = false;
                }
            }
            None => {
                entries.remove(&key);
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Piece {
        Piece::Literal(s.to_owned())
    }

    fn r(s: &str) -> Piece {
        Piece::Ref(s.to_owned())
    }

    #[test]
    fn all_reference_forms_are_parsed() {
        assert_eq!(
            parse_template("$myhostname ESMTP ${mail_name}$(x)!").unwrap(),
            [
                r("myhostname"),
                lit(" ESMTP "),
                r("mail_name"),
                r("x"),
                lit("!")
            ]
        );
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(parse_template("a$$b").unwrap(), [lit("a$b")]);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(parse_template("${unterminated").is_err());
        assert!(parse_template("trailing $").is_err());
        assert!(parse_template("$ space").is_err());
        assert!(
            parse_template("${a?b}")
                .unwrap_err()
                .contains("conditional")
        );
        assert!(parse_template("${}").is_err());
    }

    #[test]
    fn expand_with_uses_the_lookup() {
        let out = expand_with("$a-${b}", |k| Some(k.to_uppercase()));
        assert_eq!(out.as_deref(), Some("A-B"));
        assert_eq!(expand_with("$a", |_| None), None);
    }
}
