//! What the LAN-facing tests (front door, remote orchctl) share: this machine's non-loopback
//! address to bind the daemon to, and a fresh API token per run. A machine without one fails
//! the test loudly (nothing is skipped).
#![allow(clippy::expect_used)]

use std::net::{IpAddr, UdpSocket};
use std::process::Command;

/// This machine's address on its LAN (the one its default route leaves from; no packet is
/// sent), else the first non-loopback address `hostname -I` lists.
pub fn lan_ip() -> IpAddr {
    let routed = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.255:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    routed.unwrap_or_else(|| {
        let out = Command::new("hostname").arg("-I").output().expect("hostname -I");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
            .expect("a non-loopback IPv4 address on this machine")
    })
}

/// 40 hex digits, different each run.
pub fn fresh_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    (0..3)
        .map(|i| format!("{:016x}", RandomState::new().hash_one(i)))
        .collect::<String>()[..40]
        .to_string()
}
