//! The policy: who may connect, and what each may have. Read once, at start,
//! from a TOML file (docs/operations.md, "Running without privilege", has
//! every key).
//!
//! ```toml
//! socket = "/run/tap-pool-helper.sock"   # unless systemd hands one over
//! state_dir = "/run/tap-pool-helper"     # the ledger of taps made
//!
//! [[peer]]
//! uids = [990]                  # or gids = [...]: the peer's primary gid
//! prefix = "tap-pool-"          # pool names: the prefix and a number
//! fallback = "vm-[0-9a-f]{11}[a-f]"   # other names, a whole-name regex
//! bridges = ["br-vms"]
//! device_groups = [4242]
//! owners = [990]                # default: the peer's own uid
//! groups = []
//! netns = "/run/netns/vms"      # default: the helper's own
//! max_taps = 4096
//! max_connections = 64          # this rule's peers' connections at once
//! mtu = [1500, 9000]            # the MTUs its taps may have (default: any)
//! ```

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use tap_pool::{Naming, Refusal, TapName, TapSpec};
use thiserror::Error;

/// Where the socket is made when systemd does not hand one over.
pub const DEFAULT_SOCKET: &str = "/run/tap-pool-helper.sock";
/// Where the ledger is kept. Under `/run`: taps do not outlive a reboot,
/// and neither does the ledger of them.
pub const DEFAULT_STATE_DIR: &str = "/run/tap-pool-helper";
/// How many connections are served at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;
/// How many connections one peer rule's peers may have at once, by
/// default. A pool holds one per kernel call in flight (at most three
/// lanes of two workers, by default) and one while its link watcher is
/// handed its sockets; past the limit, its calls wait for one of its own.
pub const DEFAULT_PEER_CONNECTIONS: u32 = 64;
/// How many taps one peer may have, by default.
pub const DEFAULT_MAX_TAPS: u32 = 4096;
/// The longest policy file read.
pub const MAX_POLICY_LEN: u64 = 1 << 20;

/// Why a policy is not taken. The helper does not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is longer than [`MAX_POLICY_LEN`].
    #[error("{} is longer than {MAX_POLICY_LEN} bytes", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a policy (TOML syntax, an unknown key, a value of
    /// the wrong type): the message names the key and line.
    #[error("the policy does not read: {0}")]
    Toml(String),
    /// No `[[peer]]`: nobody could use the helper.
    #[error("the policy has no [[peer]]")]
    NoPeers,
    /// A peer rule names neither uids nor gids.
    #[error("peer rule {rule} names no uid and no gid")]
    NoOne {
        /// The rule's position, from 0.
        rule: usize,
    },
    /// A peer's prefix is not a pool prefix.
    #[error("peer rule {rule}: {source}")]
    Prefix {
        /// The rule's position, from 0.
        rule: usize,
        /// Why.
        #[source]
        source: tap_pool::ConfigError,
    },
    /// A fallback pattern is not a regular expression.
    #[error("peer rule {rule}: the fallback pattern does not compile")]
    Fallback {
        /// The rule's position, from 0.
        rule: usize,
        /// Why.
        #[source]
        source: Box<regex::Error>,
    },
    /// A bridge is not a device name.
    #[error("peer rule {rule}: bridge {bridge:?} is not a device name")]
    Bridge {
        /// The rule's position, from 0.
        rule: usize,
        /// The name as written.
        bridge: String,
    },
    /// Device group 0 holds every device: deleting it deletes them all.
    #[error("peer rule {rule}: device group 0 is every device's and cannot be given")]
    GroupZero {
        /// The rule's position, from 0.
        rule: usize,
    },
    /// Two rules give the same device group: a group delete by one could
    /// take the other's taps.
    #[error("device group {group} is given to more than one peer rule")]
    SharedGroup {
        /// The group.
        group: u32,
    },
    /// An MTU range whose low end is above its high end.
    #[error("peer rule {rule}: the MTU range is empty")]
    Mtu {
        /// The rule's position, from 0.
        rule: usize,
    },
    /// 4294967295 is `(uid_t)-1` to the kernel: no owner or group at all.
    #[error("peer rule {rule}: 4294967295 is not a uid or gid")]
    InvalidId {
        /// The rule's position, from 0.
        rule: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    socket: Option<PathBuf>,
    socket_mode: Option<u32>,
    state_dir: Option<PathBuf>,
    max_connections: Option<u32>,
    #[serde(default, rename = "peer")]
    peers: Vec<PeerFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    #[serde(default)]
    uids: Vec<u32>,
    #[serde(default)]
    gids: Vec<u32>,
    prefix: String,
    fallback: Option<String>,
    #[serde(default)]
    bridges: Vec<String>,
    #[serde(default)]
    device_groups: Vec<u32>,
    owners: Option<Vec<u32>>,
    #[serde(default)]
    groups: Vec<u32>,
    netns: Option<PathBuf>,
    max_taps: Option<u32>,
    max_connections: Option<u32>,
    mtu: Option<[u32; 2]>,
}

