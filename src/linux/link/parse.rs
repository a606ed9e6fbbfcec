//! Reading `RTM_NEWLINK` replies in place (no allocation per attribute: a
//! dump of thousands of links spends its time here otherwise).

use super::{
    AF_INET, AF_INET6, IFINFOMSG_LEN, IFLA_GRO_IPV4_MAX_SIZE, IFLA_GSO_IPV4_MAX_SIZE,
    IFLA_INET_CONF, IFLA_INET6_CONF, IFLA_INET6_TOKEN, IFLA_XDP_ATTACHED, XDP_ATTACHED_NONE,
};
use crate::kernel::{LinkInfo, TunKind};
use crate::linux::LinkSummary;
use crate::linux::netlink::{Attrs, Malformed, c_str, c_string, read_attr_u32, read_u32};
use crate::name::TapName;

/// `IFLA_TUN_*` (linux/if_link.h; the libc crate lacks them): the tun
/// driver's attributes inside `IFLA_INFO_DATA`.
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_VNET_HDR: u16 = 5;
const IFLA_TUN_PERSIST: u16 = 6;
const IFLA_TUN_MULTI_QUEUE: u16 = 7;
const IFLA_TUN_NUM_QUEUES: u16 = 8;
const IFLA_TUN_NUM_DISABLED_QUEUES: u16 = 9;

/// `IFF_TUN` and `IFF_TAP` (libc's values) as the one byte of
/// `IFLA_TUN_TYPE`.
const IFF_TUN: u8 = libc::IFF_TUN as u8;
const IFF_TAP: u8 = libc::IFF_TAP as u8;

/// The `ifinfomsg` at the start of `payload`, and the attributes after it.
fn split_ifinfomsg(payload: &[u8]) -> Result<(&[u8], Attrs<'_>), Malformed> {
    if payload.len() < IFINFOMSG_LEN {
        return Err(Malformed::Truncated {
            what: "ifinfomsg",
            len: payload.len(),
            need: IFINFOMSG_LEN,
        });
    }
    let (ifinfomsg, attrs) = payload.split_at(IFINFOMSG_LEN);
    Ok((ifinfomsg, Attrs(attrs)))
}

/// Reads one `RTM_NEWLINK` payload; `None` if the link is not a tun/tap (or
/// the kernel sent no name for it that is a device name, which it never
/// does: see [`exact_name`]).
pub(crate) fn parse_tun_link(payload: &[u8]) -> Result<Option<LinkInfo>, Malformed> {
    // struct ifinfomsg: family, pad, type (u16), index, flags, change.
    let (ifinfomsg, attrs) = split_ifinfomsg(payload)?;
    let link_type = u16::from_ne_bytes([ifinfomsg[2], ifinfomsg[3]]);
    let index = read_u32(ifinfomsg, 4);
    let flags = read_u32(ifinfomsg, 8);
    let mut name = None;
    let mut mtu = 0;
    let mut master = None;
    let mut device_group = 0;
    let mut mac = [0; 6];
    let mut tun = None;
    let mut carrier = None;
    for (kind, data) in attrs {
        match kind {
            libc::IFLA_IFNAME => name = Some(data),
            libc::IFLA_MTU => mtu = read_attr_u32(kind, data)?,
            libc::IFLA_MASTER => master = Some(read_attr_u32(kind, data)?),
            libc::IFLA_GROUP => device_group = read_attr_u32(kind, data)?,
            libc::IFLA_CARRIER => carrier = data.first().map(|&c| c != 0),
            libc::IFLA_ADDRESS => {
                if let Ok(address) = data.try_into() {
                    mac = address;
                }
            }
            libc::IFLA_LINKINFO => tun = parse_tun_info(data)?,
            _ => {}
        }
    }
    let (Some(name), Some(tun)) = (name, tun) else {
        return Ok(None);
    };
    let Some(name) = exact_name(name) else {
        tracing::warn!(
            index,
            name = %name.escape_ascii(),
            "skipping a tun device whose name is no device name"
        );
        return Ok(None);
    };
    let up = flags & libc::IFF_UP as u32 != 0;
    let lower_up = flags & libc::IFF_LOWER_UP as u32 != 0;
    Ok(Some(LinkInfo {
        name,
        index,
        kind: tun.kind,
        persistent: tun.persistent,
        owner: tun.owner,
        group: tun.group,
        master,
        mtu,
        up,
        // Whether a file is attached. Multi-queue taps report their queues;
        // for the others the tun driver turns the carrier on when a file
        // attaches and off when the last one goes (the pool creates taps with
        // the carrier off). IFLA_CARRIER says so even while the device is
        // down, when LOWER_UP shows nothing though a VMM holds it open.
        in_use: if tun.attached_unknown {
            carrier.unwrap_or(lower_up)
        } else {
            tun.attached > 0
        },
        device_group,
        mac,
        vnet_hdr: tun.vnet_hdr,
        multi_queue: tun.multi_queue,
        queues: (!tun.attached_unknown).then_some(tun.attached),
        link_type,
    }))
}

