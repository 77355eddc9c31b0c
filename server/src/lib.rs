//! towerpost: an asynchronous SMTP relay on a tower service stack.
//!
//! Every SMTP command becomes an [`SmtpRequest`] that flows through a stack
//! of tower layers to [`SmtpCore`]; replies are values. See
//! `docs/design.md` (in the repository root) for the architecture.

pub mod builder;
pub mod certs;
#[doc = include_str!("../../docs/middleware.md")]
pub mod middleware_guide {}
pub mod control;
mod control_limits;
pub mod core;
pub mod delivery;
pub mod etrn_restrictions;
pub mod listener;
pub mod logging;
pub mod policy;
pub mod queue_list;
pub mod rate_limit;
pub mod recover;
pub mod request;
pub mod restrictions;
pub mod sasl;
pub mod session;
pub mod settings;
pub mod stack;
pub mod submit;
pub mod sysexits;
pub mod tls;

pub use crate::builder::{BoxSmtpService, ServerBuilder};
pub use crate::core::{CoreSettings, SmtpCore};
pub use crate::policy::{PolicyLayer, SmtpPolicy};
pub use crate::recover::{RecoverError, RecoverErrorLayer};
pub use crate::request::{ReceivedMessage, RequestKind, SessionInfo, SmtpRequest, Transaction};
pub use crate::session::{Connection, SessionSettings, SmtpService};
pub use tower::BoxError;
pub use towerpost_config::Config;
pub use towerpost_protocol::{Address, Command, EnhancedCode, Reply};