/// The policy, checked.
#[derive(Debug)]
pub struct Policy {
    /// The socket to make when systemd hands none over.
    pub socket: PathBuf,
    /// The mode the made socket gets (default 0o660: the peers reach it
    /// through its group; `SO_PEERCRED` decides either way).
    pub socket_mode: u32,
    /// Where the ledger lives.
    pub state_dir: PathBuf,
    /// How many connections at once.
    pub max_connections: u32,
    /// The peer rules, in order: a peer gets the first that names it.
    pub peers: Vec<Rule>,
}

/// What one peer (by uid, or by primary gid) may have.
#[derive(Debug)]
pub struct Rule {
    /// Peers by uid.
    pub uids: Vec<u32>,
    /// Peers by primary gid.
    pub gids: Vec<u32>,
    /// Its pool names.
    pub naming: Naming,
    /// Other names it may create, matched whole.
    pub fallback: Option<Regex>,
    /// The bridges its taps may join.
    pub bridges: Vec<TapName>,
    /// The device groups its taps may be put in (0, the default group, is
    /// always allowed for a tap).
    pub device_groups: Vec<u32>,
    /// The owners its taps may get; `None`: the peer's own uid only.
    pub owners: Option<Vec<u32>>,
    /// The groups its taps may get.
    pub groups: Vec<u32>,
    /// The network namespace its taps live in; `None`: the helper's.
    pub netns: Option<PathBuf>,
    /// How many taps it may have at once.
    pub max_taps: u32,
    /// How many connections its peers may have at once.
    pub max_connections: u32,
    /// The MTUs its taps may have; `None`: any the kernel takes.
    pub mtu: Option<std::ops::RangeInclusive<u32>>,
}

impl Policy {
    /// Reads and checks the policy file at `path`.
    ///
    /// # Errors
    /// [`PolicyError`]: the file does not read, is too long, or is not a
    /// valid policy.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        use std::io::Read;
        let read = |source| PolicyError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut text = String::new();
        file.take(MAX_POLICY_LEN + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_POLICY_LEN {
            return Err(PolicyError::TooLong {
                path: path.to_owned(),
            });
        }
        Policy::from_toml(&text)
    }