/// The tun driver's own view of a device (`IFLA_INFO_DATA`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TunData {
    pub(crate) kind: TunKind,
    pub(crate) persistent: bool,
    pub(crate) owner: Option<u32>,
    pub(crate) group: Option<u32>,
    /// Files attached (enabled and disabled queues).
    pub(crate) attached: u32,
    /// The kernel did not say how many: it reports queues only for a
    /// multi-queue device (and not at all before 4.15).
    pub(crate) attached_unknown: bool,
    /// `IFLA_TUN_VNET_HDR`.
    pub(crate) vnet_hdr: bool,
    /// `IFLA_TUN_MULTI_QUEUE`.
    pub(crate) multi_queue: bool,
}

/// Reads `IFLA_LINKINFO`; `None` unless its kind is `tun`.
pub(crate) fn parse_tun_info(linkinfo: &[u8]) -> Result<Option<TunData>, Malformed> {
    let mut is_tun = false;
    let mut data = None;
    for (kind, value) in Attrs(linkinfo) {
        match kind {
            libc::IFLA_INFO_KIND => is_tun = c_str(value) == "tun",
            libc::IFLA_INFO_DATA => data = Some(value),
            _ => {}
        }
    }
    let Some(data) = data.filter(|_| is_tun) else {
        return Ok(None);
    };
    let mut tun = TunData {
        kind: TunKind::Tun,
        persistent: false,
        owner: None,
        group: None,
        attached: 0,
        attached_unknown: true,
        vnet_hdr: false,
        multi_queue: false,
    };
    // The kernel omits owner and group when unset, and older kernels sent
    // (u32)-1 for them; both mean "not set".
    let id = |kind, value| read_attr_u32(kind, value).map(|id| (id != u32::MAX).then_some(id));
    for (kind, value) in Attrs(data) {
        match kind {
            IFLA_TUN_TYPE => {
                tun.kind = match value.first() {
                    Some(&IFF_TAP) => TunKind::Tap,
                    Some(&IFF_TUN) => TunKind::Tun,
                    other => return Err(Malformed::TunType(other.copied())),
                }
            }
            IFLA_TUN_PERSIST => tun.persistent = value.first().is_some_and(|&b| b != 0),
            IFLA_TUN_VNET_HDR => tun.vnet_hdr = value.first().is_some_and(|&b| b != 0),
            IFLA_TUN_MULTI_QUEUE => tun.multi_queue = value.first().is_some_and(|&b| b != 0),
            IFLA_TUN_OWNER => tun.owner = id(kind, value)?,
            IFLA_TUN_GROUP => tun.group = id(kind, value)?,
            IFLA_TUN_NUM_QUEUES | IFLA_TUN_NUM_DISABLED_QUEUES => {
                tun.attached = tun.attached.saturating_add(read_attr_u32(kind, value)?);
                tun.attached_unknown = false;
            }
            _ => {}
        }
    }
    Ok(Some(tun))
}

