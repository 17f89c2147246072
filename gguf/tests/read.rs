//! The reader on fixtures: what it finds in a valid file, and how it refuses broken ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use llorch_gguf::fixture::{GgufBuilder, Value, tiny, tiny_model};
use llorch_gguf::ggml_type::{F16, F32, Q4_K, Q8_0};
use llorch_gguf::{GgufError, read_summary, read_summary_from};

fn base(arch: &str) -> GgufBuilder {
    GgufBuilder::new()
        .kv("general.architecture", Value::String(arch.into()))
        .kv(&format!("{arch}.block_count"), Value::U32(3))
        .kv(&format!("{arch}.context_length"), Value::U32(1024))
        .kv(&format!("{arch}.embedding_length"), Value::U32(128))
        .kv(&format!("{arch}.attention.head_count"), Value::U32(8))
}

fn err(bytes: &[u8]) -> String {
    read_summary_from(bytes).unwrap_err().to_string()
}

#[test]
fn tiny_model_reads_back_its_shape_and_sizes() {
    let s = read_summary_from(&tiny_model("llama")[..]).unwrap();
    assert_eq!(s.version, 3);
    assert_eq!(s.architecture, "llama");
    assert_eq!(
        (s.layers, s.heads, s.kv_heads, s.embedding_length, s.context_length),
        (
            tiny::LAYERS,
            tiny::HEADS,
            tiny::KV_HEADS,
            tiny::EMBEDDING,
            tiny::CONTEXT
        )
    );
    assert_eq!((s.key_length, s.value_length), (16, 16));
    assert_eq!(s.tensor_count, 1 + 4 * 2 + 1);
    // token_embd Q8_0 64×32: 64 blocks × 34; per layer: norm 64×4, q 64×64×2, k Q8_0 64×32
    // (64 blocks × 34), ffn_down Q4_K 256×64 (64 blocks × 144); output_norm 64×4.
    let per_layer = 256 + 8192 + 2176 + 9216;
    assert_eq!(s.tensor_bytes, 2176 + 2 * per_layer + 256);
    assert_eq!(s.kv_bytes_per_token(), 2 * 2 * (16 + 16) * 2);
    assert_eq!(s.data_offset % 32, 0);
    assert_eq!(s.data_end, tiny_model("llama").len() as u64);
    let info = s.info();
    assert_eq!(
        (info.architecture.as_str(), info.tensor_count, info.kv_heads),
        ("llama", 10, 2)
    );
}

