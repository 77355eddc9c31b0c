//! Sans-IO SMTP for towerpost.
//!
//! This crate takes byte slices and returns commands, decoded message
//! content, or "need more data"; it renders replies into byte buffers. It
//! never touches a socket, a clock or a file, so every rule here is tested
//! with plain tables (see `tests/`) and a fuzz target (`fuzz/`).
//!
//! * [`CommandReceiver`] frames command lines and enforces the RFC 5321
//!   command line limit (512 octets, configurable upward).
//! * [`Command::parse`] turns one line into a [`Command`] or a
//!   [`CommandError`] that knows its SMTP reply.
//! * [`DataDecoder`] decodes `DATA` content: dot-unstuffing, and only
//!   `<CRLF>.<CRLF>` ends the data, so none of the SMTP smuggling sequences
//!   (`<LF>.<LF>`, `<LF>.<CR><LF>`, `<CR><LF>.<LF>`, `<CR>.<CR>`) can end a
//!   message early.
//! * [`BdatDecoder`] frames RFC 3030 `BDAT` chunks.
//! * [`EhloCapabilities`] is the extension list of an EHLO reply, rendered
//!   by the server and read by the client.
//! * [`MailTime`] writes a time as headers, logs and listings want it.
//! * [`Reply`] is an SMTP reply with an optional enhanced status code;
//!   [`ReplyParser`] reads one from a server, for the SMTP client.
//! * [`Address`], [`Notify`], [`Ret`], [`Nexthop`] and [`Route`] are the
//!   typed values the other crates pass on and store (with the `serde`
//!   feature, in their SMTP text form), never re-parsed from text.

mod address;
mod bdat;
mod command;
mod content;
mod data;
mod data_encoder;
mod date;
mod ehlo;
mod etrn;
mod hostname;
mod params;
mod receiver;
mod reply;
mod reply_parser;
mod route;
#[cfg(feature = "serde")]
mod serde_text;

pub use address::{Address, AddressError};
pub use bdat::BdatDecoder;
pub use command::{Command, CommandError};
pub use content::{BareNewline, ContentIssues};
pub use data::{DataDecoder, DataProgress};
pub use data_encoder::DataEncoder;
pub use date::MailTime;
pub use ehlo::EhloCapabilities;
pub use etrn::{EtrnError, etrn_site};
pub use hostname::{ascii_domain, valid_domain, valid_hostname, valid_mailhost_literal};
pub use params::{Body, MailParams, Notify, RcptParams, Ret};
pub use receiver::{CommandReceiver, Frame};
pub use reply::{EnhancedCode, Reply};
pub use reply_parser::{MAX_REPLY_LINE, MAX_REPLY_LINES, ReplyError, ReplyParser};
pub use route::{Nexthop, Route};
