//! A little-endian reader that knows its byte offset and refuses to go past a header budget.
//!
//! Every read names the field it is for, so errors say what was being read and where. The name
//! is a [`Field`]: a `&str`, or a closure that builds it only when an error needs it — a
//! vocabulary has ~100k strings, and formatting a name for each cost more than reading them.
//! Values the parser does not keep are skipped without allocating; the only allocations are for
//! strings the caller asks to keep, and those are bounded by [`Limits`].

use std::io::{self, Read};

use crate::error::{GgufError, Result};

/// Hard limits on what any GGUF header may declare. Real models stay far below them; a hostile
/// or corrupt file hits them before it can make the reader allocate or loop for long.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes from the start of the file to the end of the tensor infos.
    pub header_bytes: u64,
    /// Length of a metadata key.
    pub key_bytes: u64,
    /// Length of a string value (chat templates are the longest, tens of KiB).
    pub string_bytes: u64,
    /// Elements in one array (vocabularies and merges: up to a few hundred thousand).
    pub array_len: u64,
    /// Nesting of arrays inside arrays.
    pub array_depth: u32,
    /// Metadata key/value pairs.
    pub kv_count: u64,
    /// Tensors.
    pub tensor_count: u64,
    /// Dimensions of one tensor (`GGML_MAX_DIMS`).
    pub tensor_dims: u32,
    /// Length of a tensor name (`GGML_MAX_NAME` is 64 including the NUL).
    pub tensor_name_bytes: u64,
}

impl Limits {
    /// The limits [`crate::read_summary`] uses.
    pub const DEFAULT: Limits = Limits {
        header_bytes: 64 << 20,
        key_bytes: 64 << 10,
        string_bytes: 16 << 20,
        array_len: 16 << 20,
        array_depth: 8,
        kv_count: 1 << 20,
        tensor_count: 1 << 20,
        tensor_dims: 4,
        tensor_name_bytes: 63,
    };
}

/// The name of the field being read, for errors only.
pub trait Field {
    /// The name, built when an error is reported.
    fn name(&self) -> String;
}

impl Field for str {
    fn name(&self) -> String {
        self.to_owned()
    }
}

impl Field for String {
    fn name(&self) -> String {
        self.clone()
    }
}

/// A field name built on demand: `Lazy(&|| format!("the value of '{key}'"))`.
pub struct Lazy<'a>(pub &'a dyn Fn() -> String);

impl Field for Lazy<'_> {
    fn name(&self) -> String {
        (self.0)()
    }
}

/// Reads little-endian values from `R`, counting bytes against `budget`.
pub struct HeaderReader<R> {
    inner: R,
    offset: u64,
    budget: u64,
}

impl<R: Read> HeaderReader<R> {
    pub fn new(inner: R, budget: u64) -> Self {
        HeaderReader {
            inner,
            offset: 0,
            budget,
        }
    }

    /// Bytes consumed so far: the offset of the next byte in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Checks that `n` more bytes fit in the header budget.
    fn reserve(&self, field: &(impl Field + ?Sized), n: u64) -> Result<()> {
        match self.offset.checked_add(n) {
            Some(end) if end <= self.budget => Ok(()),
            _ => Err(GgufError::Limit {
                field: format!("header size (reading {})", field.name()),
                offset: self.offset,
                value: self.offset.saturating_add(n),
                limit: self.budget,
            }),
        }
    }

