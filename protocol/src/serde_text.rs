//! Serde for the values the queue stores, as the text SMTP gives them
//! (`a@example.com`, `SUCCESS,DELAY`, `HDRS`): a record stays readable by
//! eye and by every earlier reader, and reading it parses it again with
//! the same rules as the wire.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{Address, Notify, Ret};

/// Visits a string and parses it with `parse`.
struct Text<F>(&'static str, F);

impl<'de, T, E: fmt::Debug, F: FnOnce(&str) -> Result<T, E>> Visitor<'de> for Text<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<Er: de::Error>(self, v: &str) -> Result<T, Er> {
        (self.1)(v).map_err(|e| Er::custom(format_args!("{}: {v:?} ({e:?})", self.0)))
    }
}

macro_rules! serde_as_text {
    ($type:ty, $expecting:literal, $parse:expr) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(Text($expecting, $parse))
            }
        }
    };
}

serde_as_text!(Address, "an RFC 5321 mailbox", Address::parse);
serde_as_text!(Notify, "an RFC 3461 NOTIFY value", str::parse::<Notify>);
serde_as_text!(Ret, "FULL or HDRS", str::parse::<Ret>);
