//! Dates as mail writes them: RFC 5322 §3.3 in headers, Postfix's shapes
//! in log lines, queue listings and Message-Ids. One type, formatted by
//! a maintained calendar crate (jiff), always in UTC; the caller supplies
//! the time, so this crate still never reads a clock.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;

/// A point in time, to be written in one of mail's date formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MailTime(Timestamp);

impl MailTime {
    /// `t`, clamped to the years jiff represents (-9999 to 9999).
    pub fn new(t: SystemTime) -> Self {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
        };
        Self::from_unix(secs)
    }

    /// `secs` since the Unix epoch, clamped as [`MailTime::new`].
    pub fn from_unix(secs: i64) -> Self {
        let secs = secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
        Self(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    /// RFC 5322 `date-time`: `Sat, 28 Nov 2026 16:03:54 +0000`.
    pub fn rfc5322(self) -> impl fmt::Display {
        self.0.strftime("%a, %d %b %Y %H:%M:%S +0000")
    }

    /// A syslog time stamp, as Postfix's mail log lines begin:
    /// `Nov 28 16:03:54`, `Dec  2 09:12:46`.
    pub fn log_stamp(self) -> impl fmt::Display {
        self.0.strftime("%b %e %H:%M:%S")
    }

    /// RFC 3339 in UTC, for JSON log lines: `2026-11-28T16:03:54Z`.
    pub fn rfc3339(self) -> impl fmt::Display {
        self.0.strftime("%Y-%m-%dT%H:%M:%SZ")
    }

    /// postqueue's "Arrival Time" column: `Sat Nov 28 16:03:54`.
    pub fn queue_listing(self) -> impl fmt::Display {
        self.0.strftime("%a %b %d %H:%M:%S")
    }

    /// `20261128160354`, for the time part of a Message-Id.
    pub fn compact(self) -> impl fmt::Display {
        self.0.strftime("%Y%m%d%H%M%S")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_format_of_one_time() {
        let t = MailTime::new(UNIX_EPOCH + Duration::from_secs(1_795_881_834));
        assert_eq!(t.rfc5322().to_string(), "Sat, 28 Nov 2026 16:03:54 +0000");
        assert_eq!(t.log_stamp().to_string(), "Nov 28 16:03:54");
        assert_eq!(t.queue_listing().to_string(), "Sat Nov 28 16:03:54");
        assert_eq!(t.compact().to_string(), "20261128160354");
        assert_eq!(t.rfc3339().to_string(), "2026-11-28T16:03:54Z");
    }

    #[test]
    fn single_digit_days_are_padded_as_each_format_pads_them() {
        let t = MailTime::from_unix(1_796_202_766); // 2026-12-02 09:12:46
        assert_eq!(t.rfc5322().to_string(), "Wed, 02 Dec 2026 09:12:46 +0000");
        assert_eq!(t.log_stamp().to_string(), "Dec  2 09:12:46");
        assert_eq!(t.queue_listing().to_string(), "Wed Dec 02 09:12:46");
    }

    #[test]
    fn the_calendar_holds_at_its_edges() {
        assert_eq!(
            MailTime::from_unix(0).rfc5322().to_string(),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
        // A leap day, and the turn of a century that is a leap year.
        assert_eq!(
            MailTime::from_unix(951_782_400).rfc5322().to_string(),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        assert_eq!(
            MailTime::from_unix(-1).rfc5322().to_string(),
            "Wed, 31 Dec 1969 23:59:59 +0000"
        );
        // Out of range is clamped, never a panic.
        let _ = MailTime::from_unix(i64::MAX).rfc5322().to_string();
        let far = UNIX_EPOCH + Duration::from_secs(1 << 40); // some 34,000 years on
        assert!(MailTime::new(far).compact().to_string().starts_with("9999"));
    }
}