    fn io_error(&self, field: &(impl Field + ?Sized), source: io::Error) -> GgufError {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            GgufError::Truncated {
                field: field.name(),
                offset: self.offset,
            }
        } else {
            GgufError::Io {
                field: field.name(),
                offset: self.offset,
                source,
            }
        }
    }

    /// Reads exactly `N` bytes.
    pub fn bytes<const N: usize>(&mut self, field: &(impl Field + ?Sized)) -> Result<[u8; N]> {
        self.reserve(field, N as u64)?;
        let mut buf = [0u8; N];
        let mut filled = 0;
        while filled < N {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => {
                    self.offset += filled as u64;
                    return Err(self.io_error(field, io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(field, e)),
            }
        }
        self.offset += N as u64;
        Ok(buf)
    }

    pub fn u32(&mut self, field: &(impl Field + ?Sized)) -> Result<u32> {
        self.bytes::<4>(field).map(u32::from_le_bytes)
    }

    pub fn u64(&mut self, field: &(impl Field + ?Sized)) -> Result<u64> {
        self.bytes::<8>(field).map(u64::from_le_bytes)
    }

    /// Skips `n` bytes without keeping them.
    pub fn skip(&mut self, field: &(impl Field + ?Sized), n: u64) -> Result<()> {
        self.reserve(field, n)?;
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(|e| self.io_error(field, e))?;
        self.offset += copied;
        if copied < n {
            return Err(self.io_error(field, io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// Reads a length prefix and checks it against `limit`.
    fn string_len(&mut self, field: &(impl Field + ?Sized), limit: u64) -> Result<u64> {
        let at = self.offset;
        let len = self.u64(&Lazy(&|| format!("the length of {}", field.name())))?;
        if len > limit {
            return Err(GgufError::Limit {
                field: format!("the length of {}", field.name()),
                offset: at,
                value: len,
                limit,
            });
        }
        Ok(len)
    }

    /// Reads a GGUF string (u64 length + bytes) of at most `limit` bytes; it must be UTF-8.
    pub fn string(&mut self, field: &(impl Field + ?Sized), limit: u64) -> Result<String> {
        let len = self.string_len(field, limit)?;
        self.reserve(field, len)?;
        let start = self.offset;
        // `len` is bounded by `limit` and the budget, so this allocation is bounded too; read
        // through `take` so that a short file fails without filling a huge buffer first.
        let mut buf = Vec::new();
        let got = (&mut self.inner)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(|e| self.io_error(field, e))?;
        self.offset += got as u64;
        if (got as u64) < len {
            return Err(self.io_error(field, io::ErrorKind::UnexpectedEof.into()));
        }
        String::from_utf8(buf).map_err(|e| GgufError::Invalid {
            field: field.name(),
            offset: start,
            reason: format!("not UTF-8 ({e})"),
        })
    }

    /// Skips a GGUF string of at most `limit` bytes.
    pub fn skip_string(&mut self, field: &(impl Field + ?Sized), limit: u64) -> Result<()> {
        let len = self.string_len(field, limit)?;
        self.skip(field, len)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_short_input_is_truncated_at_the_offset_reached() {
        let mut r = HeaderReader::new(&[1u8, 0, 0, 0, 9][..], 100);
        assert_eq!(r.u32("a").unwrap(), 1);
        match r.u64("b").unwrap_err() {
            GgufError::Truncated { field, offset } => assert_eq!((field.as_str(), offset), ("b", 5)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn the_budget_is_checked_before_reading() {
        let data = [0u8; 32];
        let mut r = HeaderReader::new(&data[..], 10);
        r.skip("a", 8).unwrap();
        assert!(matches!(r.u32("b").unwrap_err(), GgufError::Limit { limit: 10, .. }));
    }

    #[test]
    fn a_long_string_length_is_refused_without_reading_it() {
        let mut data = u64::MAX.to_le_bytes().to_vec();
        data.extend_from_slice(b"abc");
        let mut r = HeaderReader::new(&data[..], 1 << 20);
        let err = r.string("k", 100).unwrap_err();
        assert!(err.to_string().contains("the length of k at byte 0"), "{err}");
    }

    #[test]
    fn strings_must_be_utf8() {
        let mut data = 2u64.to_le_bytes().to_vec();
        data.extend_from_slice(&[0xff, 0xfe]);
        let err = HeaderReader::new(&data[..], 100).string("k", 100).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}
