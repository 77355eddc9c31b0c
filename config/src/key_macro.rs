//! The macro that turns the key table (`table.rs`) into everything a key
//! needs: the [`Config`](crate::Config) field with its doc comment, the
//! built-in default, the conversion, the rendering for `config show`, and
//! the reference entry for the generated docs.
//!
//! One line per parameter, as Postfix's `CONFIG_*_TABLE` arrays in
//! `postconf_builtin.c`. An entry reads
//!
//! ```text
//! /// doc
//! field "key": Type = default => (one convert_fn) [, shown "text"] [, show |c: &Config| …];
//! ```
//!
//! - `default` is an `Option<Value>` in configuration syntax (`d("300s")`;
//!   `None` for a default derived after merging, as `mydomain`).
//!   References such as `$myhostname` are expanded like any other value.
//! - `(one f)`: `f(&Value) -> Result<T, String>`; `(many f)`: the same with
//!   `Vec<String>` of problems; `(manual)`: converted in `validate` because
//!   it needs other keys (transports, listeners, and defaults that follow
//!   a key which may have failed).
//! - `shown` replaces the default's rendering in the reference (for
//!   defaults computed at run time); `show` replaces the type's
//!   [`Show`](crate::show::Show) rendering.

macro_rules! config_keys {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident $key:literal : $ty:ty = $default:expr => $check:tt
            $(, shown $shown:literal)? $(, show $show:expr)? ;
    )*) => {
        /// The validated settings. Field names are the configuration keys
        /// (`smtp_tls_cafile` is Postfix's `smtp_tls_CAfile`). Generated
        /// from the key table in `config/src/table.rs`.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Config {
            $(
                $(#[doc = $doc])+
                pub $field: $ty,
            )*
        }

        /// Every key of the table, in table order.
        pub(crate) const TABLE: &[crate::key_macro::KeyDoc] = &[$(
            crate::key_macro::KeyDoc {
                key: $key,
                doc: concat!($($doc, "\n"),+),
                shown: config_keys!(@opt $($shown)?),
            },
        )*];

        /// The built-in defaults, by key (derived defaults are absent).
        pub(crate) fn default_values() -> Vec<(&'static str, figment::value::Value)> {
            let mut out = Vec::new();
            $(
                let default: Option<figment::value::Value> = $default;
                if let Some(value) = default {
                    out.push(($key, value));
                }
            )*
            out
        }

        impl Config {
            /// Converts every table key that converts on its own; the
            /// `manual` ones are left at their type's default for
            /// `validate`. A failed key is recorded in `failed`.
            pub(crate) fn from_entries(
                entries: &std::collections::BTreeMap<String, crate::expand::Entry>,
                problems: &mut Vec<crate::error::Problem>,
                failed: &mut std::collections::BTreeSet<&'static str>,
            ) -> Config {
                Config {
                    $($field: config_keys!(@convert entries problems failed $key $default, $check),)*
                }
            }

            /// Every setting by key, in key order.
            pub(crate) fn settings(&self) -> Vec<(&'static str, crate::show::Setting<'_>)> {
                let mut settings = vec![$(($key, config_keys!(@show self $field $($show)?)),)*];
                settings.sort_by_key(|(k, _)| *k);
                settings
            }
        }
    };
    (@opt) => { None };
    (@opt $shown:literal) => { Some($shown) };
    (@convert $entries:ident $problems:ident $failed:ident $key:literal $default:expr, (one $convert:expr)) => {{
        match $entries.get($key) {
            Some(entry) => match ($convert)(&entry.value) {
                Ok(value) => value,
                Err(message) => {
                    $failed.insert($key);
                    $problems.push(crate::error::Problem::value(&entry.origin, $key, message));
                    config_keys!(@fallback $default, $convert)
                }
            },
            None => Default::default(),
        }
    }};
    (@convert $entries:ident $problems:ident $failed:ident $key:literal $default:expr, (many $convert:expr)) => {{
        match $entries.get($key) {
            Some(entry) => match ($convert)(&entry.value) {
                Ok(value) => value,
                Err(messages) => {
                    $failed.insert($key);
                    for message in messages {
                        $problems.push(crate::error::Problem::value(&entry.origin, $key, message));
                    }
                    config_keys!(@fallback $default, $convert)
                }
            },
            None => Default::default(),
        }
    }};
    (@convert $entries:ident $problems:ident $failed:ident $key:literal $default:expr, (manual)) => {
        Default::default()
    };
    // After a failure, the built-in default (as the defaults of keys that
    // follow this one expect), or the type's default.
    (@fallback $default:expr, $convert:expr) => {{
        let default: Option<figment::value::Value> = $default;
        default
            .and_then(|value| ($convert)(&value).ok())
            .unwrap_or_default()
    }};
    (@show $self:ident $field:ident) => { crate::show::Show::show(&$self.$field) };
    (@show $self:ident $field:ident $show:expr) => { ($show)($self) };
}

pub(crate) use config_keys;

/// A key's reference entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyDoc {
    /// The key as written in the file.
    pub(crate) key: &'static str,
    /// Its doc comment, one source line per line.
    pub(crate) doc: &'static str,
    /// How its default is described, when rendering it would not do.
    pub(crate) shown: Option<&'static str>,
}

/// A default in configuration syntax.
pub(crate) fn d(value: impl Into<figment::value::Value>) -> Option<figment::value::Value> {
    Some(value.into())
}