    /// Reads and checks a policy from TOML text.
    ///
    /// # Errors
    /// [`PolicyError`]: not a valid policy.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::Toml(e.to_string()))?;
        if file.peers.is_empty() {
            return Err(PolicyError::NoPeers);
        }
        let mut peers = Vec::new();
        let mut given = std::collections::HashSet::new();
        for (rule, peer) in file.peers.into_iter().enumerate() {
            if peer.uids.is_empty() && peer.gids.is_empty() {
                return Err(PolicyError::NoOne { rule });
            }
            let ids = peer
                .uids
                .iter()
                .chain(&peer.gids)
                .chain(&peer.groups)
                .chain(peer.owners.iter().flatten());
            if ids.into_iter().any(|&id| id == u32::MAX) {
                return Err(PolicyError::InvalidId { rule });
            }
            let naming =
                Naming::new(&peer.prefix).map_err(|source| PolicyError::Prefix { rule, source })?;
            let fallback = peer
                .fallback
                .map(|pattern| Regex::new(&format!("^(?:{pattern})$")))
                .transpose()
                .map_err(|source| PolicyError::Fallback {
                    rule,
                    source: Box::new(source),
                })?;
            let bridges = peer
                .bridges
                .into_iter()
                .map(|bridge| {
                    TapName::new(&bridge).map_err(|_| PolicyError::Bridge { rule, bridge })
                })
                .collect::<Result<_, _>>()?;
            if peer.mtu.is_some_and(|[low, high]| low > high) {
                return Err(PolicyError::Mtu { rule });
            }
            for &group in &peer.device_groups {
                if group == 0 {
                    return Err(PolicyError::GroupZero { rule });
                }
                if !given.insert(group) {
                    return Err(PolicyError::SharedGroup { group });
                }
            }
            peers.push(Rule {
                uids: peer.uids,
                gids: peer.gids,
                naming,
                fallback,
                bridges,
                device_groups: peer.device_groups,
                owners: peer.owners,
                groups: peer.groups,
                netns: peer.netns,
                max_taps: peer.max_taps.unwrap_or(DEFAULT_MAX_TAPS),
                max_connections: peer.max_connections.unwrap_or(DEFAULT_PEER_CONNECTIONS),
                mtu: peer.mtu.map(|[low, high]| low..=high),
            });
        }
        Ok(Policy {
            socket: file.socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
            socket_mode: file.socket_mode.unwrap_or(0o660) & 0o777,
            state_dir: file.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            max_connections: file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            peers,
        })
    }

    /// The rule for a peer of `uid` and primary `gid`: the first that
    /// names the uid, else the first that names the gid.
    pub fn rule_for(&self, uid: u32, gid: u32) -> Option<usize> {
        self.peers
            .iter()
            .position(|rule| rule.uids.contains(&uid))
            .or_else(|| self.peers.iter().position(|rule| rule.gids.contains(&gid)))
    }
}

impl Rule {
    /// Whether the peer may create a tap named `name`.
    ///
    /// # Errors
    /// [`Refusal::Name`].
    pub fn check_name(&self, name: &TapName) -> Result<(), Refusal> {
        let pool_name = self.naming.index_of(name).is_some();
        let fallback = || {
            name.to_str()
                .zip(self.fallback.as_ref())
                .is_some_and(|(name, pattern)| pattern.is_match(name))
        };
        if pool_name || fallback() {
            Ok(())
        } else {
            Err(Refusal::Name { name: *name })
        }
    }

    /// The spec a tap of the peer `uid` is made or reset with: `spec`,
    /// checked, with the owner made explicit (the peer's uid when the spec
    /// names neither owner nor group: a tap is never left to anyone).
    ///
    /// # Errors
    /// [`Refusal::Bridge`], [`Refusal::DeviceGroup`], [`Refusal::Mtu`],
    /// [`Refusal::Owner`], [`Refusal::Group`].
    pub fn check_spec(&self, uid: u32, spec: &TapSpec) -> Result<TapSpec, Refusal> {
        if let Some(bridge) = spec.bridge
            && !self.bridges.contains(&bridge)
        {
            return Err(Refusal::Bridge { bridge });
        }
        if let Some(group) = spec.device_group {
            self.check_device_group(group)?;
        }
        let mtu = spec.mtu_or_default();
        if self.mtu.as_ref().is_some_and(|range| !range.contains(&mtu)) {
            return Err(Refusal::Mtu { mtu });
        }
        let owner = spec.effective_owner(uid);
        if let Some(owner) = owner {
            let allowed = match &self.owners {
                Some(owners) => owners.contains(&owner),
                None => owner == uid,
            };
            if !allowed {
                return Err(Refusal::Owner { uid: owner });
            }
        }
        if let Some(gid) = spec.group
            && !self.groups.contains(&gid)
        {
            return Err(Refusal::Group { gid });
        }
        let mut checked = *spec;
        checked.owner = owner;
        Ok(checked)
    }

