//! What one replica of a Pool needs in VRAM, and how that need is split over the replica's
//! GPUs. Pure arithmetic; the figures come from the Model (`status.model.vram`, or the
//! `spec.vramBytes` override) and the Pool (context size, slots, `tensorSplit`); the sizing
//! itself is `llorch_gguf::estimate`.
//! It never decides where a replica runs: that is the planner's job.

use llorch_manifests::status::{ModelVram, PoolVram};

/// `source` when neither the GGUF header nor an override gives a figure.
pub const SOURCE_UNKNOWN: &str = "unknown";

/// `PoolVram.source` when the figures come from the model's GGUF header.
pub const SOURCE_GGUF: &str = "gguf";

/// Sizes one replica from a Model's figures at the Pool's context and slots
/// (`llorch_gguf::estimate`: weights, the KV cache over the whole `--ctx-size`, which the
/// slots share, and a conservative overhead).
pub fn estimate(weights_bytes: u64, kv_bytes_per_token: u64, ctx_size: u32, slots: u32) -> PoolVram {
    let e = llorch_gguf::estimate(weights_bytes, kv_bytes_per_token, ctx_size, slots);
    PoolVram {
        source: SOURCE_GGUF.into(),
        weights_bytes: e.weights_bytes,
        kv_cache_bytes: e.kv_cache_bytes,
        overhead_bytes: e.overhead_bytes,
        per_replica_bytes: e.total_bytes,
        ..PoolVram::default()
    }
}

/// A Pool's per-replica need. `spec.vramBytes` is the whole figure when set (weights, KV cache
/// and overhead together); else the Model's status figures; else nothing is known and the need
/// is 0 — the caller warns, since placement then only spreads replicas.
pub fn pool_vram(override_bytes: Option<u64>, model: Option<&ModelVram>, ctx_size: u32, slots: u32) -> PoolVram {
    let whole = |bytes: u64| PoolVram {
        source: "override".into(),
        weights_bytes: bytes,
        kv_cache_bytes: 0,
        overhead_bytes: 0,
        per_replica_bytes: bytes,
        ..PoolVram::default()
    };
    match (override_bytes, model) {
        (Some(bytes), _) => whole(bytes),
        (None, Some(m)) if m.source == "override" => whole(m.weights_bytes),
        (None, Some(m)) => estimate(m.weights_bytes, m.kv_bytes_per_token, ctx_size, slots),
        (None, None) => PoolVram {
            source: SOURCE_UNKNOWN.into(),
            ..PoolVram::default()
        },
    }
}

/// Bytes each of a replica's `gpus` GPUs must hold, in ascending GPU order: `total` split
/// evenly, or by the Pool's `tensorSplit` weights (the k-th weight for the k-th lowest index,
/// the order the engine numbers them). Rounded up, so the shares never sum to less than
/// `total`. A split whose length does not match falls back to even (validation refuses it).
pub fn shares(total: u64, gpus: usize, split: Option<&[u32]>) -> Vec<u64> {
    if gpus == 0 {
        return Vec::new();
    }
    let weights: Vec<u64> = match split {
        Some(w) if w.len() == gpus && w.iter().all(|x| *x > 0) => w.iter().map(|x| u64::from(*x)).collect(),
        _ => vec![1; gpus],
    };
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    weights
        .iter()
        .map(|w| {
            let share = (u128::from(total) * u128::from(*w)).div_ceil(sum);
            u64::try_from(share).unwrap_or(u64::MAX)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn an_override_is_the_whole_need() {
        let v = pool_vram(Some(13 * GIB), None, 4096, 2);
        assert_eq!(v.source, "override");
        assert_eq!(v.per_replica_bytes, 13 * GIB);
        assert_eq!(v.kv_cache_bytes, 0);
    }

    #[test]
    fn gguf_figures_add_kv_at_the_pools_context_and_the_overhead() {
        let model = ModelVram {
            source: "gguf".into(),
            weights_bytes: 4 * GIB,
            kv_bytes_per_token: 128 << 10,
        };
        let v = pool_vram(None, Some(&model), 8192, 4);
        assert_eq!(v.kv_cache_bytes, GIB, "128 KiB × 8192 tokens, shared by the slots");
        assert!(v.overhead_bytes > 0);
        assert_eq!(v.per_replica_bytes, 5 * GIB + v.overhead_bytes);
        assert_eq!(v.source, "gguf");
    }

    #[test]
    fn a_model_status_override_is_not_sized_again() {
        let model = ModelVram {
            source: "override".into(),
            weights_bytes: 7 * GIB,
            kv_bytes_per_token: 0,
        };
        assert_eq!(pool_vram(None, Some(&model), 4096, 1).per_replica_bytes, 7 * GIB);
    }

    #[test]
    fn nothing_known_is_a_zero_need_marked_unknown() {
        let v = pool_vram(None, None, 4096, 1);
        assert_eq!((v.source.as_str(), v.per_replica_bytes), (SOURCE_UNKNOWN, 0));
    }

    #[test]
    fn even_shares_round_up_and_cover_the_total() {
        assert_eq!(shares(10, 3, None), [4, 4, 4]);
        assert_eq!(shares(26 * GIB, 2, None), [13 * GIB, 13 * GIB]);
        assert_eq!(shares(5, 1, None), [5]);
        assert!(shares(5, 0, None).is_empty());
    }

    #[test]
    fn tensor_split_weights_give_the_lower_index_its_weight() {
        assert_eq!(shares(30 * GIB, 2, Some(&[2, 1])), [20 * GIB, 10 * GIB]);
        assert_eq!(shares(9, 3, Some(&[1, 1, 1])), [3, 3, 3]);
        // A split that does not match the GPU count is treated as even.
        assert_eq!(shares(10, 2, Some(&[3, 1, 1])), [5, 5]);
    }
}
