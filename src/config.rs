//! The pool's configuration, checked when the pool is built.

use std::time::Duration;

use thiserror::Error;

use crate::kernel::TapSpec;
use crate::name::{MAX_NAME_LEN, NameError, TapName};

/// The prefix of pool names unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "tap-pool-";

/// How a pool behaves.
///
/// Start from [`PoolConfig::default`] and set the fields you need (new fields
/// may come; the struct is `#[non_exhaustive]`):
///
/// ```
/// let mut config = tap_pool::PoolConfig::default();
/// config.size = 32;
/// config.tap.device_group = Some(4242);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct PoolConfig {
    /// How many idle taps to keep ready. 0 disables pooling: `Acquire` always
    /// creates, `Release` always deletes, `Warm` does nothing. At most
    /// [`MAX_SIZE`], and at most the number of names the prefix leaves.
    pub size: usize,
    /// Pool taps are named `<prefix><N>`. N goes up while higher indices
    /// remain, so a name just released is not soon seen again; past the last
    /// index that fits in 15 bytes it starts over from the lowest index that
    /// no device and no holder has. A pool never runs out of names while
    /// some are free.
    pub prefix: String,
    /// How every tap the pool creates is made and configured.
    pub tap: TapSpec,
    /// How many warm-up creates may be in flight at once. Set it to twice the
    /// number of kernel workers: each worker then finds its next create
    /// waiting when it finishes one, instead of idling through two thread
    /// hand-offs (tens of µs each on a VM); more only queues in the kernel
    /// workers' queue, where a cold `Acquire`'s create would wait behind it.
    pub create_window: usize,
    /// What becomes of a released pool tap: reset, verified and reused
    /// ([`Recycle::Reset`], the default), or deleted and replaced
    /// ([`Recycle::Fresh`]). Either way the next VM inherits nothing of the
    /// last: docs/security.md says what each covers.
    pub recycle: Recycle,
    /// How a failed warm-up is retried: after `initial`, doubling up to
    /// `max`, at most `max_attempts` times in a row (a success starts over).
    pub warm_retry: Backoff,
    /// How a failed delete is retried: after `initial`, doubling up to `max`,
    /// for ever (`max_attempts` is not used): a tap is never forgotten.
    pub delete_retry: Backoff,
}

/// What becomes of a released pool tap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Recycle {
    /// Reset it before it is handed out again: everything its tenant could
    /// change through its file and everything the orchestrator added for
    /// it is put back and read back; a tap with something a reset cannot
    /// take away (a file still attached, an owner or group the spec lacks)
    /// is deleted instead and the pool refills. A released tap is back in
    /// the pool within one kernel round trip.
    #[default]
    Reset,
    /// Never reuse a tap across leases: a released tap is deleted (the
    /// `Release` is answered once it is gone) and the pool creates a new one
    /// in the background. For hosts whose tenants must never share a device,
    /// at the cost of a kernel delete and create per lease
    /// (docs/performance.md); `Seed` adopts no leftover either, since any of
    /// them may have been leased before.
    Fresh,
}

/// Exponential backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Backoff {
    /// The first delay.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub initial: Duration,
    /// The largest delay.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max: Duration,
    /// How many retries in a row, where bounded.
    pub max_attempts: u32,
}

/// The smallest MTU the kernel takes for a tap (`ETH_MIN_MTU`, the tap's
/// `min_mtu`; libc has no such constant for Linux).
pub const TAP_MIN_MTU: u32 = 68;

/// The largest MTU the kernel takes for a tap: `MAX_MTU` (65535) less the
/// Ethernet header (`tun_net_initialize`: `max_mtu = MAX_MTU -
/// hard_header_len`), as `ip -d link show` reports it.
pub const TAP_MAX_MTU: u32 = 65535 - libc::ETH_HLEN as u32;

/// The largest pool size: far above what one host runs (a bridge takes
/// 1,023 ports), a guard against a mistyped size.
pub const MAX_SIZE: usize = 100_000;

/// The shortest first delay of a [`Backoff`]: a retry loop with no delay
/// would spin on a failing kernel.
pub const MIN_BACKOFF: Duration = Duration::from_millis(1);