/// What tells one link from another: its index, its name, and whether it
/// is a tap (`IFLA_INFO_KIND` "tun", `IFLA_TUN_TYPE` `IFF_TAP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkIdentity {
    /// `ifi_index`.
    pub(crate) index: u32,
    /// `IFLA_IFNAME`, if the kernel sent one (see [`exact_name`]).
    pub(crate) name: Option<TapName>,
    /// Whether it is a tun/tap device in tap mode; a tun-mode device, a
    /// bridge, a veth, `lo` are not.
    pub(crate) tap: bool,
}

/// Reads one `RTM_NEWLINK` payload (a reply to a `RTM_GETLINK` of one link)
/// for what identifies the link. A tun/tap device's `IFLA_LINKINFO` is read
/// by [`parse_tun_info`], so an unknown tun type is malformed here too.
pub(crate) fn parse_link_identity(payload: &[u8]) -> Result<LinkIdentity, Malformed> {
    let (ifinfomsg, attrs) = split_ifinfomsg(payload)?;
    let mut identity = LinkIdentity {
        index: read_u32(ifinfomsg, 4),
        name: None,
        tap: false,
    };
    for (kind, data) in attrs {
        match kind {
            libc::IFLA_IFNAME => identity.name = exact_name(data),
            libc::IFLA_LINKINFO => {
                identity.tap = parse_tun_info(data)?.is_some_and(|tun| tun.kind == TunKind::Tap);
            }
            _ => {}
        }
    }
    Ok(identity)
}

/// Reads one `RTM_NEWLINK` payload (a dump's, or a notification's) for the
/// link's index and name; the name is `None` where the kernel sent none
/// (see [`exact_name`]). Nothing else is read, so no other attribute can
/// make a notification malformed.
pub(crate) fn parse_link_name(payload: &[u8]) -> Result<(u32, Option<TapName>), Malformed> {
    let (ifinfomsg, attrs) = split_ifinfomsg(payload)?;
    let name = attrs
        .filter(|&(kind, _)| kind == libc::IFLA_IFNAME)
        .map(|(_, data)| exact_name(data))
        .next()
        .flatten();
    Ok((read_u32(ifinfomsg, 4), name))
}

/// `IFLA_IFNAME`'s bytes up to the first NUL as a [`TapName`], byte for
/// byte: never a lossy copy, which could name another device (`tap\xff`
/// and `tap\xfe` are two). `TapName` takes every name the kernel gives a
/// device, UTF-8 or not, so this is `None` only for an attribute no device
/// name fits (empty, too long, a byte `dev_valid_name` refuses, or `%`),
/// which the kernel never sends.
pub(crate) fn exact_name(data: &[u8]) -> Option<TapName> {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    TapName::from_bytes(&data[..end]).ok()
}

/// Reads one `RTM_NEWLINK` payload of a dump of every link: its index,
/// name, kind, master and device group; `None` where the kernel sent no
/// name a device can have (see [`exact_name`]), which it never does.
pub(crate) fn parse_link_summary(payload: &[u8]) -> Result<Option<LinkSummary>, Malformed> {
    let (ifinfomsg, attrs) = split_ifinfomsg(payload)?;
    let mut name = None;
    let mut kind = None;
    let mut master = None;
    let mut device_group = 0;
    for (attr, data) in attrs {
        match attr {
            libc::IFLA_IFNAME => name = exact_name(data),
            libc::IFLA_MASTER => master = Some(read_attr_u32(attr, data)?),
            libc::IFLA_GROUP => device_group = read_attr_u32(attr, data)?,
            libc::IFLA_LINKINFO => {
                kind = Attrs(data)
                    .find(|&(info, _)| info == libc::IFLA_INFO_KIND)
                    .map(|(_, value)| c_string(value));
            }
            _ => {}
        }
    }
    Ok(name.map(|name| LinkSummary {
        index: read_u32(ifinfomsg, 4),
        name,
        kind,
        master,
        device_group,
    }))
}

