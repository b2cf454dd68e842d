//! Round-trip property of the checkpoint writer: any value that
//! `load_value_bytes` reads, and that `pth_bytes` accepts (no opaque
//! objects), written back must load again to an equal value: same structure,
//! same tensors (dtype, shape, bit patterns), same state dict via
//! `load_bytes`.
#![no_main]

use cnnspot_weights::PyValue;
use libfuzzer_sys::fuzz_target;

/// Whether `v` equals itself: false when it holds a float NaN (NaN != NaN),
/// where equality of the round trip cannot be asked of `PartialEq`.
fn self_equal(v: &PyValue) -> bool {
    v == v
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = cnnspot_weights::load_value_bytes(data) else {
        return;
    };
    let Ok(bytes) = cnnspot_weights::pth_bytes(&value) else {
        return; // opaque objects, invalid views: refused before writing
    };
    let again = match cnnspot_weights::load_value_bytes(&bytes) {
        Ok(v) => v,
        Err(e) => panic!("pth_bytes wrote a checkpoint that does not load: {e}"),
    };
    if self_equal(&value) {
        assert!(value == again, "round trip changed the value");
    }
    // The state dict selected from the original and from the copy agree.
    if let Ok(a) = cnnspot_weights::load_bytes(data) {
        let b = cnnspot_weights::load_bytes(&bytes)
            .unwrap_or_else(|e| panic!("state dict of the written copy does not load: {e}"));
        assert_eq!(a.tensors.len(), b.tensors.len());
        for ((na, ta), (nb, tb)) in a.tensors.iter().zip(&b.tensors) {
            assert_eq!(na, nb);
            assert_eq!(ta.dtype, tb.dtype);
            assert_eq!(ta.shape, tb.shape);
            assert!(ta.to_le_bytes() == tb.to_le_bytes(), "tensor {na} changed");
        }
    }
});
