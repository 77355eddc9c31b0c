//! Where mail goes next: the next hop and the route to it, as config
//! resolves them, the queue manager groups deliveries by them and the
//! SMTP client connects to them. One type from `transport_maps` to the
//! socket, so no crate renders a next hop as text for another to parse.

use std::fmt;

/// Where mail goes next: a host or domain and an optional port, in Postfix
/// syntax (`example.com`, `example.com:587`, `[mail.example.com]`,
/// `[192.0.2.1]:25`, `[2001:db8::1]:25`). Configuration parses it
/// (`relayhost`, `transport_maps`).
///
/// Its [`Display`](fmt::Display) output is that syntax, with the port as a
/// number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nexthop {
    /// A domain or host name (lower-case, without a trailing dot), or an IP
    /// address (only when `mx_lookup` is false; IPv6 without brackets or
    /// `ipv6:` prefix).
    pub host: String,
    /// The TCP port; `None` for the default (25 for SMTP). Service names are
    /// resolved: `smtp` 25, `submission` 587, `smtps` and `submissions` 465.
    pub port: Option<u16>,
    /// Whether to look up the MX records of `host` (written without
    /// brackets) rather than connect to `host` itself (written in brackets).
    pub mx_lookup: bool,
}

impl Nexthop {
    /// Mail for `domain` to its MX hosts (the default next hop).
    pub fn domain(domain: impl Into<String>) -> Self {
        Self {
            host: domain.into(),
            port: None,
            mx_lookup: true,
        }
    }

    /// The port to connect to, `default` (25 for SMTP) when none is given.
    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }
}

impl fmt::Display for Nexthop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mx_lookup {
            f.write_str(&self.host)?;
        } else {
            write!(f, "[{}]", self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// The transport and next hop for a recipient domain: what the queue
/// manager groups deliveries by (Postfix's destination queue).
///
/// Its [`Display`](fmt::Display) output is `transport:nexthop`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The name of the transport (`smtp`, `relay`, `etrn-only`, …).
    pub transport: String,
    /// Where to deliver.
    pub nexthop: Nexthop,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.nexthop)
    }
}
