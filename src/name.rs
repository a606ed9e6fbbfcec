//! Validated network device names.
//!
//! A device name is bytes, not text: the kernel takes any byte but a few in
//! a name, and a name read back from it need not be UTF-8. [`TapName`]
//! holds exactly the bytes the kernel would, checked by the kernel's own
//! rules, and shows them escaped where they are not plain ASCII.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The longest name the kernel accepts (`IFNAMSIZ - 1`), in bytes.
pub const MAX_NAME_LEN: usize = 15;

/// Why some bytes are not a valid device name.
///
/// The rules are the kernel's own (`dev_valid_name` in `net/core/dev.c`), so a
/// name that passes here is never refused by the kernel for its spelling;
/// and one more, `%` (see [`NameError::ForbiddenByte`]). Names in these
/// errors are shown as [`TapName`]'s `Debug` shows them: in quotes, escaped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("device name is empty")]
    Empty,
    /// The name is longer than the kernel's 15 bytes.
    #[error("device name {} is {len} bytes long; the kernel allows at most 15", Quoted(.name))]
    TooLong {
        /// The name as given.
        name: Vec<u8>,
        /// Its length in bytes.
        len: usize,
    },
    /// The name is `.` or `..`.
    #[error("device name {} is reserved", Quoted(.0))]
    Reserved(Vec<u8>),
    /// The name holds a byte the kernel refuses: NUL, `/`, `:`, or one its
    /// `isspace` counts as white space. Its ctype table is Latin-1: 0x09 to
    /// 0x0d, 0x20 and 0xa0, so every character whose UTF-8 holds the byte
    /// 0xa0 is refused too (U+00A0 is C2 A0, `à` is C3 A0). Or it holds
    /// `%`, which the kernel reads as a template (`vm%d` becomes `vm0`) and
    /// which no device's name can hold.
    #[error(
        "device name {} holds the byte {byte:#04x} at offset {at}: {}",
        Quoted(.name),
        forbidden_why(*.byte)
    )]
    ForbiddenByte {
        /// The name as given.
        name: Vec<u8>,
        /// The first forbidden byte.
        byte: u8,
        /// Its offset in the name.
        at: usize,
    },
    /// A [`VmNames`](crate::VmNames) prefix that leaves fewer than
    /// [`MIN_VM_NAME_DIGITS`](crate::MIN_VM_NAME_DIGITS) of the 15 bytes for
    /// the hash's digits.
    #[error(
        "VM name prefix {} is {len} bytes; at most {max} leaves room for the hash",
        Quoted(.prefix)
    )]
    VmPrefixTooLong {
        /// The prefix as given.
        prefix: Vec<u8>,
        /// Its length in bytes.
        len: usize,
        /// The longest prefix allowed.
        max: usize,
    },
}

/// Whether the kernel's `isspace` is true of `byte` (`lib/ctype.c`, a
/// Latin-1 table: `_S` is set for 0x09 to 0x0d, 0x20 and 0xa0).
const fn kernel_isspace(byte: u8) -> bool {
    matches!(byte, 0x09..=0x0d | b' ' | 0xa0)
}

/// Whether `byte` may be in a device name: not NUL, `/`, `:`, kernel white
/// space (what `dev_valid_name` refuses), nor `%` (a template).
const fn allowed(byte: u8) -> bool {
    !matches!(byte, 0 | b'/' | b':' | b'%') && !kernel_isspace(byte)
}

/// Why `byte` is forbidden, for [`NameError::ForbiddenByte`]'s message.
fn forbidden_why(byte: u8) -> &'static str {
    match byte {
        0 => "NUL ends a name",
        b'/' => "'/' is a path separator to the kernel",
        b':' => "':' marks an alias to the kernel",
        b'%' => "'%' is a template to the kernel",
        _ => "white space to the kernel",
    }
}

/// A network device name that the kernel will accept: 1 to 15 bytes, not
/// `.` or `..`, none of them NUL, `/`, `:`, `%` or a byte the kernel counts
/// as white space (see [`NameError`]). Any other byte is allowed: a name need
/// not be UTF-8, and every name a device can have is a `TapName`.
///
/// It is checked once, when it is made; a `TapName` that exists is valid. It is
/// `Copy` and stored inline (no allocation), because names travel through every
/// message on the hot path. Two names are equal when their bytes are, and
/// order as their bytes do.
///
/// Give the kernel [`TapName::as_bytes`]. [`Display`](fmt::Display) is for
/// people (logs, messages): it shows printable ASCII as itself and escapes
/// every other byte, so it is exact and unambiguous but not the name's
/// bytes. [`TapName::to_str`] gives the name as text where it is UTF-8.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TapName {
    len: u8,
    bytes: [u8; MAX_NAME_LEN],
}