    /// Whether a tap of the peer's may be put in device group `group`: 0
    /// (the default), or one the rule gives.
    ///
    /// # Errors
    /// [`Refusal::DeviceGroup`].
    pub fn check_device_group(&self, group: u32) -> Result<(), Refusal> {
        if group == 0 || self.device_groups.contains(&group) {
            Ok(())
        } else {
            Err(Refusal::DeviceGroup { group })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
        [[peer]]
        uids = [1000]
        prefix = "tp-"
        fallback = "vm-[0-9a-f]{3}"
        bridges = ["br0"]
        device_groups = [7]
        mtu = [1500, 9000]
    "#;

    fn name(s: &str) -> TapName {
        TapName::new(s).unwrap()
    }

    #[test]
    fn names_are_pool_names_or_whole_fallback_matches() {
        let policy = Policy::from_toml(POLICY).unwrap();
        let rule = &policy.peers[0];
        for ok in ["tp-0", "tp-17", "vm-abc"] {
            assert_eq!(rule.check_name(&name(ok)), Ok(()), "{ok}");
        }
        for no in ["tp-01", "tp-", "tp-1x", "lo", "vm-abcd", "xvm-abc", "br0"] {
            assert!(rule.check_name(&name(no)).is_err(), "{no}");
        }
    }

    #[test]
    fn a_spec_gets_the_peers_uid_and_only_what_the_rule_gives() {
        let policy = Policy::from_toml(POLICY).unwrap();
        let rule = &policy.peers[0];
        let spec = rule.check_spec(1000, &TapSpec::default()).unwrap();
        assert_eq!(spec.owner, Some(1000));
        let mut other = TapSpec::default();
        other.owner = Some(0);
        assert_eq!(
            rule.check_spec(1000, &other),
            Err(Refusal::Owner { uid: 0 })
        );
        let mut bridge = TapSpec::default();
        bridge.bridge = Some(name("br1"));
        assert!(matches!(
            rule.check_spec(1000, &bridge),
            Err(Refusal::Bridge { .. })
        ));
        let mut group = TapSpec::default();
        group.device_group = Some(8);
        assert_eq!(
            rule.check_spec(1000, &group),
            Err(Refusal::DeviceGroup { group: 8 })
        );
        let mut small = TapSpec::default();
        small.mtu = Some(1400);
        assert_eq!(
            rule.check_spec(1000, &small),
            Err(Refusal::Mtu { mtu: 1400 })
        );
        let mut gid = TapSpec::default();
        gid.group = Some(1000);
        assert_eq!(
            rule.check_spec(1000, &gid),
            Err(Refusal::Group { gid: 1000 })
        );
    }

    #[test]
    fn bad_policies_are_typed_errors() {
        assert!(matches!(Policy::from_toml(""), Err(PolicyError::NoPeers)));
        assert!(matches!(
            Policy::from_toml("[[peer]]\nprefix = \"tp-\"\n"),
            Err(PolicyError::NoOne { rule: 0 })
        ));
        assert!(matches!(
            Policy::from_toml("[[peer]]\nuids = [1]\nprefix = \"tp-\"\ndevice_groups = [0]\n"),
            Err(PolicyError::GroupZero { rule: 0 })
        ));
        let shared = "[[peer]]\nuids = [1]\nprefix = \"a-\"\ndevice_groups = [5]\n\
                      [[peer]]\nuids = [2]\nprefix = \"b-\"\ndevice_groups = [5]\n";
        assert!(matches!(
            Policy::from_toml(shared),
            Err(PolicyError::SharedGroup { group: 5 })
        ));
        assert!(matches!(
            Policy::from_toml("[[peer]]\nuids = [1]\nprefix = \"tp-\"\nfallback = \"(\"\n"),
            Err(PolicyError::Fallback { rule: 0, .. })
        ));
        let e = Policy::from_toml("[[peer]]\nuids = [1]\nprefix = \"tp-\"\nbridge = \"x\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("bridge"), "{e}");
        assert!(matches!(
            Policy::from_toml("[[peer]]\nuids = [4294967295]\nprefix = \"tp-\"\n"),
            Err(PolicyError::InvalidId { rule: 0 })
        ));
    }

    #[test]
    fn a_peer_gets_the_first_rule_naming_its_uid_then_its_gid() {
        let policy = Policy::from_toml(
            "[[peer]]\ngids = [50]\nprefix = \"a-\"\n[[peer]]\nuids = [7]\nprefix = \"b-\"\n",
        )
        .unwrap();
        assert_eq!(policy.rule_for(7, 50), Some(1));
        assert_eq!(policy.rule_for(8, 50), Some(0));
        assert_eq!(policy.rule_for(8, 51), None);
    }
}
