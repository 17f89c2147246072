//! Fuzzing the reader: random bytes, truncations and bit flips of valid files must give `Ok`
//! or `Err` — never a panic, a hang or a huge allocation (limits are shrunk so that a runaway
//! would show, and every case must finish fast).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use llorch_gguf::fixture::{GgufBuilder, Value, tiny_model};
use llorch_gguf::{Limits, read_summary_from, read_summary_with_limits};
use proptest::prelude::*;

fn valid_files() -> Vec<Vec<u8>> {
    let nested = Value::Array(vec![
        Value::Array(vec![Value::String("x".into())]),
        Value::Array(vec![]),
    ]);
    vec![
        tiny_model("llama"),
        tiny_model("brokenarch"),
        GgufBuilder::new()
            .kv("general.architecture", Value::String("qwen2".into()))
            .kv("general.alignment", Value::U32(64))
            .kv("qwen2.block_count", Value::U32(2))
            .kv("qwen2.context_length", Value::U32(128))
            .kv("qwen2.embedding_length", Value::U32(64))
            .kv(
                "qwen2.attention.head_count",
                Value::Array(vec![Value::U32(4), Value::U32(8)]),
            )
            .kv("n", nested)
            .tensor("a", &[32, 2], 8)
            .build(),
    ]
}

/// Checks one input both ways: under the default limits and under tiny ones.
fn check(bytes: &[u8]) {
    let started = Instant::now();
    let _ = read_summary_from(bytes);
    let small = Limits {
        header_bytes: 4096,
        string_bytes: 256,
        array_len: 64,
        ..Limits::DEFAULT
    };
    let _ = read_summary_with_limits(bytes, small);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&tail);
        // Behind a valid magic and version, so the parser gets past the first check.
        let mut bytes = b"GGUF\x03\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&tail);
        check(&bytes);
    }

    #[test]
    fn truncations_are_errors(which in 0usize..3, cut in any::<prop::sample::Index>()) {
        let file = &valid_files()[which];
        let s = read_summary_from(&file[..]).unwrap();
        let n = cut.index(file.len());
        let r = read_summary_from(&file[..n]);
        // The header ends at most 64 bytes (the largest alignment here) before the data: a cut
        // before that is an error. A later cut (padding or data) reads the same header, which
        // is all read_summary_from reads; read_summary checks the file's length.
        if n as u64 + 64 <= s.data_offset {
            prop_assert!(r.is_err(), "cut at {} of {} parsed", n, file.len());
        } else if let Ok(cut) = r {
            prop_assert_eq!(cut, s);
        }
        check(&file[..n]);
    }

    #[test]
    fn bit_flips_never_panic(which in 0usize..3, flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..8)) {
        let mut file = valid_files()[which].clone();
        let header_len = read_summary_from(&file[..]).unwrap().data_offset as usize;
        for (at, bit) in flips {
            let i = at.index(header_len.min(file.len()));
            file[i] ^= 1 << bit;
        }
        check(&file);
    }

    #[test]
    fn overwritten_words_never_panic(which in 0usize..3, at in any::<prop::sample::Index>(), word in prop_oneof![Just(u64::MAX), Just(1u64 << 32), Just(0), any::<u64>()]) {
        let mut file = valid_files()[which].clone();
        let header_len = read_summary_from(&file[..]).unwrap().data_offset as usize;
        let i = at.index(header_len - 8);
        file[i..i + 8].copy_from_slice(&word.to_le_bytes());
        check(&file);
    }
}
