//! Fallback names from VM ids: [`VmNames`].

use sha2::{Digest, Sha256};

use crate::name::{MAX_NAME_LEN, NameError, TapName};

/// Turns any VM id (a UUID, a path, free text of any length) into a valid,
/// stable fallback name within the kernel's 15 bytes: the prefix, then hex
/// digits of a SHA-256 of the id, as many as fit but one, then a letter
/// from `a` to `f` drawn from the same hash.
///
/// - **Valid**: every name it gives is one the kernel takes.
/// - **Never a pool name**: a pool name (`<prefix><N>`) ends in a decimal
///   digit and these names end in a letter, so `Acquire` never refuses one
///   as the pool's own
///   ([`PoolError::FallbackIsPoolName`](crate::PoolError::FallbackIsPoolName)),
///   whatever the pool's prefix, even the same as this one.
/// - **Stable**: the same prefix and id give the same name in every process
///   and every release of this crate (the hash and layout are part of the
///   API), so an orchestrator can find a VM's tap again after a restart
///   without storing its name.
/// - **Collisions handled**: two ids may meet on one name (after a 3-byte
///   prefix such as `"vm-"`, 11 hex digits and a letter, about 46.6 bits:
///   odds of about one in 2 million that any two of 10,000 VMs meet; more
///   often with a longer prefix, or if ids are chosen to collide). The
///   pool refuses the second with
///   [`PoolError::NameInUse`](crate::PoolError::NameInUse), or the kernel
///   with [`KernelError::Exists`](crate::KernelError::Exists): take the next
///   of [`candidates`](Self::candidates), a different name for each attempt,
///   again stable.
///
/// A prefix other than the pool's keeps the VMs' taps apart from the pool's
/// in `ip link` and `tap-pool ls`; the pool's own works too.
///
/// ```
/// use tap_pool::VmNames;
///
/// let names = VmNames::new("vm-")?;
/// let name = names.name("4f9c7a0e-3a1d-4b8e-9c55-0f3e2d1c6b7a");
/// assert_eq!(name.len(), 15);
/// assert!(name.to_str().unwrap().starts_with("vm-"));
/// // After a collision, the next candidate.
/// let second = names.candidates("4f9c7a0e-3a1d-4b8e-9c55-0f3e2d1c6b7a").nth(1).unwrap();
/// assert_ne!(second, name);
/// # Ok::<(), tap_pool::NameError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmNames {
    prefix: TapName,
}

/// The fewest characters a [`VmNames`] name carries after its prefix (7 hex
/// digits and a letter, about 30.6 bits): a longer prefix is refused.
pub const MIN_VM_NAME_DIGITS: usize = 8;

