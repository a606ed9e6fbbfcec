//! Independent witnesses: what `ip` shows, read from its JSON, and the
//! host's own links (which no test may touch).

use std::process::Command;

use serde_json::Value;

/// Names of every device in the host's namespace (the test process's own).
pub fn host_link_names() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect()
}

/// Panics if any of `names` exists in the host's namespace.
pub fn assert_not_in_host(names: &[&str]) {
    let host = host_link_names();
    for name in names {
        assert!(
            !host.iter().any(|h| h == name),
            "{name} leaked into the host namespace"
        );
    }
}

/// A link's flags as `ip -j` prints them (`UP`, `LOWER_UP`, ...).
pub fn flags(link: &Value) -> Vec<String> {
    link["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(text)
        .collect()
}

/// A JSON field as text, whether `ip` printed it as a number or a string.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An Ethernet address as `ip` prints it (`02:ab:...`).
pub fn parse_mac(text: &str) -> [u8; 6] {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect();
    bytes.try_into().expect("six bytes")
}

/// The `address` of a device as `ip -j link show` gives it.
pub fn link_mac(link: &Value) -> [u8; 6] {
    parse_mac(link["address"].as_str().expect("address"))
}

/// The modified EUI-64 IPv6 link-local address the kernel derives from
/// `mac` (`addrgenmode eui64`, the default), as `ip` prints it.
pub fn eui64_link_local(mac: [u8; 6]) -> String {
    let groups = [
        u16::from_be_bytes([mac[0] ^ 0x02, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    ];
    let addr = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, groups[0], groups[1], groups[2], groups[3]);
    addr.to_string()
}
