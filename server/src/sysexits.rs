//! sysexits(3): the exit codes of the Postfix-compatible commands
//! (`postqueue`, `sendmail`, `postsuper`, `towerpost queue …`), which
//! scripts and cron jobs test as they test Postfix's.

/// Command line usage error.
pub const EX_USAGE: u8 = 64;
/// Input data was incorrect (a message that cannot be queued).
pub const EX_DATAERR: u8 = 65;
/// No such input (an unknown queue id).
pub const EX_NOINPUT: u8 = 66;
/// Addressee unknown (no such user).
pub const EX_NOUSER: u8 = 67;
/// Service unavailable (the server is down, or refuses the request).
pub const EX_UNAVAILABLE: u8 = 69;
/// Internal software error.
pub const EX_SOFTWARE: u8 = 70;
/// Temporary failure: try again later.
pub const EX_TEMPFAIL: u8 = 75;
/// Configuration error.
pub const EX_CONFIG: u8 = 78;
