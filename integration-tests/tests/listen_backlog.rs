//! `smtpd_listen_backlog` reaches `listen(2)`: the kernel's own view of
//! each listening socket (`ss`, iproute2) shows the backlog asked for,
//! capped by `net.core.somaxconn`.

use std::process::Command;

use integration_tests::{Server, have_tool};

/// The backlog (`Send-Q` of a listening socket) of the socket on `port`.
fn backlog_of(port: u16) -> u32 {
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no listener on {port}: {text}"));
    // State Recv-Q Send-Q Local Peer
    line.split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

#[test]
fn the_listen_backlog_is_what_the_configuration_asks_for() {
    if !have_tool("ss") {
        return;
    }
    let server = Server::start("smtpd_listen_backlog = 77");
    assert_eq!(backlog_of(server.addr().port()), 77);
    drop(server);
    let server = Server::start("");
    assert_eq!(
        backlog_of(server.addr().port()),
        4096.min(somaxconn()),
        "the default, within net.core.somaxconn"
    );
}
