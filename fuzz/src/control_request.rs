//! The control socket's request parser, given what any local user can
//! send: no panic, and a request it reads writes back to one that reads
//! the same way.

use towerpost::control::ControlRequest;

/// What requests are made of.
pub const TOKENS: &[&[u8]] = &[
    br#"{"command":"list"}"#,
    br#"{"command":"show","id":"1K1PTTDKV7B"}"#,
    br#"{"command":"flush","target":{"site":"example.test"},"wait":true}"#,
    br#"{"command":"change","action":"delete","ids":["ALL"]}"#,
    br#"{"command":"submit","sender":"a@b.test","recipients":["c@d.test"],"extract":false}"#,
    br#""command":"#,
    br#""target":"#,
    br#""all""#,
    br#""ids":[]"#,
    br#""\u0000""#,
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{\"a\":",
    b"null",
    b"\n",
];

/// Panics when an invariant does not hold for `data`.
pub fn check(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    if let Ok(request) = ControlRequest::parse(&line) {
        let json = serde_json::to_string(&request).expect("a request writes as JSON");
        let again = ControlRequest::parse(&json).expect("a written request reads back");
        assert_eq!(format!("{again:?}"), format!("{request:?}"));
    }
}
