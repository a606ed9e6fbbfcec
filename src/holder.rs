//! Holder labels: who holds a lease (a VM's id), so that one VM can be
//! followed through the logs.
//!
//! A label is free text from the caller. It is bounded in length when it is
//! made, and shown escaped (`Display` and `Debug` alike), so that no label
//! can break a log line in two or forge another.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

/// The longest holder label, in bytes.
pub const MAX_HOLDER_LEN: usize = 256;

/// Why some text is not a holder label.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HolderError {
    /// The label is empty: give none instead.
    #[error("holder label is empty")]
    Empty,
    /// The label is longer than [`MAX_HOLDER_LEN`] bytes.
    #[error("holder label is {len} bytes long; at most {MAX_HOLDER_LEN} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// Who holds a lease, in the caller's words: a VM's id, for example. The
/// pool keeps it with the lease and names it in the spans and events about
/// that lease's tap (the `Acquire`, its create, the `Release`, the tap's
/// reset or delete, and warnings about the tap), until the tap is back in the
/// pool or gone. It changes nothing else.
///
/// Any text from 1 to [`MAX_HOLDER_LEN`] bytes; shown escaped, as
/// [`str::escape_debug`] escapes it (a newline shows as `\n`), so it cannot
/// forge a log line. Cloning it is cheap (it is shared, not copied).
///
/// ```
/// use tap_pool::{Holder, HolderError};
///
/// let vm = Holder::new("vm-7f3a")?;
/// assert_eq!(vm.as_str(), "vm-7f3a");
/// // Shown escaped: one line, whatever it holds.
/// assert_eq!(Holder::new("vm\nlevel=error")?.to_string(), r"vm\nlevel=error");
/// assert_eq!(Holder::new(""), Err(HolderError::Empty));
/// # Ok::<(), HolderError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Holder(Arc<str>);

impl Holder {
    /// A holder label, checked.
    ///
    /// # Errors
    /// [`HolderError::Empty`] for an empty label, [`HolderError::TooLong`]
    /// for one longer than [`MAX_HOLDER_LEN`] bytes.
    pub fn new(label: &str) -> Result<Holder, HolderError> {
        match label.len() {
            0 => Err(HolderError::Empty),
            len if len > MAX_HOLDER_LEN => Err(HolderError::TooLong { len }),
            _ => Ok(Holder(Arc::from(label))),
        }
    }

    /// The label as the caller gave it (not escaped: escape it before
    /// writing it anywhere a line break matters).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Holder {
    /// The label, escaped: control characters, quotes and backslashes as
    /// Rust escapes them (`\n`, `\"`, `\u{1b}`), so it stays on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.escape_debug(), f)
    }
}

impl fmt::Debug for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Holder(\"{self}\")")
    }
}

impl FromStr for Holder {
    type Err = HolderError;
    fn from_str(s: &str) -> Result<Holder, HolderError> {
        Holder::new(s)
    }
}

impl TryFrom<&str> for Holder {
    type Error = HolderError;
    fn try_from(s: &str) -> Result<Holder, HolderError> {
        Holder::new(s)
    }
}

impl TryFrom<String> for Holder {
    type Error = HolderError;
    fn try_from(s: String) -> Result<Holder, HolderError> {
        Holder::new(&s)
    }
}

impl AsRef<str> for Holder {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Holder {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Holder {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_bounded_and_not_empty() {
        assert_eq!(Holder::new(""), Err(HolderError::Empty));
        let longest = "v".repeat(MAX_HOLDER_LEN);
        assert_eq!(Holder::new(&longest).unwrap(), longest.as_str());
        assert_eq!(
            Holder::new(&format!("{longest}x")),
            Err(HolderError::TooLong {
                len: MAX_HOLDER_LEN + 1
            })
        );
        // Bytes, not characters: 129 two-byte characters are too long.
        assert_eq!(
            Holder::new(&"é".repeat(129)),
            Err(HolderError::TooLong { len: 258 })
        );
    }

    #[test]
    fn a_label_shows_on_one_line_whatever_it_holds() {
        let forged = "vm-1\n2026-01-01T00:00:00Z ERROR forged=\"yes\"\r\u{1b}[2J";
        let holder = Holder::new(forged).unwrap();
        let shown = holder.to_string();
        assert!(!shown.contains(['\n', '\r', '\u{1b}']), "{shown}");
        assert_eq!(
            shown,
            r#"vm-1\n2026-01-01T00:00:00Z ERROR forged=\"yes\"\r\u{1b}[2J"#
        );
        assert_eq!(format!("{holder:?}"), format!("Holder(\"{shown}\")"));
        // The label itself is kept as given.
        assert_eq!(holder.as_str(), forged);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(HolderError::Empty.to_string(), "holder label is empty");
        assert_eq!(
            HolderError::TooLong { len: 300 }.to_string(),
            "holder label is 300 bytes long; at most 256 are allowed"
        );
    }
}
