//! The server's settings, built from the validated configuration: every
//! Config → `*Settings` mapping is here, so a key that reaches a layer
//! adds one line in this file.

use std::collections::HashSet;
use std::sync::Arc;

use towerpost_config::{Config, Listener, SmtpdTlsLevel, TlsMode, TransportConfig};
use towerpost_queue::{ManagerSettings, QueueSettings};

use crate::control::SubmitSettings;
use crate::core::CoreSettings;
use crate::delivery::{ClientSasl, MtaSts, SmtpClientSettings, TlsLevel, Trust};
use crate::rate_limit::RateLimitSettings;
use crate::sasl::SharedAuthenticator;
use crate::session::SessionSettings;

/// The queue's settings (the server and the offline CLI open it alike).
pub fn queue_settings(config: &Config) -> QueueSettings {
    QueueSettings {
        directory: config.queue_directory.clone(),
        shards: config.queue_shard_count,
    }
}

/// The queue manager's settings.
pub(crate) fn manager_settings(config: &Config) -> ManagerSettings {
    ManagerSettings {
        myhostname: config.myhostname.clone(),
        queue_run_delay: config.queue_run_delay,
        minimal_backoff_time: config.minimal_backoff_time,
        maximal_backoff_time: config.maximal_backoff_time,
        maximal_queue_lifetime: config.maximal_queue_lifetime,
        bounce_queue_lifetime: config.bounce_queue_lifetime,
        active_limit: config.qmgr_message_active_limit,
        bounce_size_limit: config.bounce_size_limit as usize,
        delay_warning_time: config.delay_warning_time,
        soft_bounce: config.soft_bounce,
        defer_transports: config
            .defer_transports
            .iter()
            .cloned()
            .collect::<HashSet<_>>(),
        initial_destination_concurrency: config.initial_destination_concurrency,
        failed_cohort_limit: config.default_destination_concurrency_failed_cohort_limit,
    }
}

/// What all SMTP transports share: trust anchors, the MTA-STS cache, the
/// name servers and the client login.
#[derive(Debug, Clone)]
pub(crate) struct SmtpShared {
    /// Web PKI roots plus `smtp_tls_CAfile`.
    pub trust: Trust,
    /// The MTA-STS cache, when `smtp_mta_sts_enable`.
    pub mta_sts: Option<Arc<MtaSts>>,
    /// Name servers instead of the system's (tests).
    pub name_servers: Vec<std::net::SocketAddr>,
}

/// The SMTP client's settings for one transport.
pub(crate) fn smtp_client_settings(
    config: &Config,
    transport: &TransportConfig,
    shared: &SmtpShared,
) -> SmtpClientSettings {
    SmtpClientSettings {
        myhostname: config.myhostname.clone(),
        connect_timeout: config.smtp_connect_timeout,
        helo_timeout: config.smtp_helo_timeout,
        mail_timeout: config.smtp_mail_timeout,
        rcpt_timeout: config.smtp_rcpt_timeout,
        data_init_timeout: config.smtp_data_init_timeout,
        data_xfer_timeout: config.smtp_data_xfer_timeout,
        data_done_timeout: config.smtp_data_done_timeout,
        cache_time_limit: config.smtp_connection_cache_time_limit,
        mime_output_conversion: !config.disable_mime_output_conversion,
        tls: TlsLevel::from(transport.tls_security_level),
        tls_policy_maps: config.smtp_tls_policy_maps.clone(),
        trust: shared.trust.clone(),
        mta_sts: shared.mta_sts.clone(),
        name_servers: shared.name_servers.clone(),
        sasl: config
            .smtp_sasl_password_maps
            .clone()
            .filter(|_| config.smtp_sasl_auth_enable)
            .map(|passwords| {
                ClientSasl::new(
                    passwords,
                    config.smtp_sasl_security_options.clone(),
                    config.smtp_sasl_tls_security_options.clone(),
                )
            }),
    }
}

/// The anvil limits.
pub(crate) fn rate_limit_settings(config: &Config) -> RateLimitSettings {
    RateLimitSettings {
        myhostname: config.myhostname.clone(),
        connection_count: u32::try_from(config.smtpd_client_connection_count_limit)
            .unwrap_or(u32::MAX),
        connection_rate: config.smtpd_client_connection_rate_limit,
        message_rate: config.smtpd_client_message_rate_limit,
        recipient_rate: config.smtpd_client_recipient_rate_limit,
        tls_rate: config.smtpd_client_new_tls_session_rate_limit,
        auth_rate: config.smtpd_client_auth_rate_limit,
        time_unit: config.anvil_rate_time_unit,
        exceptions: config.smtpd_client_event_limit_exceptions.clone(),
        ipv4_prefix: config.smtpd_client_ipv4_prefix_length,
        ipv6_prefix: config.smtpd_client_ipv6_prefix_length,
        // As Postfix's anvil: by address, authenticated or not.
        key_by_sasl_identity: false,
    }
}

/// Local submission (`sendmail`, the control socket).
pub(crate) fn submit_settings(config: &Config) -> SubmitSettings {
    SubmitSettings {
        myhostname: config.myhostname.clone(),
        message_size_limit: config.message_size_limit,
    }
}

/// Session settings of `listener` from the configuration; `sasl` checks
/// passwords where the listener enables AUTH.
pub(crate) fn session_settings(
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
        per_record_deadline: config.smtpd_per_record_deadline,
        min_data_rate: config.smtpd_min_data_rate,
    }
}

/// The counters all sessions share.
pub(crate) fn session_load(config: &Config) -> Arc<crate::session::Load> {
    crate::session::Load::new(
        config.smtpd_session_limit,
        config.smtpd_message_memory_limit,
    )
}

/// Core service settings from the configuration.
pub(crate) fn core_settings(config: &Config) -> CoreSettings {
    CoreSettings {
        myhostname: config.myhostname.clone(),
        banner: config.smtpd_banner.clone(),
        message_size_limit: config.message_size_limit,
        recipient_limit: config.smtpd_recipient_limit,
        queue_directory: config.queue_directory.clone(),
        // Postfix: at least 1.5 × message_size_limit.
        queue_minfree: config
            .queue_minfree
            .max(config.message_size_limit.saturating_mul(3) / 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_minfree_is_at_least_one_and_a_half_message_size_limits() {
        let mut config = Config {
            message_size_limit: 10_000_000,
            ..Config::default()
        };
        assert_eq!(core_settings(&config).queue_minfree, 15_000_000);
        config.queue_minfree = 50_000_000;
        assert_eq!(core_settings(&config).queue_minfree, 50_000_000);
        config.message_size_limit = 0;
        config.queue_minfree = 0;
        assert_eq!(core_settings(&config).queue_minfree, 0);
    }
}
