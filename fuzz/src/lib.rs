//! What towerpost's input parsers promise on any bytes at all, one
//! `check` per parser: no panic, bounded buffers, and where a parser
//! accepts something, that it reads back what it wrote.
//!
//! The same checks run two ways: as cargo-fuzz targets with coverage
//! guidance (`libfuzzer/`, nightly), and as seeded random-input tests on
//! stable (`tests/seeded.rs`, part of `cargo test --workspace`), which
//! mutate the committed corpus in `corpus/<target>/`. An input that once
//! broke a check is kept in the corpus, so it is a regression test from
//! then on. See docs/reliability.md.

pub mod config_loader;
pub mod control_request;
pub mod mutate;
pub mod queue_record;
pub mod reply_parser;
pub mod session_input;

/// A named check, as the fuzz targets and the seeded tests know it.
pub struct Target {
    /// The cargo-fuzz target and corpus directory name.
    pub name: &'static str,
    /// Panics when an invariant does not hold for `data`.
    pub check: fn(&[u8]),
    /// Tokens the seeded mutator splices in: what the parser looks for.
    pub tokens: &'static [&'static [u8]],
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "session_input",
        check: session_input::check,
        tokens: session_input::TOKENS,
    },
    Target {
        name: "reply_parser",
        check: reply_parser::check,
        tokens: reply_parser::TOKENS,
    },
    Target {
        name: "config_loader",
        check: config_loader::check,
        tokens: config_loader::TOKENS,
    },
    Target {
        name: "queue_record",
        check: queue_record::check,
        tokens: queue_record::TOKENS,
    },
    Target {
        name: "control_request",
        check: control_request::check,
        tokens: control_request::TOKENS,
    },
];
