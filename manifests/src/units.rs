//! Byte counts for people, one way everywhere (status messages, refusals, orchctl tables):
//! [`gib`] for VRAM-sized amounts, [`human_bytes`] for anything from bytes to TiB.

/// GiB with one decimal, or whole MiB below a tenth of a GiB (so a small amount never reads
/// `0.0 GiB`): `12.0 GiB`, `689 MiB`, `0.0 GiB` only for zero.
pub fn gib(bytes: u64) -> String {
    // Display only: f64 keeps far more precision than one decimal needs.
    let g = bytes as f64 / f64::from(1u32 << 30);
    if bytes > 0 && g < 0.1 {
        format!("{:.0} MiB", (bytes as f64 / f64::from(1u32 << 20)).ceil())
    } else {
        format!("{g:.1} GiB")
    }
}

/// The largest fitting binary unit with one decimal: `1.5 GiB`, `12.0 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gib_shows_one_decimal_and_small_amounts_in_mib() {
        assert_eq!(gib(0), "0.0 GiB");
        assert_eq!(gib(12 << 30), "12.0 GiB");
        assert_eq!(gib(1 << 20), "1 MiB");
        assert_eq!(gib((1 << 30) + (1 << 29)), "1.5 GiB");
    }

    #[test]
    fn human_bytes_picks_the_largest_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(43_936), "42.9 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
