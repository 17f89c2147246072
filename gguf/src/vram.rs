//! The VRAM one replica of a model needs: weights, KV cache and a conservative overhead.
//!
//! `--ctx-size` in llama-server is the total context shared by all `--parallel` slots (each slot
//! gets `ctx_size / slots`), so the KV cache is `ctx_size × kv_bytes_per_token` whatever the
//! slot count. The overhead covers what llama.cpp allocates besides weights and KV cache; see
//! docs/vram.md for the formula and why each term is there.

const MIB: u64 = 1 << 20;

/// CUDA context, cuBLAS workspace and the graph's fixed buffers, per GPU process.
pub const OVERHEAD_FIXED_BYTES: u64 = 512 * MIB;
/// Compute buffers grow with the model's width (activations, logits for the vocabulary); the
/// weights are the width proxy available here: 1/16 of them.
pub const OVERHEAD_WEIGHTS_DIVISOR: u64 = 16;
/// Attention scratch for one 512-token micro-batch against the whole context: 16 KiB a token.
pub const OVERHEAD_PER_CONTEXT_TOKEN: u64 = 16 << 10;
/// Sampling and output buffers per slot.
pub const OVERHEAD_PER_SLOT_BYTES: u64 = 2 * MIB;

/// What one replica needs, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VramBreakdown {
    /// The model's tensors.
    pub weights_bytes: u64,
    /// f16 K and V for `ctx_size` tokens (shared by all slots).
    pub kv_cache_bytes: u64,
    /// CUDA context and compute buffers (conservative).
    pub overhead_bytes: u64,
    /// The sum.
    pub total_bytes: u64,
}

/// Estimates one replica's VRAM for a model with `weights_bytes` of tensors and
/// `kv_bytes_per_token` of KV cache per token, served with `--ctx-size ctx_size` and
/// `--parallel slots`. Saturates rather than overflowing.
pub fn estimate(weights_bytes: u64, kv_bytes_per_token: u64, ctx_size: u32, slots: u32) -> VramBreakdown {
    let kv_cache_bytes = kv_bytes_per_token.saturating_mul(u64::from(ctx_size));
    let overhead_bytes = OVERHEAD_FIXED_BYTES
        .saturating_add(weights_bytes / OVERHEAD_WEIGHTS_DIVISOR)
        .saturating_add(OVERHEAD_PER_CONTEXT_TOKEN.saturating_mul(u64::from(ctx_size)))
        .saturating_add(OVERHEAD_PER_SLOT_BYTES.saturating_mul(u64::from(slots.max(1))));
    VramBreakdown {
        weights_bytes,
        kv_cache_bytes,
        overhead_bytes,
        total_bytes: weights_bytes
            .saturating_add(kv_cache_bytes)
            .saturating_add(overhead_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_cache_is_the_total_context_not_per_slot() {
        let one = estimate(1000, 100, 2048, 1);
        let four = estimate(1000, 100, 2048, 4);
        assert_eq!(one.kv_cache_bytes, 204_800);
        assert_eq!(four.kv_cache_bytes, 204_800);
        assert_eq!(four.overhead_bytes - one.overhead_bytes, 3 * OVERHEAD_PER_SLOT_BYTES);
    }

    #[test]
    fn total_is_the_sum_of_the_parts() {
        let b = estimate(100 * MIB, 23_040, 2048, 1);
        assert_eq!(b.total_bytes, b.weights_bytes + b.kv_cache_bytes + b.overhead_bytes);
        assert_eq!(
            b.overhead_bytes,
            512 * MIB + 100 * MIB / 16 + 2048 * 16 * 1024 + 2 * MIB
        );
    }

    #[test]
    fn huge_inputs_saturate() {
        assert_eq!(estimate(u64::MAX, u64::MAX, u32::MAX, u32::MAX).total_bytes, u64::MAX);
    }
}
