//! Log output: one line per event, shaped like Postfix's mail log lines
//! (`towerpost/smtpd[pid]: 0DJ4QW7H2KX: client=unknown[127.0.0.1]`) so the
//! tools that read those keep working.

use std::fmt;

use towerpost_protocol::MailTime;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats `Mon DD HH:MM:SS host towerpost/<service>[pid]: message`.
struct PostfixFormat {
    host: String,
    pid: u32,
}

impl<S, N> FormatEvent<S, N> for PostfixFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // Targets are `towerpost::<service>`; other crates log as themselves.
        let service = meta
            .target()
            .strip_prefix("towerpost::")
            .unwrap_or(meta.target());
        let service = service.split("::").next().unwrap_or(service);
        let stamp = MailTime::new(std::time::SystemTime::now()).log_stamp();
        write!(
            writer,
            "{stamp} {} towerpost/{service}[{}]: ",
            self.host, self.pid
        )?;
        match *meta.level() {
            tracing::Level::WARN => write!(writer, "warning: ")?,
            tracing::Level::ERROR => write!(writer, "error: ")?,
            _ => {}
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the log subscriber: stderr, filtered by `RUST_LOG` (default
/// `info`).
pub(crate) fn init(myhostname: &str) {
    let host = myhostname
        .split('.')
        .next()
        .unwrap_or(myhostname)
        .to_owned();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(PostfixFormat {
            host,
            pid: std::process::id(),
        })
        .try_init();
}
