//! Validated network device names.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The longest name the kernel accepts (`IFNAMSIZ - 1`).
pub const MAX_NAME_LEN: usize = 15;

/// Why a string is not a valid device name.
///
/// The rules are the kernel's own (`dev_valid_name` in `net/core/dev.c`), so a
/// name that passes here is never refused by the kernel for its spelling.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("device name is empty")]
    Empty,
    /// The name is longer than the kernel's 15 bytes.
    #[error("device name {name:?} is {len} bytes long; the kernel allows at most 15")]
    TooLong {
        /// The name as given.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name is `.` or `..`.
    #[error("device name {0:?} is reserved")]
    Reserved(String),
    /// The name holds a byte the kernel refuses (NUL, `/`, `:` or white space),
    /// or `%`, which the kernel reads as a template (`vm%d` becomes `vm0`).
    #[error("device name {name:?} holds the forbidden character {ch:?}")]
    ForbiddenChar {
        /// The name as given.
        name: String,
        /// The first forbidden character.
        ch: char,
    },
}

/// A network device name that the kernel will accept.
///
/// It is checked once, when it is made; a `TapName` that exists is valid. It is
/// `Copy` and stored inline (no allocation), because names travel through every
/// message on the hot path.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TapName {
    len: u8,
    bytes: [u8; MAX_NAME_LEN],
}

impl TapName {
    /// Checks `name` against the kernel's rules.
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                name: name.to_owned(),
                len: name.len(),
            });
        }
        if name == "." || name == ".." {
            return Err(NameError::Reserved(name.to_owned()));
        }
        if let Some(ch) = name
            .chars()
            // '%' too: the kernel reads a name holding it as a template
            // ("vm%d" becomes "vm0"), never as itself.
            .find(|&c| c == '\0' || c == '/' || c == ':' || c == '%' || c.is_whitespace())
        {
            return Err(NameError::ForbiddenChar {
                name: name.to_owned(),
                ch,
            });
        }
        let mut bytes = [0u8; MAX_NAME_LEN];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(TapName {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // The bytes were copied from a `&str` in `new`, so they are UTF-8.
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("TapName holds UTF-8")
    }

    /// The name's bytes (UTF-8, no terminating NUL).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The name's length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a `TapName` is never empty. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Names order as their text does. (`str` orders by its UTF-8 bytes, so the
/// bytes are compared directly, without checking them as text again.)
impl Ord for TapName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for TapName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for TapName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TapName::new(s)
    }
}

impl TryFrom<&str> for TapName {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        TapName::new(s)
    }
}

impl AsRef<str> for TapName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for TapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for TapName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TapName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kernel_valid_names() {
        for ok in ["tap0", "tap-pool-123456", "a", "vm_01.net", "tap-\u{e9}"] {
            assert_eq!(TapName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_what_the_kernel_refuses() {
        assert_eq!(TapName::new(""), Err(NameError::Empty));
        assert!(matches!(
            TapName::new("sixteen-bytes-xx"),
            Err(NameError::TooLong { len: 16, .. })
        ));
        assert!(matches!(TapName::new("."), Err(NameError::Reserved(_))));
        assert!(matches!(TapName::new(".."), Err(NameError::Reserved(_))));
        for (bad, ch) in [
            ("a/b", '/'),
            ("vm%d", '%'),
            ("a:b", ':'),
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\0b", '\0'),
            ("a\u{a0}b", '\u{a0}'),
        ] {
            assert_eq!(
                TapName::new(bad),
                Err(NameError::ForbiddenChar {
                    name: bad.to_owned(),
                    ch
                })
            );
        }
    }

    #[test]
    fn multibyte_length_is_counted_in_bytes() {
        // 8 two-byte characters: 16 bytes, over the limit though only 8 chars.
        assert!(matches!(
            TapName::new("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"),
            Err(NameError::TooLong { len: 16, .. })
        ));
    }

    #[test]
    fn names_sort_as_their_text() {
        let texts = [
            "tap-pool-10",
            "tap-pool-9",
            "tap-\u{e9}",
            "tap-z",
            "tap",
            "tap-pool-1",
            "Tap",
            "tap-\u{101}",
        ];
        let mut by_text = texts.to_vec();
        by_text.sort();
        let mut names: Vec<TapName> = texts.iter().map(|t| TapName::new(t).unwrap()).collect();
        names.sort();
        let sorted: Vec<&str> = names.iter().map(TapName::as_str).collect();
        assert_eq!(sorted, by_text);
    }
}
