//! Reading netlink attributes in place: an iterator over a buffer of them,
//! and their common value types.

use std::borrow::Cow;

use super::error::Malformed;
use super::message::{align, read_u16, read_u32};

/// `NLA_TYPE_MASK` (libc's value, narrowed to `nla_type`'s width): the
/// type without the nested and byte-order flags.
const NLA_TYPE_MASK: u16 = libc::NLA_TYPE_MASK as u16;

/// Iterates over a buffer of netlink attributes as (type, value), stopping
/// at the first malformed one.
pub(crate) struct Attrs<'a>(pub(crate) &'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.0;
        if bytes.len() < 4 {
            return None;
        }
        let len = read_u16(bytes, 0) as usize;
        if len < 4 || len > bytes.len() {
            self.0 = &[];
            return None;
        }
        self.0 = &bytes[align(len).min(bytes.len())..];
        Some((read_u16(bytes, 2) & NLA_TYPE_MASK, &bytes[4..len]))
    }
}

/// A `u32` attribute's value.
pub(crate) fn read_attr_u32(kind: u16, value: &[u8]) -> Result<u32, Malformed> {
    if value.len() < 4 {
        return Err(Malformed::Attribute {
            kind,
            len: value.len(),
            need: 4,
        });
    }
    Ok(read_u32(value, 0))
}

/// Text up to the first NUL (netlink strings are NUL-terminated), borrowed
/// when it is UTF-8.
pub(crate) fn c_str(bytes: &[u8]) -> Cow<'_, str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
}

/// [`c_str`], owned.
pub(crate) fn c_string(bytes: &[u8]) -> String {
    c_str(bytes).into_owned()
}
