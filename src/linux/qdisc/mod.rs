//! Queueing disciplines (`RTM_*QDISC`): one file per verb.

pub(super) mod del;

/// `sizeof(struct tcmsg)` (linux/rtnetlink.h; the libc crate lacks it):
/// family, two pad fields, index, handle, parent, info.
pub(crate) const TCMSG_LEN: usize = 20;

/// `TC_H_ROOT` (linux/pkt_sched.h; the libc crate lacks it): the parent
/// that names a device's root (egress) qdisc.
pub(crate) const TC_H_ROOT: u32 = 0xffff_ffff;

/// `TC_H_INGRESS` (linux/pkt_sched.h), which is also `TC_H_CLSACT`: the
/// parent that names a device's `ingress` or `clsact` qdisc.
pub(crate) const TC_H_INGRESS: u32 = 0xffff_fff1;
