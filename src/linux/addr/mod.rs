//! Addresses (`RTM_*ADDR`): one file per verb.

pub(super) mod del;
pub(super) mod get;

/// `sizeof(struct ifaddrmsg)`: family, prefix length, flags, scope, index.
pub(crate) const IFADDRMSG_LEN: usize = size_of::<libc::ifaddrmsg>();

/// One address on a link, as an `RTM_NEWADDR` dump gave it: the whole
/// payload, which `RTM_DELADDR` takes back verbatim (as `ip address flush`
/// does), so that every attribute the kernel matches on (local, peer,
/// prefix length) is the one it reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    /// The `ifaddrmsg` and its attributes; at least [`IFADDRMSG_LEN`] long.
    payload: Vec<u8>,
}

impl Address {
    /// The address family (`AF_INET`, `AF_INET6`).
    pub(crate) fn family(&self) -> u8 {
        self.payload[0]
    }
}