impl VmNames {
    /// Names made of `prefix` and at least [`MIN_VM_NAME_DIGITS`] hex digits.
    ///
    /// # Errors
    /// [`NameError`] when the prefix could not start a device name (empty, a
    /// byte the kernel refuses), or [`NameError::VmPrefixTooLong`] when it
    /// leaves fewer than [`MIN_VM_NAME_DIGITS`] bytes for the digits.
    pub fn new(prefix: &str) -> Result<VmNames, NameError> {
        let max = MAX_NAME_LEN - MIN_VM_NAME_DIGITS;
        if prefix.len() > max {
            return Err(NameError::VmPrefixTooLong {
                prefix: prefix.as_bytes().to_vec(),
                len: prefix.len(),
                max,
            });
        }
        Ok(VmNames {
            prefix: TapName::new(prefix)?,
        })
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> TapName {
        self.prefix
    }

    /// The name for `vm_id`: the first of [`candidates`](Self::candidates).
    pub fn name(&self, vm_id: &str) -> TapName {
        self.candidate(vm_id, 0)
    }

    /// The names to try for `vm_id`, in order, each after the last collided:
    /// a different one for each attempt (until the digits run out of
    /// values), the same sequence every time.
    pub fn candidates<'a>(&'a self, vm_id: &'a str) -> impl Iterator<Item = TapName> + 'a {
        (0..=u32::MAX).map(move |attempt| self.candidate(vm_id, attempt))
    }

    /// The name for `vm_id` at attempt `attempt` (0 first): the
    /// `attempt`-th of [`candidates`](Self::candidates), computed alone.
    pub fn candidate(&self, vm_id: &str, attempt: u32) -> TapName {
        // The id's length first, so that no id and attempt can read as
        // another's: SHA-256(len(id) as u64 LE ‖ id ‖ attempt as u32 LE).
        let digest = Sha256::new()
            .chain_update((vm_id.len() as u64).to_le_bytes())
            .chain_update(vm_id.as_bytes())
            .chain_update(attempt.to_le_bytes())
            .finalize();
        // Every byte after the prefix but the last: the digest's leading
        // hex digits. The last: a letter, from the digest's last byte, so
        // that no name ends in a decimal digit as every pool name does.
        let digits = MAX_NAME_LEN - self.prefix.len() - 1;
        let mut name = Vec::with_capacity(MAX_NAME_LEN);
        name.extend_from_slice(self.prefix.as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        name.extend_from_slice(&hex.as_bytes()[..digits]);
        name.push(b"abcdef"[usize::from(digest[31] % 6)]);
        // A valid prefix followed by hex digits and a letter is a valid name
        // of 15 bytes ("." and ".." cannot arise: the digits are not dots).
        TapName::from_bytes(&name).unwrap_or(self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn names_are_valid_full_length_and_stable() {
        let names = VmNames::new("vm-").unwrap();
        for id in [
            "",
            "a",
            "4f9c7a0e-3a1d-4b8e-9c55-0f3e2d1c6b7a",
            &"x".repeat(10_000),
            "é/ :%",
        ] {
            let name = names.name(id);
            assert_eq!(name.len(), MAX_NAME_LEN, "{id:?}");
            assert_eq!(&name.as_bytes()[..3], b"vm-");
            assert!(name.as_bytes()[3..].iter().all(u8::is_ascii_hexdigit));
            assert_eq!(
                VmNames::new("vm-").unwrap().name(id),
                name,
                "the same every time"
            );
        }
        // Stability across releases is a promise: these are the names
        // the layout documented above gives (computed apart from this code:
        // d = python3 hashlib.sha256(pack("<Q", 4) + b"vm-1" + pack("<I", 0)),
        // d.hex()[:11] + "abcdef"[d[31] % 6]), and must stay so.
        assert_eq!(names.name("vm-1").to_str(), Some("vm-699219d252af"));
        // Never a pool name: the last byte is a letter.
        assert!(names.candidates("vm-1").take(1000).all(|name| {
            let last = name.as_bytes()[MAX_NAME_LEN - 1];
            (b'a'..=b'f').contains(&last)
        }));
    }

    #[test]
    fn different_ids_and_attempts_give_different_names() {
        let names = VmNames::new("vm-").unwrap();
        assert_ne!(names.name("a"), names.name("b"));
        let tried: Vec<_> = names.candidates("a").take(100).collect();
        let distinct: std::collections::HashSet<_> = tried.iter().collect();
        assert_eq!(distinct.len(), 100);
        assert_eq!(tried[0], names.name("a"));
        // The length goes in first: "ab" then attempt 0 is not "a" then
        // some attempt whose bytes start with "b".
        assert_ne!(names.name("ab"), names.name("a"));
    }

    #[test]
    fn a_collision_is_left_behind_by_the_next_candidate() {
        // With 8 digits (32 bits) a collision turns up among ~2^16 ids.
        let names = VmNames::new("abcdefg").unwrap();
        let mut seen = HashMap::new();
        let (a, b) = (0u32..)
            .map(|i| format!("vm-{i}"))
            .find_map(|id| {
                seen.insert(names.name(&id), id.clone())
                    .map(|other| (other, id))
            })
            .unwrap();
        assert_eq!(names.name(&a), names.name(&b));
        let next_a: Vec<_> = names.candidates(&a).take(3).collect();
        let next_b: Vec<_> = names.candidates(&b).take(3).collect();
        assert_ne!(next_a[1], next_b[1], "the second attempt parts them");
    }

    #[test]
    fn a_prefix_that_leaves_no_room_or_no_name_is_refused() {
        assert!(matches!(
            VmNames::new("abcdefgh"),
            Err(NameError::VmPrefixTooLong { len: 8, max: 7, .. })
        ));
        assert_eq!(VmNames::new(""), Err(NameError::Empty));
        assert!(matches!(
            VmNames::new("a/"),
            Err(NameError::ForbiddenByte { byte: b'/', .. })
        ));
    }
}
