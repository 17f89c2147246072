//! Parses a GGUF v2/v3 header into a [`GgufSummary`]: the metadata keys that size a model and
//! the tensor infos, never the tensor data.
//!
//! Layout (little-endian): magic `GGUF`, u32 version, u64 tensor count, u64 key/value count,
//! the key/value pairs, the tensor infos, padding to `general.alignment` (default 32), the data.
//! The checks follow llama.cpp's `gguf_init_from_file` where it refuses a file: unknown value or
//! tensor types, duplicate keys or tensor names, more than 4 dimensions, rows that are not whole
//! blocks, and tensor offsets that are not where the previous tensor's padded data ends.

use std::collections::HashSet;
use std::io::Read;

use crate::error::{GgufError, Result};
use crate::ggml_type;
use crate::reader::{HeaderReader, Lazy, Limits};
use crate::summary::GgufSummary;

const MAGIC: [u8; 4] = *b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

/// Metadata value types (`gguf_type`).
const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;

fn type_name(t: u32) -> &'static str {
    match t {
        0 => "u8",
        1 => "i8",
        2 => "u16",
        3 => "i16",
        4 => "u32",
        5 => "i32",
        6 => "f32",
        7 => "bool",
        8 => "string",
        9 => "array",
        10 => "u64",
        11 => "i64",
        12 => "f64",
        _ => "unknown",
    }
}