impl TapName {
    /// Checks `name` against the kernel's rules: [`TapName::from_bytes`] of
    /// its UTF-8.
    ///
    /// # Errors
    /// [`NameError`] says which rule `name` breaks.
    pub fn new(name: &str) -> Result<Self, NameError> {
        TapName::from_bytes(name.as_bytes())
    }

    /// Checks `name` (the bytes of a name, with no terminating NUL) against
    /// the kernel's rules, byte by byte: exactly `dev_valid_name`'s, and no
    /// `%`. For names read from the kernel, which need not be UTF-8.
    ///
    /// # Errors
    /// [`NameError`]: empty, longer than 15 bytes, `.` or `..`, or the
    /// first forbidden byte and where it is.
    pub fn from_bytes(name: &[u8]) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                name: name.to_vec(),
                len: name.len(),
            });
        }
        if name == b"." || name == b".." {
            return Err(NameError::Reserved(name.to_vec()));
        }
        if let Some(at) = name.iter().position(|&b| !allowed(b)) {
            return Err(NameError::ForbiddenByte {
                name: name.to_vec(),
                byte: name[at],
                at,
            });
        }
        let mut bytes = [0u8; MAX_NAME_LEN];
        bytes[..name.len()].copy_from_slice(name);
        Ok(TapName {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name's bytes, exactly as the kernel has them (no terminating
    /// NUL): what an `ifreq`, an `IFLA_IFNAME` or a path under `/proc` or
    /// `/sys` takes (`std::os::unix::ffi::OsStrExt::from_bytes` makes an
    /// `OsStr` of them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The name as text, if it is UTF-8 (as every name this crate makes
    /// from a `&str` is); `None` for a name of other bytes, which only the
    /// kernel gives (a device named so by someone else).
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
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

/// Names order as their bytes do (as `str` does, for names that are UTF-8).
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

impl TryFrom<&[u8]> for TapName {
    type Error = NameError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        TapName::from_bytes(bytes)
    }
}

impl AsRef<[u8]> for TapName {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Writes `bytes` escaped: printable ASCII (0x20 to 0x7e) as itself, but
/// `\` as `\\` and, if `quote`, `"` as `\"`; every other byte as `\xNN`
/// (two lowercase hex digits). Each escape starts with `\`, which is never
/// written as itself, so the bytes can always be read back.
fn escape(bytes: &[u8], quote: bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let plain = |b: u8| (0x20..=0x7e).contains(&b) && b != b'\\' && !(quote && b == b'"');
    let mut rest = bytes;
    while !rest.is_empty() {
        let run = rest.iter().position(|&b| !plain(b)).unwrap_or(rest.len());
        let (text, tail) = rest.split_at(run);
        f.write_str(std::str::from_utf8(text).expect("printable ASCII"))?;
        let Some((&byte, tail)) = tail.split_first() else {
            break;
        };
        match byte {
            b'\\' => f.write_str("\\\\")?,
            b'"' => f.write_str("\\\"")?,
            _ => write!(f, "\\x{byte:02x}")?,
        }
        rest = tail;
    }
    Ok(())
}

/// Bytes in double quotes, escaped as [`escape`] does with `quote`: a name
/// in a message, valid or not.
struct Quoted<'a>(&'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        escape(self.0, true, f)?;
        f.write_str("\"")
    }
}

/// The name for people: printable ASCII as itself, `\` as `\\`, every other
/// byte as `\xNN` (two lowercase hex digits), so `tap\xff` and `tap\xfe`
/// show differently and any name can be read back from what is shown. A
/// name with nothing to escape is padded as a `str` is (`{:<16}`).
///
/// ```
/// # use tap_pool::TapName;
/// assert_eq!(TapName::new("tap0").unwrap().to_string(), "tap0");
/// assert_eq!(TapName::from_bytes(b"tap\xff").unwrap().to_string(), r"tap\xff");
/// assert_eq!(TapName::new("tap-\u{e9}").unwrap().to_string(), r"tap-\xc3\xa9");
/// assert_eq!(TapName::new(r"a\b").unwrap().to_string(), r"a\\b");
/// ```
impl fmt::Display for TapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.as_bytes();
        if bytes
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b'\\')
        {
            f.pad(std::str::from_utf8(bytes).expect("printable ASCII"))
        } else {
            escape(bytes, false, f)
        }
    }
}

/// The name in double quotes, escaped as [`Display`](fmt::Display) does,
/// and `"` as `\"`.
impl fmt::Debug for TapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Quoted(self.as_bytes()), f)
    }
}