/// Reads one `RTM_NEWLINK` payload of a group dump: the link's name if it
/// is in device group `group`.
pub(crate) fn parse_group_member(payload: &[u8], group: u32) -> Result<Option<TapName>, Malformed> {
    let (_, attrs) = split_ifinfomsg(payload)?;
    let mut name = None;
    let mut in_group = false;
    for (kind, data) in attrs {
        match kind {
            libc::IFLA_IFNAME => name = exact_name(data),
            libc::IFLA_GROUP => in_group = read_attr_u32(kind, data)? == group,
            _ => {}
        }
    }
    if !in_group {
        return Ok(None);
    }
    match name {
        Some(name) => Ok(Some(name)),
        // A member the pool cannot name (the kernel sent no name, or none
        // a device can have) cannot be told to be its own: the listing
        // fails, and a drain deletes its taps one by one rather than the
        // whole group.
        None => Err(Malformed::UnnamedMember),
    }
}

/// What a reset compares with a fresh tap's: the settings of a link that
/// `RTM_SETLINK` and the per-device sysctls can change, and that its
/// holder's orchestrator may have changed for the last tenant. A setting
/// the kernel did not report is `None` (or empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkState {
    /// `ifi_flags`, as the kernel reports them (`dev_get_flags`:
    /// `IFF_PROMISC` and `IFF_ALLMULTI` are the ones set by a user).
    pub(crate) flags: u32,
    /// `IFLA_ADDRESS`.
    pub(crate) mac: Option<[u8; 6]>,
    /// `IFLA_MTU`.
    pub(crate) mtu: Option<u32>,
    /// `IFLA_MASTER`.
    pub(crate) master: Option<u32>,
    /// `IFLA_TXQLEN`.
    pub(crate) txqlen: Option<u32>,
    /// Whether it has an alias (`IFLA_IFALIAS`, sent only when set).
    pub(crate) alias: bool,
    /// `IFLA_BROADCAST`.
    pub(crate) broadcast: Option<[u8; 6]>,
    /// `IFLA_LINKMODE`.
    pub(crate) linkmode: Option<u8>,
    /// `IFLA_GSO_MAX_SIZE`.
    pub(crate) gso_max_size: Option<u32>,
    /// `IFLA_GSO_MAX_SEGS`.
    pub(crate) gso_max_segs: Option<u32>,
    /// `IFLA_GRO_MAX_SIZE`.
    pub(crate) gro_max_size: Option<u32>,
    /// `IFLA_GSO_IPV4_MAX_SIZE`.
    pub(crate) gso_ipv4_max_size: Option<u32>,
    /// `IFLA_GRO_IPV4_MAX_SIZE`.
    pub(crate) gro_ipv4_max_size: Option<u32>,
    /// How an XDP program is attached (`IFLA_XDP_ATTACHED`:
    /// `XDP_ATTACHED_*`).
    pub(crate) xdp: u8,
    /// Its alternative names (`IFLA_PROP_LIST` / `IFLA_ALT_IFNAME`).
    pub(crate) altnames: Vec<String>,
    /// The IPv4 per-device settings (`IFLA_INET_CONF`): the value of
    /// `IPV4_DEVCONF_*` `n` at `n - 1`. Empty without IPv4.
    pub(crate) inet_conf: Vec<u32>,
    /// The IPv6 per-device settings (`IFLA_INET6_CONF`): the value of
    /// `DEVCONF_*` `n` at `n`. Empty without IPv6 on the link.
    pub(crate) inet6_conf: Vec<i32>,
    /// Whether an IPv6 interface identifier token is set
    /// (`IFLA_INET6_TOKEN` other than `::`).
    pub(crate) inet6_token: bool,
}