/// Byte width of a fixed-size value type; `None` for strings, arrays and unknown ids.
fn fixed_width(t: u32) -> Option<u64> {
    match t {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn is_integer(t: u32) -> bool {
    matches!(t, 0..=5 | 10 | 11)
}

/// The key suffixes (after `<arch>.`) whose integer values the summary needs.
pub(crate) const SIZING_SUFFIXES: [&str; 7] = [
    "block_count",
    "context_length",
    "embedding_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
];

fn is_sizing_key(key: &str) -> bool {
    SIZING_SUFFIXES
        .iter()
        .any(|s| key.len() > s.len() + 1 && key.ends_with(s) && key.as_bytes()[key.len() - s.len() - 1] == b'.')
}

/// An integer metadata value (the max for a per-layer array) or why it is not one.
#[derive(Clone, Debug)]
pub(crate) struct SizingValue {
    pub key: String,
    pub offset: u64,
    pub value: std::result::Result<i128, &'static str>,
}

/// What the parser keeps of the metadata.
#[derive(Default)]
pub(crate) struct Metadata {
    pub architecture: Option<(String, u64)>,
    pub alignment: Option<u64>,
    pub sizing: Vec<SizingValue>,
}

impl Metadata {
    pub fn get(&self, key: &str) -> Option<&SizingValue> {
        self.sizing.iter().find(|v| v.key == key)
    }
}

struct Parser<R> {
    r: HeaderReader<R>,
    limits: Limits,
}

/// Reads a header from `input` under `limits`.
pub(crate) fn parse<R: Read>(input: R, limits: Limits) -> Result<GgufSummary> {
    let mut p = Parser {
        r: HeaderReader::new(input, limits.header_bytes),
        limits,
    };
    let magic = p.r.bytes::<4>("the magic")?;
    if magic != MAGIC {
        return Err(GgufError::NotGguf {
            found: describe_magic(&magic),
        });
    }
    let version = p.r.u32("the version")?;
    match version {
        2 | 3 => {}
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => return Err(GgufError::BigEndian { raw: v }),
        v => return Err(GgufError::UnsupportedVersion { version: v }),
    }
    let tensor_count = p.count("the tensor count", limits.tensor_count)?;
    let kv_count = p.count("the metadata key/value count", limits.kv_count)?;
    let meta = p.metadata(kv_count)?;
    let alignment = meta.alignment.unwrap_or(DEFAULT_ALIGNMENT);
    let tensors = p.tensor_infos(tensor_count, alignment)?;
    let header_end = p.r.offset();
    let data_offset = align_up(header_end, alignment).ok_or_else(|| overflow("the data offset", header_end))?;
    let data_end = data_offset
        .checked_add(tensors.data_size)
        .ok_or_else(|| overflow("the end of the tensor data", header_end))?;
    GgufSummary::from_parts(version, tensor_count, tensors.total_bytes, data_offset, data_end, &meta)
}

fn describe_magic(magic: &[u8; 4]) -> String {
    let hex: Vec<String> = magic.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = magic
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
        .collect();
    format!("the bytes {} (\"{text}\")", hex.join(" "))
}

fn overflow(field: &str, offset: u64) -> GgufError {
    GgufError::Invalid {
        field: field.to_owned(),
        offset,
        reason: "overflows 64 bits".into(),
    }
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    Some(x.checked_add(alignment - 1)? / alignment * alignment)
}

struct TensorTotals {
    /// Sum of the tensor sizes, without padding.
    total_bytes: u64,
    /// Size of the data section: the last tensor's offset plus its size.
    data_size: u64,
}

impl<R: Read> Parser<R> {
    fn count(&mut self, field: &str, limit: u64) -> Result<u64> {
        let at = self.r.offset();
        let n = self.r.u64(field)?;
        if n > limit {
            return Err(GgufError::Limit {
                field: field.to_owned(),
                offset: at,
                value: n,
                limit,
            });
        }
        Ok(n)
    }

    fn metadata(&mut self, kv_count: u64) -> Result<Metadata> {
        let mut meta = Metadata::default();
        let mut seen = HashSet::new();
        for i in 0..kv_count {
            let key_at = self.r.offset();
            let key = self.r.string(&format!("metadata key #{i}"), self.limits.key_bytes)?;
            if !seen.insert(key.clone()) {
                return Err(GgufError::Invalid {
                    field: format!("metadata key #{i}"),
                    offset: key_at,
                    reason: format!("duplicate key '{key}'"),
                });
            }
            let type_at = self.r.offset();
            let ty = self.r.u32(&format!("the type of '{key}'"))?;
            let value_at = self.r.offset();
            match key.as_str() {
                "general.architecture" => {
                    if ty != TYPE_STRING {
                        return Err(wrong_type(&key, type_at, ty, "string"));
                    }
                    let arch = self.r.string(&format!("the value of '{key}'"), self.limits.key_bytes)?;
                    meta.architecture = Some((arch, value_at));
                }
                "general.alignment" => {
                    if ty != 4 {
                        return Err(wrong_type(&key, type_at, ty, "u32"));
                    }
                    let a = self.r.u32(&format!("the value of '{key}'"))?;
                    if a == 0 || !a.is_power_of_two() {
                        return Err(GgufError::Invalid {
                            field: key.clone(),
                            offset: value_at,
                            reason: format!("{a} is not a power of two"),
                        });
                    }
                    meta.alignment = Some(u64::from(a));
                }
                _ if is_sizing_key(&key) => {
                    let value = self.sizing_value(&key, ty)?;
                    meta.sizing.push(SizingValue {
                        key,
                        offset: value_at,
                        value,
                    });
                }
                _ => self.skip_value(&key, ty, 0)?,
            }
        }
        Ok(meta)
    }

    /// Reads an integer, or the largest element of an integer array (per-layer head counts).
    fn sizing_value(&mut self, key: &str, ty: u32) -> Result<std::result::Result<i128, &'static str>> {
        if is_integer(ty) {
            return self.integer(key, ty).map(Ok);
        }
        if ty != TYPE_ARRAY {
            self.skip_value(key, ty, 0)?;
            return Ok(Err(type_name(ty)));
        }
        let elem_at = self.r.offset();
        let elem = self.r.u32(&format!("the element type of '{key}'"))?;
        let len = self.array_len(key)?;
        if !is_integer(elem) {
            self.skip_elements(key, elem, len, 1, elem_at)?;
            return Ok(Err("a non-integer array"));
        }
        let mut max: Option<i128> = None;
        for _ in 0..len {
            let v = self.integer(key, elem)?;
            max = Some(max.map_or(v, |m| m.max(v)));
        }
        Ok(max.ok_or("an empty array"))
    }

    fn integer(&mut self, key: &str, ty: u32) -> Result<i128> {
        let field = format!("the value of '{key}'");
        Ok(match ty {
            0 => i128::from(self.r.bytes::<1>(&field)?[0]),
            1 => i128::from(i8::from_le_bytes(self.r.bytes::<1>(&field)?)),
            2 => i128::from(u16::from_le_bytes(self.r.bytes::<2>(&field)?)),
            3 => i128::from(i16::from_le_bytes(self.r.bytes::<2>(&field)?)),
            4 => i128::from(self.r.u32(&field)?),
            5 => i128::from(i32::from_le_bytes(self.r.bytes::<4>(&field)?)),
            10 => i128::from(self.r.u64(&field)?),
            _ => i128::from(i64::from_le_bytes(self.r.bytes::<8>(&field)?)),
        })
    }

    fn array_len(&mut self, key: &str) -> Result<u64> {
        let at = self.r.offset();
        let field = format!("the length of array '{key}'");
        let len = self.r.u64(&field)?;
        if len > self.limits.array_len {
            return Err(GgufError::Limit {
                field,
                offset: at,
                value: len,
                limit: self.limits.array_len,
            });
        }
        Ok(len)
    }

    fn skip_value(&mut self, key: &str, ty: u32, depth: u32) -> Result<()> {
        let at = self.r.offset();
        if let Some(width) = fixed_width(ty) {
            return self.r.skip(&Lazy(&|| format!("the value of '{key}'")), width);
        }
        match ty {
            TYPE_STRING => self
                .r
                .skip_string(&Lazy(&|| format!("the value of '{key}'")), self.limits.string_bytes),
            TYPE_ARRAY => {
                if depth >= self.limits.array_depth {
                    return Err(GgufError::Limit {
                        field: format!("the nesting of arrays in '{key}'"),
                        offset: at,
                        value: u64::from(depth) + 1,
                        limit: u64::from(self.limits.array_depth),
                    });
                }
                let elem_at = self.r.offset();
                let elem = self.r.u32(&Lazy(&|| format!("the element type of '{key}'")))?;
                let len = self.array_len(key)?;
                self.skip_elements(key, elem, len, depth + 1, elem_at)
            }
            _ => Err(GgufError::Invalid {
                field: format!("the type of '{key}'"),
                offset: at.saturating_sub(4),
                reason: format!("unknown metadata value type {ty}"),
            }),
        }
    }

    fn skip_elements(&mut self, key: &str, elem: u32, len: u64, depth: u32, elem_at: u64) -> Result<()> {
        if let Some(width) = fixed_width(elem) {
            // len ≤ limits.array_len (2^24) and width ≤ 8: no overflow.
            return self.r.skip(&Lazy(&|| format!("the elements of '{key}'")), len * width);
        }
        if elem != TYPE_STRING && elem != TYPE_ARRAY {
            return Err(GgufError::Invalid {
                field: format!("the element type of '{key}'"),
                offset: elem_at,
                reason: format!("unknown metadata value type {elem}"),
            });
        }
        for _ in 0..len {
            self.skip_value(key, elem, depth)?;
        }
        Ok(())
    }

    fn tensor_infos(&mut self, count: u64, alignment: u64) -> Result<TensorTotals> {
        let mut names = HashSet::new();
        let mut totals = TensorTotals {
            total_bytes: 0,
            data_size: 0,
        };
        // Where the next tensor's data must start: the previous one's end, padded.
        let mut expected_offset = 0u64;
        for i in 0..count {
            let name_at = self.r.offset();
            let name = self
                .r
                .string(&format!("the name of tensor #{i}"), self.limits.tensor_name_bytes)?;
            if !names.insert(name.clone()) {
                return Err(GgufError::Invalid {
                    field: format!("the name of tensor #{i}"),
                    offset: name_at,
                    reason: format!("duplicate tensor name '{name}'"),
                });
            }
            let dims_at = self.r.offset();
            let n_dims = self.r.u32(&format!("the dimension count of tensor '{name}'"))?;
            if n_dims > self.limits.tensor_dims {
                return Err(GgufError::Limit {
                    field: format!("the dimension count of tensor '{name}'"),
                    offset: dims_at,
                    value: u64::from(n_dims),
                    limit: u64::from(self.limits.tensor_dims),
                });
            }
            let mut elements: u64 = 1;
            let mut row: u64 = 1;
            for d in 0..n_dims {
                let at = self.r.offset();
                let field = format!("dimension {d} of tensor '{name}'");
                let ne = self.r.u64(&field)?;
                // ggml stores dimensions as int64_t and refuses any product that overflows it.
                elements = elements
                    .checked_mul(ne)
                    .filter(|&n| n <= i64::MAX as u64)
                    .ok_or_else(|| GgufError::Invalid {
                        field,
                        offset: at,
                        reason: format!("{ne} makes the element count overflow int64"),
                    })?;
                if d == 0 {
                    row = ne;
                }
            }
            let type_at = self.r.offset();
            let type_id = self.r.u32(&format!("the type of tensor '{name}'"))?;
            let Some((block, block_bytes)) = ggml_type::block_layout(type_id) else {
                return Err(GgufError::UnknownTensorType {
                    tensor: name,
                    type_id,
                    offset: type_at,
                });
            };
            if !row.is_multiple_of(block) {
                return Err(GgufError::Invalid {
                    field: format!("the shape of tensor '{name}'"),
                    offset: dims_at,
                    reason: format!(
                        "a row of {row} elements is not a whole number of {} blocks of {block}",
                        ggml_type::name(type_id).unwrap_or("?")
                    ),
                });
            }
            // elements ≤ 2^63 and block_bytes ≤ 292 with block ≥ 1: may overflow, so check.
            let size = (elements / block)
                .checked_mul(block_bytes)
                .ok_or_else(|| overflow(&format!("the size of tensor '{name}'"), type_at))?;
            let offset_at = self.r.offset();
            let offset = self.r.u64(&format!("the data offset of tensor '{name}'"))?;
            if offset != expected_offset {
                return Err(GgufError::Invalid {
                    field: format!("the data offset of tensor '{name}'"),
                    offset: offset_at,
                    reason: format!(
                        "{offset}, expected {expected_offset} (the previous tensor's end, padded to {alignment})"
                    ),
                });
            }
            let end = offset
                .checked_add(size)
                .ok_or_else(|| overflow(&format!("the end of tensor '{name}'"), offset_at))?;
            totals.data_size = end;
            totals.total_bytes = totals
                .total_bytes
                .checked_add(size)
                .ok_or_else(|| overflow("the sum of tensor sizes", offset_at))?;
            expected_offset = align_up(end, alignment).ok_or_else(|| overflow("the next tensor offset", offset_at))?;
        }
        Ok(totals)
    }
}

fn wrong_type(key: &str, offset: u64, found: u32, expected: &'static str) -> GgufError {
    GgufError::WrongType {
        key: key.to_owned(),
        offset,
        found: type_name(found),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_keys_match_on_a_dot_boundary() {
        assert!(is_sizing_key("llama.block_count"));
        assert!(is_sizing_key("qwen2.attention.head_count_kv"));
        assert!(!is_sizing_key("block_count"));
        assert!(!is_sizing_key("llama.xblock_count"));
        assert!(!is_sizing_key("llama.attention.head_count_kv_x"));
    }

    #[test]
    fn alignment_rounds_up() {
        assert_eq!(align_up(0, 32), Some(0));
        assert_eq!(align_up(1, 32), Some(32));
        assert_eq!(align_up(64, 32), Some(64));
        assert_eq!(align_up(u64::MAX, 32), None);
    }
}