impl PoolConfig {
    /// Checks the configuration as a pool does when it is built, without
    /// building one: for a configuration read from a file, say, before it
    /// is used.
    ///
    /// # Errors
    /// [`ConfigError`] names the setting at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.naming().map(drop)
    }

    /// Reads a configuration from TOML, with the keys of [`PoolConfig`]'s
    /// fields (a missing key keeps its default, an unknown one is refused)
    /// and durations written as `"100ms"` or `"10s"`, and checks it as
    /// [`validate`](Self::validate) does.
    ///
    /// ```
    /// let config = tap_pool::PoolConfig::from_toml(
    ///     r#"
    ///     size = 32
    ///     prefix = "vmtap"
    ///     recycle = "fresh"
    ///
    ///     [tap]
    ///     owner = 1000
    ///     bridge = "br0"
    ///     device_group = 4242
    ///
    ///     [delete_retry]
    ///     initial = "100ms"
    ///     max = "30s"
    ///     max_attempts = 4294967295
    ///     "#,
    /// )?;
    /// assert_eq!(config.size, 32);
    /// assert_eq!(config.tap.device_group, Some(4242));
    /// # Ok::<(), tap_pool::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Toml`] when the text is not TOML or does not describe
    /// a configuration (the message says where); otherwise what
    /// [`validate`](Self::validate) refuses.
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<PoolConfig, ConfigError> {
        let config: PoolConfig = toml::from_str(text).map_err(|e| ConfigError::Toml {
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The naming scheme of the prefix, once every setting is checked.
    pub(crate) fn naming(&self) -> Result<Naming, ConfigError> {
        let naming = Naming::new(&self.prefix)?;
        if self.create_window == 0 {
            return Err(ConfigError::ZeroCreateWindow);
        }
        if self.tap.device_group == Some(0) {
            return Err(ConfigError::DefaultDeviceGroup);
        }
        if let Some(mtu) = self.tap.mtu
            && !(TAP_MIN_MTU..=TAP_MAX_MTU).contains(&mtu)
        {
            return Err(ConfigError::Mtu { mtu });
        }
        for (setting, id) in [("tap.owner", self.tap.owner), ("tap.group", self.tap.group)] {
            // (uid_t)-1 is "no id" to the kernel: TUNSETOWNER/TUNSETGROUP
            // refuse it (`uid_valid`), so no tap could ever be made.
            if id == Some(u32::MAX) {
                return Err(ConfigError::InvalidId { setting });
            }
        }
        self.check(&naming)?;
        Ok(naming)
    }

    /// Checks the settings that do not depend on the naming scheme's own
    /// checks, given the names the prefix leaves.
    pub(crate) fn check(&self, naming: &Naming) -> Result<(), ConfigError> {
        let names = usize::try_from(naming.max_index())
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let max = MAX_SIZE.min(names);
        if self.size > max {
            return Err(ConfigError::SizeTooLarge {
                size: self.size,
                max,
            });
        }
        for (setting, backoff) in [
            ("warm_retry", &self.warm_retry),
            ("delete_retry", &self.delete_retry),
        ] {
            if backoff.initial < MIN_BACKOFF || backoff.max < backoff.initial {
                return Err(ConfigError::Backoff {
                    setting,
                    initial: backoff.initial,
                    max: backoff.max,
                });
            }
        }
        Ok(())
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.initial
            .checked_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .map_or(self.max, |d| d.min(self.max))
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: 8,
            prefix: DEFAULT_PREFIX.to_owned(),
            tap: TapSpec::default(),
            create_window: 4,
            recycle: Recycle::Reset,
            warm_retry: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(10),
                max_attempts: 10,
            },
            delete_retry: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(30),
                max_attempts: u32::MAX,
            },
        }
    }
}

