//! The ggml tensor types llama.cpp defines and how many bytes a tensor of each takes.
//!
//! Sizes are `(block size in elements, bytes per block)`, as in ggml's `type_traits` and the
//! `gguf` Python package's `GGML_QUANT_SIZES` (0.19). Ids 4, 5 (removed Q4_2/Q4_3) and 31–33
//! (removed Q4_0_4_4 …) are retired and rejected, like current llama.cpp does.

/// `(block elements, bytes per block)` for a ggml type id, or `None` when the id is unknown.
pub fn block_layout(type_id: u32) -> Option<(u64, u64)> {
    Some(match type_id {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 40),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        16 => (256, 66),  // IQ2_XXS
        17 => (256, 74),  // IQ2_XS
        18 => (256, 98),  // IQ3_XXS
        19 => (256, 50),  // IQ1_S
        20 => (32, 18),   // IQ4_NL
        21 => (256, 110), // IQ3_S
        22 => (256, 82),  // IQ2_S
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        29 => (256, 56),  // IQ1_M
        30 => (1, 2),     // BF16
        34 => (256, 54),  // TQ1_0
        35 => (256, 66),  // TQ2_0
        39 => (32, 17),   // MXFP4
        40 => (64, 36),   // NVFP4
        41 => (128, 18),  // Q1_0
        _ => return None,
    })
}

/// Names of the types, for messages and the fixture writer.
pub fn name(type_id: u32) -> Option<&'static str> {
    Some(match type_id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        40 => "NVFP4",
        41 => "Q1_0",
        _ => return None,
    })
}

/// Type ids used by the fixtures.
pub const F32: u32 = 0;
/// F16.
pub const F16: u32 = 1;
/// Q8_0.
pub const Q8_0: u32 = 8;
/// Q4_K.
pub const Q4_K: u32 = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_id_has_a_name_and_a_layout() {
        for id in 0..64 {
            assert_eq!(block_layout(id).is_some(), name(id).is_some(), "id {id}");
        }
        assert_eq!((0..64).filter(|&id| block_layout(id).is_some()).count(), 34);
    }

    #[test]
    fn retired_ids_are_unknown() {
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 42] {
            assert_eq!(block_layout(id), None, "id {id}");
        }
    }
}
