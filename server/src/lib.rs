//! towerpost: an asynchronous SMTP relay on a tower service stack.
//!
//! Every SMTP command becomes an [`SmtpRequest`] that flows through a stack
//! of tower layers to [`SmtpCore`]; replies are values. See
//! `docs/design.md` (in the repository root) for the architecture.
//!
//! The public surface is what a [`ServerBuilder`] user composes with — the
//! request and reply types, [`policy`] and [`recover`] in tower's
//! `FooLayer`/`Foo<S>`/`future` shape, [`restrictions`], [`sasl`]'s
//! password file — and what the `towerpost` binary and the integration
//! tests drive: [`control`], [`queue_list`], [`session`]'s test seam,
//! [`delivery`]'s transports and [`sysexits`]. The rest is private.

mod builder;
mod certs;
#[doc = include_str!("../../docs/middleware.md")]
pub mod middleware_guide {}
pub mod control;
mod control_limits;
mod core;
pub mod delivery;
mod etrn_restrictions;
mod listener;
mod logging;
mod metrics_http;
pub mod policy;
mod proxy_header;
pub mod queue_list;
pub mod queue_shape;
mod rate_limit;
pub mod recover;
mod request;
pub mod restrictions;
pub mod sasl;
pub mod session;
mod settings;
mod stack;
mod submit;
pub mod sysexits;
mod tls;

pub use crate::builder::{BoxSmtpService, ServerBuilder};
pub use crate::core::{CoreSettings, SmtpCore};
pub use crate::listener::ServeError;
pub use crate::policy::{PolicyLayer, SmtpPolicy};
pub use crate::recover::{RecoverError, RecoverErrorLayer};
pub use crate::request::{ReceivedMessage, RequestKind, SessionInfo, SmtpRequest, Transaction};
pub use crate::session::{Connection, SessionSettings, SmtpService};
pub use crate::settings::queue_settings;
pub use tower::BoxError;
pub use towerpost_config::Config;
pub use towerpost_protocol::{Address, Command, EnhancedCode, Reply};