#[test]
fn read_summary_reads_a_file_and_names_it_in_errors() {
    let dir = tempfile_dir();
    let good = dir.join("good.gguf");
    std::fs::write(&good, tiny_model("qwen2")).unwrap();
    assert_eq!(read_summary(&good).unwrap().architecture, "qwen2");

    let bad = dir.join("bad.gguf");
    std::fs::write(&bad, b"mock weights").unwrap();
    let e = read_summary(&bad).unwrap_err();
    assert!(matches!(e.root(), GgufError::NotGguf { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("bad.gguf") && msg.contains("not a GGUF file") && msg.contains("6d 6f 63 6b"),
        "{msg}"
    );

    let short = dir.join("short.gguf");
    let bytes = tiny_model("llama");
    std::fs::write(&short, &bytes[..bytes.len() - 100]).unwrap();
    let msg = read_summary(&short).unwrap_err().to_string();
    assert!(msg.contains("short.gguf") && msg.contains("truncated"), "{msg}");

    let msg = read_summary(&dir.join("absent.gguf")).unwrap_err().to_string();
    assert!(msg.contains("cannot read") && msg.contains("absent.gguf"), "{msg}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llorch-gguf-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn kv_heads_default_to_heads_and_head_dims_to_embedding_over_heads() {
    let s = read_summary_from(&base("llama").build()[..]).unwrap();
    assert_eq!((s.heads, s.kv_heads, s.key_length, s.value_length), (8, 8, 16, 16));
    assert_eq!(s.kv_bytes_per_token(), 3 * 8 * 32 * 2);
}

#[test]
fn explicit_key_and_value_lengths_win() {
    let b = base("gemma3")
        .kv("gemma3.attention.key_length", Value::U32(256))
        .kv("gemma3.attention.value_length", Value::U16(128))
        .kv("gemma3.attention.head_count_kv", Value::U8(2));
    let s = read_summary_from(&b.build()[..]).unwrap();
    assert_eq!((s.kv_heads, s.key_length, s.value_length), (2, 256, 128));
    assert_eq!(s.kv_bytes_per_token(), 3 * 2 * 384 * 2);
}

#[test]
fn per_layer_head_counts_take_the_largest() {
    let per_layer = |v: &[i32]| Value::Array(v.iter().map(|&n| Value::I32(n)).collect());
    let b = GgufBuilder::new()
        .kv("general.architecture", Value::String("openelm".into()))
        .kv("openelm.block_count", Value::U32(3))
        .kv("openelm.context_length", Value::U32(2048))
        .kv("openelm.embedding_length", Value::U32(1280))
        .kv("openelm.attention.head_count", per_layer(&[12, 16, 20]))
        .kv("openelm.attention.head_count_kv", per_layer(&[3, 4, 5]))
        .kv("openelm.attention.key_length", Value::U32(64))
        .kv("openelm.attention.value_length", Value::U32(64));
    let s = read_summary_from(&b.build()[..]).unwrap();
    assert_eq!((s.heads, s.kv_heads), (20, 5));
}

#[test]
fn all_metadata_value_types_including_nested_arrays_are_skipped() {
    let nested = Value::Array(vec![
        Value::Array(vec![Value::String("a".into()), Value::String("bc".into())]),
        Value::Array(vec![Value::String("d".into())]),
    ]);
    let b = base("llama")
        .kv("x.u8", Value::U8(1))
        .kv("x.i8", Value::I8(-1))
        .kv("x.u16", Value::U16(2))
        .kv("x.i16", Value::I16(-2))
        .kv("x.i32", Value::I32(-3))
        .kv("x.f32", Value::F32(0.5))
        .kv("x.bool", Value::Bool(true))
        .kv("x.u64", Value::U64(4))
        .kv("x.i64", Value::I64(-4))
        .kv("x.f64", Value::F64(0.25))
        .kv("x.empty", Value::Array(vec![]))
        .kv("x.f64s", Value::Array(vec![Value::F64(1.0), Value::F64(2.0)]))
        .kv("x.nested", nested)
        .tensor("a", &[32, 2], F32)
        .tensor("b", &[64], F16)
        .tensor("c", &[256, 3], Q4_K)
        .tensor("d", &[32], Q8_0);
    let s = read_summary_from(&b.build()[..]).unwrap();
    assert_eq!(s.tensor_count, 4);
    assert_eq!(s.tensor_bytes, 256 + 128 + 3 * 144 + 34);
}

#[test]
fn general_alignment_sets_the_data_offset_and_padding() {
    let b = base("llama")
        .kv("general.alignment", Value::U32(64))
        .tensor("a", &[3], F32)
        .tensor("b", &[5], F32);
    let bytes = b.build();
    let s = read_summary_from(&bytes[..]).unwrap();
    assert_eq!(s.data_offset % 64, 0);
    assert_eq!(s.data_end, s.data_offset + 64 + 20);
    assert_eq!(s.tensor_bytes, 12 + 20);
}

#[test]
fn a_bad_alignment_is_refused() {
    let msg = err(&base("llama").kv("general.alignment", Value::U32(48)).build());
    assert!(
        msg.contains("general.alignment") && msg.contains("48 is not a power of two"),
        "{msg}"
    );
    let msg = err(&base("llama").kv("general.alignment", Value::U64(64)).build());
    assert!(msg.contains("has type u64, expected u32"), "{msg}");
}

#[test]
fn an_unknown_tensor_type_names_the_tensor_and_the_id() {
    let bytes = base("llama").tensor("blk.0.attn_q.weight", &[32], 31).build();
    let e = read_summary_from(&bytes[..]).unwrap_err();
    match &e {
        GgufError::UnknownTensorType {
            tensor,
            type_id,
            offset,
        } => {
            assert_eq!((tensor.as_str(), *type_id), ("blk.0.attn_q.weight", 31));
            assert_eq!(&bytes[*offset as usize..*offset as usize + 4], &31u32.to_le_bytes());
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("unknown ggml type id 31"), "{e}");
}

#[test]
fn rows_that_are_not_whole_blocks_are_refused() {
    let msg = err(&base("llama").tensor("t", &[100, 2], Q4_K).build());
    assert!(
        msg.contains("tensor 't'") && msg.contains("100 elements") && msg.contains("Q4_K"),
        "{msg}"
    );
}

#[test]
fn missing_sizing_keys_are_named() {
    let b = GgufBuilder::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("llama.block_count", Value::U32(2));
    let msg = err(&b.build());
    assert!(msg.contains("'llama.context_length' is missing"), "{msg}");
    let msg = err(&GgufBuilder::new().build());
    assert!(msg.contains("'general.architecture' is missing"), "{msg}");
}

#[test]
fn sizing_keys_of_the_wrong_type_or_range_are_refused() {
    let msg = err(&base("llama")
        .kv("llama.attention.head_count_kv", Value::F32(2.0))
        .build());
    assert!(
        msg.contains("'llama.attention.head_count_kv'") && msg.contains("type f32"),
        "{msg}"
    );
    let msg = err(&base("llama")
        .kv("llama.attention.head_count_kv", Value::I32(-1))
        .build());
    assert!(msg.contains("-1 is not in 0..=4294967295"), "{msg}");
}

#[test]
fn duplicate_keys_and_tensor_names_are_refused() {
    let msg = err(&base("llama")
        .kv("general.name", Value::String("a".into()))
        .kv("general.name", Value::U8(1))
        .build());
    assert!(msg.contains("duplicate key 'general.name'"), "{msg}");
    let msg = err(&base("llama").tensor("t", &[1], F32).tensor("t", &[1], F32).build());
    assert!(msg.contains("duplicate tensor name 't'"), "{msg}");
}

#[test]
fn versions_and_endianness() {
    let mut bytes = tiny_model("llama");
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(read_summary_from(&bytes[..]).unwrap().version, 2);
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(err(&bytes).contains("unsupported GGUF version 1"));
    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(err(&bytes).contains("big-endian"));
}

#[test]
fn hostile_counts_hit_limits_with_field_and_offset() {
    let mut bytes = tiny_model("llama");
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let msg = err(&bytes);
    assert!(
        msg.contains("the tensor count at byte 8") && msg.contains("above the limit"),
        "{msg}"
    );

    // A string value claiming 1 TiB.
    let mut b = base("llama").kv("x", Value::String("abc".into())).build();
    let key_end = find(&b, b"\x01\x00\x00\x00\x00\x00\x00\x00x") + 9;
    let len_at = key_end + 4;
    b[len_at..len_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let msg = err(&b);
    assert!(
        msg.contains(&format!("the length of the value of 'x' at byte {len_at}")),
        "{msg}"
    );

    // Too many dimensions.
    let mut b = base("llama").tensor("t", &[1, 1, 1, 1], F32).build();
    let dims_at = find(&b, b"\x01\x00\x00\x00\x00\x00\x00\x00t") + 9;
    b[dims_at..dims_at + 4].copy_from_slice(&5u32.to_le_bytes());
    assert!(err(&b).contains("the dimension count of tensor 't'"), "{}", err(&b));
}

#[test]
fn deep_array_nesting_is_refused() {
    let mut v = Value::Array(vec![Value::U8(1)]);
    for _ in 0..9 {
        v = Value::Array(vec![v]);
    }
    let msg = err(&base("llama").kv("deep", v).build());
    assert!(msg.contains("the nesting of arrays in 'deep'"), "{msg}");
}

#[test]
fn misplaced_tensor_offsets_are_refused() {
    let mut b = base("llama").tensor("a", &[8], F32).tensor("b", &[8], F32).build();
    // b's offset is the last 8 bytes of its info: 32 (a's 32 bytes, padded to 32).
    let at = find(&b, b"\x01\x00\x00\x00\x00\x00\x00\x00b") + 9 + 4 + 8 + 4;
    assert_eq!(u64::from_le_bytes(b[at..at + 8].try_into().unwrap()), 32);
    b[at..at + 8].copy_from_slice(&16u64.to_le_bytes());
    let msg = err(&b);
    assert!(
        msg.contains("the data offset of tensor 'b'") && msg.contains("16, expected 32"),
        "{msg}"
    );
}

#[test]
fn every_ggml_type_sizes_a_tensor() {
    for id in 0..64u32 {
        let Some((block, bytes)) = llorch_gguf::ggml_type::block_layout(id) else {
            continue;
        };
        let s = read_summary_from(&base("llama").tensor("t", &[block * 2, 3], id).build()[..]).unwrap();
        assert_eq!(s.tensor_bytes, 6 * bytes, "type {id}");
    }
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

/// Counts the bytes the parser pulls from its input.
struct Counting<'a> {
    inner: &'a [u8],
    read: usize,
}

impl std::io::Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

#[test]
fn the_reader_reads_the_header_and_not_the_tensor_data() {
    let bytes = tiny_model("llama");
    let mut input = Counting { inner: &bytes, read: 0 };
    let s = read_summary_from(&mut input).unwrap();
    assert!(
        input.read as u64 <= s.data_offset,
        "read {} bytes, data starts at {}",
        input.read,
        s.data_offset
    );
    assert!(
        s.data_end - s.data_offset > 40_000,
        "the tensor data is most of the file"
    );
}