/// Reads one `RTM_NEWLINK` payload (a reply to a `RTM_GETLINK` of one
/// link) for its [`LinkState`] and its index.
pub(crate) fn parse_link_state(payload: &[u8]) -> Result<(u32, LinkState), Malformed> {
    let (ifinfomsg, attrs) = split_ifinfomsg(payload)?;
    let mut state = LinkState {
        flags: read_u32(ifinfomsg, 8),
        xdp: XDP_ATTACHED_NONE,
        ..LinkState::default()
    };
    let u32_of = |kind, data| read_attr_u32(kind, data).map(Some);
    for (kind, data) in attrs {
        match kind {
            libc::IFLA_ADDRESS => state.mac = data.try_into().ok(),
            libc::IFLA_MTU => state.mtu = u32_of(kind, data)?,
            libc::IFLA_MASTER => state.master = u32_of(kind, data)?,
            libc::IFLA_TXQLEN => state.txqlen = u32_of(kind, data)?,
            libc::IFLA_IFALIAS => state.alias = !c_str(data).is_empty(),
            libc::IFLA_BROADCAST => state.broadcast = data.try_into().ok(),
            libc::IFLA_LINKMODE => state.linkmode = data.first().copied(),
            libc::IFLA_GSO_MAX_SIZE => state.gso_max_size = u32_of(kind, data)?,
            libc::IFLA_GSO_MAX_SEGS => state.gso_max_segs = u32_of(kind, data)?,
            libc::IFLA_GRO_MAX_SIZE => state.gro_max_size = u32_of(kind, data)?,
            IFLA_GSO_IPV4_MAX_SIZE => state.gso_ipv4_max_size = u32_of(kind, data)?,
            IFLA_GRO_IPV4_MAX_SIZE => state.gro_ipv4_max_size = u32_of(kind, data)?,
            libc::IFLA_XDP => {
                if let Some((_, attached)) =
                    Attrs(data).find(|&(kind, _)| kind == IFLA_XDP_ATTACHED)
                {
                    state.xdp = attached.first().copied().unwrap_or(XDP_ATTACHED_NONE);
                }
            }
            libc::IFLA_PROP_LIST => {
                state.altnames = Attrs(data)
                    .filter(|&(kind, _)| kind == libc::IFLA_ALT_IFNAME)
                    .map(|(_, name)| c_string(name))
                    .collect();
            }
            libc::IFLA_AF_SPEC => parse_af_spec(data, &mut state),
            _ => {}
        }
    }
    Ok((read_u32(ifinfomsg, 4), state))
}

/// Reads `IFLA_AF_SPEC`'s IPv4 and IPv6 settings into `state`.
fn parse_af_spec(af_spec: &[u8], state: &mut LinkState) {
    let words = |bytes: &[u8]| -> Vec<[u8; 4]> {
        bytes
            .chunks_exact(4)
            .map(|word| [word[0], word[1], word[2], word[3]])
            .collect()
    };
    for (family, data) in Attrs(af_spec) {
        for (kind, value) in Attrs(data) {
            match (family, kind) {
                (AF_INET, IFLA_INET_CONF) => {
                    state.inet_conf = words(value).into_iter().map(u32::from_ne_bytes).collect();
                }
                (AF_INET6, IFLA_INET6_CONF) => {
                    state.inet6_conf = words(value).into_iter().map(i32::from_ne_bytes).collect();
                }
                (AF_INET6, IFLA_INET6_TOKEN) => {
                    state.inet6_token = value.iter().any(|&b| b != 0);
                }
                _ => {}
            }
        }
    }
}