/// A configuration the pool refuses.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum ConfigError {
    /// The prefix is empty, so every name of digits would be a pool name.
    #[error("the pool name prefix is empty")]
    EmptyPrefix,
    /// The prefix leaves no room for an index within the kernel's 15 bytes.
    #[error(
        "pool name prefix {prefix:?} is {len} bytes; at most {} leaves room for an index",
        MAX_NAME_LEN - 1
    )]
    PrefixTooLong {
        /// The prefix as given.
        prefix: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The prefix holds a character no device name may hold.
    #[error("pool name prefix {prefix:?} cannot start a device name")]
    PrefixInvalid {
        /// The prefix as given.
        prefix: String,
        /// Why a name made from it would be refused.
        #[source]
        source: NameError,
    },
    /// The device group is 0, the kernel's default group that every device
    /// is in: a bulk delete of it would remove every device.
    #[error("the pool's device group must not be 0, the kernel's default group")]
    DefaultDeviceGroup,
    /// The taps' MTU is outside what the kernel takes for a tap.
    #[error("a tap's MTU must be from {TAP_MIN_MTU} to {TAP_MAX_MTU}, not {mtu}")]
    Mtu {
        /// The MTU given.
        mtu: u32,
    },
    /// An owner or group of `u32::MAX`, which is `(uid_t)-1`, "no id", to the
    /// kernel: it refuses to give a tap one.
    #[error("{setting} must not be 4294967295, which is -1 (no id) to the kernel")]
    InvalidId {
        /// The setting at fault.
        setting: &'static str,
    },
    /// The configuration file is not TOML, or does not describe a
    /// configuration (an unknown key, a value of the wrong type).
    #[cfg(feature = "toml")]
    #[error("the configuration cannot be read: {message}")]
    Toml {
        /// What the TOML reader said, with the line and column.
        message: String,
    },
    /// `create_window` is 0, so a warm-up could never start a create.
    #[error("create_window must be at least 1")]
    ZeroCreateWindow,
    /// The size is beyond [`MAX_SIZE`] or the names the prefix leaves.
    #[error(
        "a pool size of {size} is too large: at most {max} (MAX_SIZE, and the names the prefix leaves)"
    )]
    SizeTooLarge {
        /// The size given.
        size: usize,
        /// The largest allowed with this prefix.
        max: usize,
    },
    /// A backoff would spin: its first delay is under [`MIN_BACKOFF`], or its
    /// largest delay is shorter than its first.
    #[error(
        "{setting}: a backoff needs initial >= 1 ms and max >= initial (got {initial:?}, {max:?})"
    )]
    Backoff {
        /// Which setting: `warm_retry` or `delete_retry`.
        setting: &'static str,
        /// Its first delay.
        initial: Duration,
        /// Its largest delay.
        max: Duration,
    },
}

/// The pool's naming scheme, `<prefix><N>` (`N` in decimal, with no
/// leading zero), checked: the one rule for what a pool name is, used by the
/// pool, its tools and the privileged helper's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    prefix: String,
    /// The largest index whose name still fits in 15 bytes.
    max_index: u64,
}

impl Naming {
    /// The scheme of `prefix`.
    ///
    /// # Errors
    /// [`ConfigError::EmptyPrefix`], [`ConfigError::PrefixTooLong`] (a name
    /// needs room for one digit), [`ConfigError::PrefixInvalid`].
    pub fn new(prefix: &str) -> Result<Naming, ConfigError> {
        if prefix.is_empty() {
            return Err(ConfigError::EmptyPrefix);
        }
        if prefix.len() > MAX_NAME_LEN - 1 {
            return Err(ConfigError::PrefixTooLong {
                prefix: prefix.to_owned(),
                len: prefix.len(),
            });
        }
        TapName::new(&format!("{prefix}0")).map_err(|source| ConfigError::PrefixInvalid {
            prefix: prefix.to_owned(),
            source,
        })?;
        let digits = (MAX_NAME_LEN - prefix.len()) as u32;
        let max_index = 10u64.checked_pow(digits).map_or(u64::MAX, |p| p - 1);
        Ok(Naming {
            prefix: prefix.to_owned(),
            max_index,
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The largest index whose name still fits in 15 bytes.
    pub fn max_index(&self) -> u64 {
        self.max_index
    }

    /// The name for `index`, or `None` once it no longer fits.
    pub(crate) fn name(&self, index: u64) -> Option<TapName> {
        if index > self.max_index {
            return None;
        }
        let mut buf = String::with_capacity(MAX_NAME_LEN);
        buf.push_str(&self.prefix);
        buf.push_str(itoa(index, &mut [0u8; 20]));
        Some(TapName::new(&buf).expect("prefix was checked and the index fits"))
    }

    /// The pool index of `name`, if it is a pool name: the prefix followed by
    /// a canonical decimal number (no sign, no leading zero).
    pub fn index_of(&self, name: &TapName) -> Option<u64> {
        let digits = name.to_str()?.strip_prefix(self.prefix.as_str())?;
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return None;
        }
        digits.parse().ok()
    }
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 5,
        };
        let ms = |a| b.delay(a).as_millis();
        assert_eq!(
            (ms(0), ms(1), ms(2), ms(3), ms(4)),
            (100, 200, 400, 800, 1000)
        );
        assert_eq!(ms(40), 1000);
    }

