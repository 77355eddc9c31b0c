//! The server's settings, built from the validated configuration.

use towerpost_config::{Config, Listener, SmtpdTlsLevel, TlsMode};

use crate::core::CoreSettings;
use crate::sasl::SharedAuthenticator;
use crate::session::SessionSettings;

/// Session settings of `listener` from the configuration; `sasl` checks
/// passwords where the listener enables AUTH.
pub fn session_settings(
    config: &Config,
    listener: &Listener,
    sasl: Option<SharedAuthenticator>,
) -> SessionSettings {
    let policy = config.smtpd_policy(listener);
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    SessionSettings {
        myhostname: config.myhostname.clone(),
        timeout: config.smtpd_timeout,
        helo_required: config.smtpd_helo_required,
        hard_error_limit: to_u32(config.smtpd_hard_error_limit),
        soft_error_limit: to_u32(config.smtpd_soft_error_limit),
        error_sleep_time: config.smtpd_error_sleep_time,
        junk_command_limit: to_u32(config.smtpd_junk_command_limit),
        bare_newline: match config.smtpd_forbid_bare_newline {
            towerpost_config::BareNewline::Normalize => towerpost_protocol::BareNewline::Normalize,
            towerpost_config::BareNewline::Reject => towerpost_protocol::BareNewline::Reject,
        },
        forbid_unauth_pipelining: config.smtpd_forbid_unauth_pipelining,
        command_line_limit: config.smtpd_command_line_limit,
        text_line_limit: config.smtpd_text_line_limit,
        message_size_limit: config.message_size_limit,
        sasl: sasl.filter(|_| policy.sasl_auth_enable),
        tls_auth_only: policy.tls_auth_only,
        tls_required: policy.tls_security_level == SmtpdTlsLevel::Encrypt
            && listener.tls != TlsMode::Implicit,
    }
}

/// Core service settings from the configuration.
pub fn core_settings(config: &Config) -> CoreSettings {
    CoreSettings {
        myhostname: config.myhostname.clone(),
        banner: config.smtpd_banner.clone(),
        message_size_limit: config.message_size_limit,
        recipient_limit: config.smtpd_recipient_limit,
    }
}