/// Equal when the bytes are.
impl PartialEq<str> for TapName {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// Equal when the bytes are.
impl PartialEq<&str> for TapName {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// Equal when the bytes are.
impl PartialEq<[u8]> for TapName {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

/// A name serializes as a string where it is UTF-8 (every name a person
/// types), else as its bytes; either form deserializes, through the same
/// check as [`TapName::from_bytes`], so a name read back is one the kernel
/// takes. In a binary format (one that is not human-readable, such as the
/// helper protocol's postcard) it is always its bytes.
#[cfg(feature = "serde")]
impl serde::Serialize for TapName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return serializer.serialize_bytes(self.as_bytes());
        }
        match self.to_str() {
            Some(name) => serializer.serialize_str(name),
            None => serializer.serialize_bytes(self.as_bytes()),
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for TapName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TapName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a network device name (a string or bytes, at most 15 bytes)")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<TapName, E> {
                TapName::new(name).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(self, name: &[u8]) -> Result<TapName, E> {
                TapName::from_bytes(name).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TapName, A::Error> {
                let mut bytes = Vec::with_capacity(MAX_NAME_LEN);
                while let Some(byte) = seq.next_element::<u8>()? {
                    if bytes.len() > MAX_NAME_LEN {
                        break;
                    }
                    bytes.push(byte);
                }
                TapName::from_bytes(&bytes).map_err(serde::de::Error::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Visitor)
        } else {
            deserializer.deserialize_bytes(Visitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(name: &[u8], byte: u8, at: usize) -> Result<TapName, NameError> {
        Err(NameError::ForbiddenByte {
            name: name.to_vec(),
            byte,
            at,
        })
    }

    /// Reads back what `Display` shows: `\\`, `\xNN`, else the byte itself.
    fn unescape(shown: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut rest = shown.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            rest = tail;
            if b != b'\\' {
                bytes.push(b);
                continue;
            }
            match rest {
                [b'\\', tail @ ..] => {
                    bytes.push(b'\\');
                    rest = tail;
                }
                [b'x', hi, lo, tail @ ..] => {
                    let hex = std::str::from_utf8(&[*hi, *lo]).unwrap().to_owned();
                    bytes.push(u8::from_str_radix(&hex, 16).expect("two hex digits"));
                    rest = tail;
                }
                _ => panic!("bad escape in {shown:?}"),
            }
        }
        bytes
    }

    #[test]
    fn accepts_kernel_valid_names() {
        for ok in [
            "tap0",
            "tap-pool-123456",
            "a",
            "vm_01.net",
            "tap-\u{e9}",
            "...",
            ".a",
        ] {
            let name = TapName::new(ok).unwrap();
            assert_eq!(name.as_bytes(), ok.as_bytes());
            assert_eq!(name.to_str(), Some(ok));
            assert_eq!(name, ok);
        }
    }

    #[test]
    fn refuses_what_the_kernel_refuses() {
        assert_eq!(TapName::new(""), Err(NameError::Empty));
        assert_eq!(TapName::from_bytes(b""), Err(NameError::Empty));
        assert_eq!(
            TapName::new("sixteen-bytes-xx"),
            Err(NameError::TooLong {
                name: b"sixteen-bytes-xx".to_vec(),
                len: 16
            })
        );
        assert_eq!(TapName::new("."), Err(NameError::Reserved(b".".to_vec())));
        assert_eq!(TapName::new(".."), Err(NameError::Reserved(b"..".to_vec())));
        for (bad, byte, at) in [
            ("a/b", b'/', 1),
            ("a:b", b':', 1),
            ("a\0b", 0, 1),
            ("vm%d", b'%', 2),
            ("%", b'%', 0),
            // U+00A0 and `à`: their UTF-8 holds 0xa0, white space to the
            // kernel's Latin-1 `isspace`.
            ("a\u{a0}b", 0xa0, 2),
            ("vm-\u{e0}", 0xa0, 4),
        ] {
            assert_eq!(TapName::new(bad), forbidden(bad.as_bytes(), byte, at));
        }
    }

    /// The kernel's `isspace` is true of exactly 0x09 to 0x0d, 0x20 and
    /// 0xa0; every other byte but NUL, `/`, `:` and `%` is allowed, UTF-8
    /// or not.
    #[test]
    fn each_byte_by_the_kernels_rules() {
        for byte in 0..=u8::MAX {
            let name = [b'a', byte, b'z'];
            let refused = matches!(byte, 0x09..=0x0d | 0x20 | 0xa0 | 0 | b'/' | b':' | b'%');
            if refused {
                assert_eq!(TapName::from_bytes(&name), forbidden(&name, byte, 1));
            } else {
                assert_eq!(TapName::from_bytes(&name).unwrap().as_bytes(), name);
            }
            // Alone: "." is reserved, the others as in a longer name.
            let alone = TapName::from_bytes(&[byte]);
            match byte {
                b'.' => assert_eq!(alone, Err(NameError::Reserved(b".".to_vec()))),
                _ if refused => assert_eq!(alone, forbidden(&[byte], byte, 0)),
                _ => assert_eq!(alone.unwrap().as_bytes(), [byte]),
            }
        }
        // Unicode white space the kernel does not see as such is allowed:
        // U+2003 is E2 80 83, U+3000 is E3 80 80.
        assert!(TapName::new("t\u{2003}x").is_ok());
        assert!(TapName::new("t\u{3000}x").is_ok());
    }

    #[test]
    fn length_is_counted_in_bytes() {
        let fifteen = [0xffu8; 15];
        assert_eq!(TapName::from_bytes(&fifteen).unwrap().len(), 15);
        assert_eq!(
            TapName::from_bytes(&[0xff; 16]),
            Err(NameError::TooLong {
                name: vec![0xff; 16],
                len: 16
            })
        );
        assert_eq!(TapName::new("fifteen-bytes-x").unwrap().len(), 15);
        // 8 two-byte characters: 16 bytes, over the limit though only 8 chars.
        assert!(matches!(
            TapName::new("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"),
            Err(NameError::TooLong { len: 16, .. })
        ));
    }

    #[test]
    fn names_that_are_not_utf8() {
        let ff = TapName::from_bytes(b"tap\xff").unwrap();
        let fe = TapName::from_bytes(b"tap\xfe").unwrap();
        assert_ne!(ff, fe);
        assert_eq!(ff, TapName::from_bytes(b"tap\xff").unwrap());
        assert_eq!(ff.as_bytes(), b"tap\xff");
        assert_eq!(ff.to_str(), None);
        assert_eq!(ff.to_string(), r"tap\xff");
        assert_eq!(fe.to_string(), r"tap\xfe");
        assert_eq!(format!("{ff:?}"), r#""tap\xff""#);
        // Never equal to the text a lossy conversion would make.
        assert_ne!(ff, "tap\u{fffd}");
        assert_eq!(TapName::try_from(&b"tap\xff"[..]), Ok(ff));
    }

    /// What `Display` shows reads back to the very bytes, so no two names
    /// show alike; a name with nothing to escape shows (and pads) as itself.
    #[test]
    fn display_is_exact_and_unambiguous() {
        let names: Vec<TapName> = [
            &b"tap0"[..],
            b"tap\xff",
            b"tap\xfe",
            br"tap\xff",
            br"tap\\xff",
            b"a\\",
            b"\\",
            b"\x01\x7f\x80",
            "tap-\u{e9}".as_bytes(),
            b"a\"b",
            b"x",
        ]
        .iter()
        .map(|b| TapName::from_bytes(b).unwrap())
        .collect();
        let mut shown = std::collections::HashSet::new();
        for name in &names {
            let text = name.to_string();
            assert_eq!(unescape(&text), name.as_bytes(), "{text}");
            assert!(text.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{text}");
            assert!(shown.insert(text), "{name:?} shows as another name does");
        }
        assert_eq!(names[3].to_string(), r"tap\\xff");
        assert_eq!(format!("{:?}", names[9]), r#""a\"b""#);
        assert_eq!(format!("[{:<6}]", names[0]), "[tap0  ]");
    }

    #[test]
    fn errors_show_the_byte_and_the_name_escaped() {
        let e = TapName::new("vm-\u{e0}").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"device name "vm-\xc3\xa0" holds the byte 0xa0 at offset 4: white space to the kernel"#
        );
        let e = TapName::from_bytes(b"a\0b").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"device name "a\x00b" holds the byte 0x00 at offset 1: NUL ends a name"#
        );
        let e = TapName::from_bytes(&[0xff; 16]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "device name \"{}\" is 16 bytes long; the kernel allows at most 15",
                r"\xff".repeat(16)
            )
        );
    }

    #[test]
    fn names_sort_as_their_bytes() {
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
        names.push(TapName::from_bytes(b"tap-\xff").unwrap());
        names.push(TapName::from_bytes(b"tap-\x01").unwrap());
        names.sort();
        let sorted: Vec<&[u8]> = names.iter().map(TapName::as_bytes).collect();
        let mut expected: Vec<&[u8]> = by_text.iter().map(|t| t.as_bytes()).collect();
        expected.push(b"tap-\xff");
        expected.push(b"tap-\x01");
        expected.sort();
        assert_eq!(sorted, expected);
    }
}