    #[test]
    fn sizes_beyond_the_bound_or_the_names_and_spinning_backoffs_are_refused() {
        let check = |f: &dyn Fn(&mut PoolConfig)| {
            let mut c = PoolConfig::default();
            f(&mut c);
            c.check(&Naming::new(&c.prefix).unwrap())
        };
        assert_eq!(check(&|_| {}), Ok(()));
        assert_eq!(check(&|c| c.size = MAX_SIZE), Ok(()));
        for size in [MAX_SIZE + 1, 1_000_000_000, usize::MAX] {
            assert_eq!(
                check(&|c| c.size = size),
                Err(ConfigError::SizeTooLarge {
                    size,
                    max: MAX_SIZE
                })
            );
        }
        // Ten names: a pool of eleven could never be full.
        assert_eq!(
            check(&|c| {
                c.prefix = "fourteen-bytes".into();
                c.size = 11;
            }),
            Err(ConfigError::SizeTooLarge { size: 11, max: 10 })
        );
        for (initial, max) in [
            (Duration::ZERO, Duration::ZERO),
            (Duration::from_micros(999), Duration::from_secs(1)),
            (Duration::from_secs(2), Duration::from_secs(1)),
        ] {
            let backoff = Backoff {
                initial,
                max,
                max_attempts: 3,
            };
            assert!(matches!(
                check(&|c| c.delete_retry = backoff),
                Err(ConfigError::Backoff {
                    setting: "delete_retry",
                    ..
                })
            ));
            assert!(matches!(
                check(&|c| c.warm_retry = backoff),
                Err(ConfigError::Backoff {
                    setting: "warm_retry",
                    ..
                })
            ));
        }
    }

    #[test]
    fn default_prefix_leaves_six_digits() {
        let n = Naming::new(DEFAULT_PREFIX).unwrap();
        assert_eq!(n.max_index(), 999_999);
        assert_eq!(n.name(0).unwrap(), "tap-pool-0");
        assert_eq!(n.name(999_999).unwrap(), "tap-pool-999999");
        assert_eq!(n.name(1_000_000), None);
    }

    #[test]
    fn prefix_must_leave_room_and_be_valid() {
        assert_eq!(Naming::new(""), Err(ConfigError::EmptyPrefix));
        assert!(matches!(
            Naming::new("fifteen-bytes-x"),
            Err(ConfigError::PrefixTooLong { len: 15, .. })
        ));
        assert_eq!(Naming::new("fourteen-bytes").unwrap().max_index(), 9);
        assert!(matches!(
            Naming::new("tap/"),
            Err(ConfigError::PrefixInvalid { .. })
        ));
    }

    #[test]
    fn errors_print_their_source_once() {
        let e = Naming::new("tap/").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pool name prefix \"tap/\" cannot start a device name"
        );
        let source = std::error::Error::source(&e).expect("the name's error is the source");
        assert!(source.to_string().contains('/'), "{source}");
        assert!(!e.to_string().contains(&source.to_string()));
    }

    #[test]
    fn only_canonical_indices_are_pool_names() {
        let n = Naming::new("tp-").unwrap();
        let idx = |s: &str| n.index_of(&TapName::new(s).unwrap());
        assert_eq!(idx("tp-0"), Some(0));
        assert_eq!(idx("tp-42"), Some(42));
        assert_eq!(idx("tp-042"), None);
        assert_eq!(idx("tp-"), None);
        assert_eq!(idx("tp-4a"), None);
        assert_eq!(idx("tp-+4"), None);
        assert_eq!(idx("xtp-4"), None);
        assert_eq!(idx("vm-4"), None);
    }
}
