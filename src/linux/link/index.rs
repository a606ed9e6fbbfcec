//! A link's interface index by name, with one ioctl (`SIOCGIFINDEX`) rather
//! than a netlink round trip.

use crate::kernel::Errno;
use crate::linux::ioctl::{IfreqIoctl, ifreq, ioctl_ifreq};
use crate::linux::netlink::Rtnl;
use crate::name::TapName;

impl Rtnl {
    /// The interface index of the link `name` (`SIOCGIFINDEX` on this
    /// socket, which answers for the socket's namespace). `ENODEV` if there
    /// is none.
    pub(crate) fn ifindex(&self, name: TapName) -> Result<u32, Errno> {
        let mut req = ifreq(name);
        ioctl_ifreq(self, IfreqIoctl::GetIndex, &mut req)?;
        // SAFETY: every member of the `ifr_ifru` union is plain data, valid
        // for any bytes; SIOCGIFINDEX wrote the index member.
        Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32)
    }
}
