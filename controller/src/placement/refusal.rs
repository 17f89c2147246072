//! The words of a placement refusal: which replica, how much it needs on how many GPUs, and for
//! every GPU it may use, what that GPU has free and how much is missing — so the operator can
//! see at once whether to free VRAM, shrink the context or allow another GPU.
//! Words only: it never decides whether a replica fits.

use std::collections::BTreeMap;

use llorch_manifests::api::GpuView;

pub use llorch_manifests::units::gib;

/// `GPU 1 (Simulated RTX 3060, 12.0 GiB)`.
pub fn device_name(d: &GpuView) -> String {
    format!("GPU {} ({}, {})", d.index, d.name, gib(d.total_bytes))
}

/// What the refused replica needed: `13.0 GiB on 1 GPU`, `26.0 GiB on 2 GPUs (13.0 GiB each)`
/// or `30.0 GiB on 2 GPUs (tensorSplit 2,1: 20.0 + 10.0 GiB)`.
pub fn need_text(need: u64, shares: &[u64], split: Option<&[u32]>) -> String {
    let n = shares.len();
    match (n, split) {
        (1, _) => format!("{} on 1 GPU", gib(need)),
        (_, Some(w)) if w.len() == n => format!(
            "{} on {n} GPUs (tensorSplit {}: {})",
            gib(need),
            w.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            shares.iter().map(|s| gib(*s)).collect::<Vec<_>>().join(" + ")
        ),
        _ => format!(
            "{} on {n} GPUs ({} each)",
            gib(need),
            gib(shares.first().copied().unwrap_or(0))
        ),
    }
}

/// One GPU's part of the story. `share` is what it would have to hold (None: not in the best
/// candidate set, so only its free VRAM is shown).
pub fn device_text(d: &GpuView, free: i128, share: Option<u64>) -> String {
    let name = device_name(d);
    if !d.errors.is_empty() {
        return format!("{name} is unhealthy ({})", d.errors.join("; "));
    }
    let free_bytes = u64::try_from(free.max(0)).unwrap_or(u64::MAX);
    match share {
        Some(share) if u128::from(free_bytes) >= u128::from(share) => {
            format!("{name} has room ({} free for {})", gib(free_bytes), gib(share))
        }
        Some(share) if free_bytes == 0 => format!("{name} is full — short by {}", gib(share)),
        Some(share) => format!(
            "{name} has {} free — short by {}",
            gib(free_bytes),
            gib(share - free_bytes)
        ),
        None if free_bytes == 0 => format!("{name} is full"),
        None => format!("{name} has {} free", gib(free_bytes)),
    }
}

/// The whole refusal for replica `replica`: its need, then each GPU of its mask, the best
/// candidates (with their shares) first, then a hint.
pub fn refusal(
    replica: &str,
    need: u64,
    split: Option<&[u32]>,
    best: &[(u32, u64)],
    mask: &[&GpuView],
    free: &BTreeMap<u32, i128>,
) -> String {
    let shares: Vec<u64> = best.iter().map(|(_, s)| *s).collect();
    let mut parts = Vec::new();
    for (index, share) in best {
        if let Some(d) = mask.iter().find(|d| d.index == *index) {
            parts.push(device_text(d, free.get(index).copied().unwrap_or(0), Some(*share)));
        }
    }
    // With equal shares every GPU would have to hold the same: show its shortfall too.
    let same = shares.windows(2).all(|w| w[0] == w[1]);
    let other_share = shares.first().copied().filter(|_| same);
    for d in mask.iter().filter(|d| !best.iter().any(|(i, _)| *i == d.index)) {
        parts.push(device_text(d, free.get(&d.index).copied().unwrap_or(0), other_share));
    }
    format!(
        "replica {replica} needs {}; {}. Not started: free VRAM on these GPUs, lower ctxSize or \
         slotsPerReplica, or allow more GPUs in spec.gpus",
        need_text(need, &shares, split),
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn need_text_says_how_the_need_is_split() {
        let g = 1u64 << 30;
        assert_eq!(need_text(13 * g, &[13 * g], None), "13.0 GiB on 1 GPU");
        assert_eq!(
            need_text(26 * g, &[13 * g, 13 * g], None),
            "26.0 GiB on 2 GPUs (13.0 GiB each)"
        );
        assert_eq!(
            need_text(30 * g, &[20 * g, 10 * g], Some(&[2, 1])),
            "30.0 GiB on 2 GPUs (tensorSplit 2,1: 20.0 GiB + 10.0 GiB)"
        );
    }
}