/// Parsers against replies captured from Linux 6.18 (`testdata/README.md`
/// says how). Little-endian hosts only.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::linux::netlink::split_message;

    /// The data messages' payloads of a captured dump.
    fn payloads(mut rest: &[u8]) -> Vec<&[u8]> {
        let mut found = Vec::new();
        while !rest.is_empty() {
            let (header, payload, next) = split_message(rest).expect("framed");
            rest = next;
            if header.kind == libc::RTM_NEWLINK {
                found.push(payload);
            }
        }
        found
    }

    fn name(name: &str) -> TapName {
        TapName::new(name).expect("valid")
    }

    #[test]
    fn captured_tun_dump() {
        let dump = payloads(include_bytes!("../testdata/tun_dump.bin"));
        let links: Vec<_> = dump
            .iter()
            .map(|payload| parse_tun_link(payload).expect("parses"))
            .collect();
        let tap = LinkInfo {
            name: name("tapc0"),
            index: 3,
            kind: TunKind::Tap,
            persistent: true,
            owner: Some(1000),
            group: Some(100),
            master: Some(2),
            mtu: 1400,
            up: true,
            in_use: false,
            device_group: 7,
            mac: [0x02, 0, 0, 0, 0, 0x07],
            vnet_hdr: false,
            multi_queue: false,
            queues: None,
            link_type: libc::ARPHRD_ETHER,
        };
        let tun = LinkInfo {
            name: name("tunc0"),
            index: 4,
            kind: TunKind::Tun,
            persistent: true,
            owner: None,
            group: None,
            master: None,
            mtu: 1500,
            up: false,
            in_use: false,
            device_group: 7,
            mac: [0; 6],
            vnet_hdr: false,
            multi_queue: false,
            queues: None,
            link_type: libc::ARPHRD_NONE,
        };
        assert_eq!(links, [Some(tap), Some(tun)]);
    }

    #[test]
    fn captured_tun_info() {
        let dump = payloads(include_bytes!("../testdata/tun_dump.bin"));
        let linkinfo = Attrs(&dump[0][IFINFOMSG_LEN..])
            .find(|&(kind, _)| kind == libc::IFLA_LINKINFO)
            .map(|(_, value)| value)
            .expect("IFLA_LINKINFO");
        assert_eq!(
            parse_tun_info(linkinfo),
            Ok(Some(TunData {
                kind: TunKind::Tap,
                persistent: true,
                owner: Some(1000),
                group: Some(100),
                attached: 0,
                // Not multi-queue: no IFLA_TUN_NUM_QUEUES from the kernel.
                attached_unknown: true,
                vnet_hdr: false,
                multi_queue: false,
            }))
        );
    }

    /// `lo` and the bridge are not tun links: no `LinkInfo`, no error.
    #[test]
    fn captured_other_links_are_skipped() {
        let dump = payloads(include_bytes!("../testdata/group_dump.bin"));
        assert_eq!(dump.len(), 4);
        assert_eq!(parse_tun_link(dump[0]), Ok(None)); // lo
        assert_eq!(parse_tun_link(dump[1]), Ok(None)); // br0
    }

    #[test]
    fn captured_group_dump() {
        let dump = payloads(include_bytes!("../testdata/group_dump.bin"));
        let members = |group| -> Vec<TapName> {
            dump.iter()
                .filter_map(|payload| parse_group_member(payload, group).expect("parses"))
                .collect()
        };
        assert_eq!(members(7), [name("tapc0"), name("tunc0")]);
        assert_eq!(members(0), [name("lo"), name("br0")]);
        assert!(members(8).is_empty());
    }

    #[test]
    fn captured_summaries_of_every_link() {
        let dump = payloads(include_bytes!("../testdata/group_dump.bin"));
        let summaries: Vec<_> = dump
            .iter()
            .map(|payload| parse_link_summary(payload).expect("parses"))
            .collect();
        let summary = |index, n: &str, kind: Option<&str>, master, device_group| {
            Some(LinkSummary {
                index,
                name: name(n),
                kind: kind.map(str::to_owned),
                master,
                device_group,
            })
        };
        assert_eq!(
            summaries,
            [
                summary(1, "lo", None, None, 0),
                summary(2, "br0", Some("bridge"), None, 0),
                summary(3, "tapc0", Some("tun"), Some(2), 7),
                summary(4, "tunc0", Some("tun"), None, 7),
            ]
        );
    }

    /// The one link of a captured reply to `link::get::link_request`, and
    /// the status after it.
    fn one_link(reply: &[u8]) -> (Result<LinkIdentity, Malformed>, i32) {
        let (header, payload, rest) = split_message(reply).expect("framed");
        assert_eq!(header.kind, libc::RTM_NEWLINK);
        let (header, status, rest) = split_message(rest).expect("framed");
        assert!(rest.is_empty());
        let code = crate::linux::netlink::parse_status(header, status)
            .expect("a status")
            .code;
        (parse_link_identity(payload), code)
    }

    #[test]
    fn captured_one_link_replies() {
        let identity = |index, n, tap| {
            Ok(LinkIdentity {
                index,
                name: Some(name(n)),
                tap,
            })
        };
        // Each reply is the link, then the ack (status 0).
        let tap = identity(3, "tapc0", true);
        assert_eq!(
            one_link(include_bytes!("../testdata/getlink_tap.bin")),
            (tap, 0)
        );
        assert_eq!(
            one_link(include_bytes!("../testdata/getlink_by_name.bin")),
            (tap, 0)
        );
        // A tun/tap device in tun mode is not a tap.
        assert_eq!(
            one_link(include_bytes!("../testdata/getlink_tun.bin")),
            (identity(4, "tunc0", false), 0)
        );
        assert_eq!(
            one_link(include_bytes!("../testdata/getlink_bridge.bin")),
            (identity(2, "br0", false), 0)
        );
        assert_eq!(
            one_link(include_bytes!("../testdata/getlink_lo.bin")),
            (identity(1, "lo", false), 0)
        );
    }

    #[test]
    fn captured_one_link_of_no_such_index() {
        let reply = include_bytes!("../testdata/getlink_enodev.bin");
        let (header, payload, rest) = split_message(reply).expect("framed");
        assert!(rest.is_empty());
        let status = crate::linux::netlink::parse_status(header, payload).expect("a status");
        assert_eq!(status.code, -libc::ENODEV);
    }

    #[test]
    fn captured_names_of_a_dump() {
        let dump = payloads(include_bytes!("../testdata/group_dump.bin"));
        let names: Vec<_> = dump
            .iter()
            .map(|payload| parse_link_name(payload).expect("parses"))
            .collect();
        assert_eq!(
            names,
            [
                (1, Some(name("lo"))),
                (2, Some(name("br0"))),
                (3, Some(name("tapc0"))),
                (4, Some(name("tunc0"))),
            ]
        );
    }

    /// Never a lossy copy of a name: bytes that are not UTF-8 are kept as
    /// they are (two such names stay two), and an attribute no device name
    /// fits gives none.
    #[test]
    fn exact_names_only() {
        let bytes = |b: &[u8]| Some(TapName::from_bytes(b).expect("valid"));
        assert_eq!(exact_name(b"tap0\0\0\0"), Some(name("tap0")));
        assert_eq!(exact_name(b"tap0"), Some(name("tap0")));
        assert_eq!(exact_name(b"tap\xff\0"), bytes(b"tap\xff"));
        assert_eq!(exact_name(b"tap\xfe\0"), bytes(b"tap\xfe"));
        assert_ne!(exact_name(b"tap\xff\0"), exact_name(b"tap\xfe\0"));
        assert_eq!(
            exact_name("t\u{2003}x\0".as_bytes()),
            Some(name("t\u{2003}x"))
        );
        // What the kernel never sends as a name: white space to it, none.
        assert_eq!(exact_name("tap\u{a0}0\0".as_bytes()), None);
        assert_eq!(exact_name(b"\0"), None);
        assert_eq!(exact_name(b""), None);
        assert_eq!(exact_name(b"sixteen-bytes-xx\0"), None);
    }

    /// A group member and a tun link named with bytes that are not UTF-8
    /// are read under their exact names (once, they were dropped or made
    /// lossy: `tap\xff` and `tap\xfe` both read as `tap\u{fffd}`).
    #[test]
    fn names_that_are_not_utf8_are_kept() {
        let dump = payloads(include_bytes!("../testdata/group_dump.bin"));
        // tapc0 (group 7, a tun link) renamed: "tapc0" becomes "tap\xff\xfe".
        let renamed: Vec<u8> = {
            let mut payload = dump[2].to_vec();
            let at = payload
                .windows(6)
                .position(|w| w == b"tapc0\0")
                .expect("tapc0's IFLA_IFNAME");
            payload[at..at + 5].copy_from_slice(b"tap\xff\xfe");
            payload
        };
        let odd = TapName::from_bytes(b"tap\xff\xfe").expect("valid");
        assert_eq!(parse_group_member(&renamed, 7), Ok(Some(odd)));
        assert_eq!(parse_link_name(&renamed).map(|(_, n)| n), Ok(Some(odd)));
        let tun_dump = payloads(include_bytes!("../testdata/tun_dump.bin"));
        let mut tap = tun_dump[0].to_vec();
        let at = tap
            .windows(6)
            .position(|w| w == b"tapc0\0")
            .expect("tapc0's IFLA_IFNAME");
        tap[at..at + 5].copy_from_slice(b"tap\xff\xfe");
        assert_eq!(
            parse_tun_link(&tap).expect("parses").map(|l| l.name),
            Some(odd)
        );
    }

    /// A tap with leftovers (`testdata/README.md` says which), read for
    /// what a reset compares.
    #[test]
    fn captured_link_state() {
        let reply = include_bytes!("../testdata/getlink_leftovers.bin");
        let (header, payload, _) = split_message(reply).expect("framed");
        assert_eq!(header.kind, libc::RTM_NEWLINK);
        let (index, state) = parse_link_state(payload).expect("parses");
        assert_eq!(index, 3);
        let flag = |f: i32| state.flags & f as u32 != 0;
        assert!(flag(libc::IFF_UP) && flag(libc::IFF_PROMISC) && flag(libc::IFF_MULTICAST));
        assert!(!flag(libc::IFF_ALLMULTI) && !flag(libc::IFF_NOARP));
        assert_eq!(state.mtu, Some(1500));
        assert_eq!(state.master, Some(2));
        assert_eq!(state.txqlen, Some(77));
        assert!(state.alias);
        assert_eq!(state.broadcast, Some([0x02, 0x11, 0x11, 0x11, 0x11, 0x11]));
        assert_eq!(state.linkmode, Some(1)); // dormant
        assert_eq!(state.gso_max_size, Some(30000));
        assert_eq!(state.gso_max_segs, Some(100));
        assert_eq!(state.gro_max_size, Some(40000));
        // Lowering the limits below 64 KiB lowers IPv4's with them.
        assert_eq!(state.gso_ipv4_max_size, Some(30000));
        assert_eq!(state.gro_ipv4_max_size, Some(40000));
        assert_eq!(state.xdp, XDP_ATTACHED_NONE);
        assert_eq!(state.altnames, ["vm-a"]);
        // IPV4_DEVCONF_MAX and DEVCONF_MAX of 6.18.
        assert_eq!(state.inet_conf.len(), 33);
        assert_eq!(state.inet6_conf.len(), 60);
        assert_eq!(state.inet_conf[2], 1); // IPV4_DEVCONF_PROXY_ARP (3)
        assert_eq!(state.inet6_conf[1], 33); // DEVCONF_HOPLIMIT
        assert_eq!(state.inet6_conf[2], 1500); // DEVCONF_MTU6
        assert!(state.inet6_token);
        assert!(state.mac.is_some());
    }

    /// A fresh tap (no alias, names, token or XDP program) reads as such.
    #[test]
    fn captured_link_state_of_a_fresh_tap() {
        let reply = include_bytes!("../testdata/getlink_tap.bin");
        let (_, payload, _) = split_message(reply).expect("framed");
        let (index, state) = parse_link_state(payload).expect("parses");
        assert_eq!(index, 3);
        assert!(!state.alias);
        assert!(state.altnames.is_empty());
        assert!(!state.inet6_token);
        assert_eq!(state.txqlen, Some(1000));
        assert_eq!(state.broadcast, Some([0xff; 6]));
        assert_eq!(state.linkmode, Some(0));
    }

    #[test]
    fn short_payload_is_malformed() {
        let truncated = Malformed::Truncated {
            what: "ifinfomsg",
            len: 15,
            need: IFINFOMSG_LEN,
        };
        assert_eq!(parse_tun_link(&[0; 15]), Err(truncated));
        assert_eq!(parse_group_member(&[0; 15], 0), Err(truncated));
        assert_eq!(parse_link_identity(&[0; 15]), Err(truncated));
        assert_eq!(parse_link_name(&[0; 15]), Err(truncated));
        assert_eq!(parse_link_state(&[0; 15]), Err(truncated));
    }

    #[test]
    fn unknown_tun_type_is_malformed() {
        #[rustfmt::skip]
        let linkinfo = [
            0x08, 0x00, 0x01, 0x00, b't', b'u', b'n', 0x00, // IFLA_INFO_KIND "tun"
            0x0c, 0x00, 0x02, 0x00,                         // IFLA_INFO_DATA
            0x05, 0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, //   IFLA_TUN_TYPE 9
        ];
        assert_eq!(parse_tun_info(&linkinfo), Err(Malformed::TunType(Some(9))));
    }
}
