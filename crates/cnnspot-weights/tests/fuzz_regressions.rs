//! Inputs the `weights_roundtrip` fuzz target (fuzz/) found crashing,
//! replayed as it runs them: load, write with `pth_bytes`, load again, and
//! compare (value equality reads every tensor's bytes; the state dicts
//! selected from both agree). Each must end in an error or an equal copy,
//! never a panic.

use cnnspot_weights::{load_bytes, load_value_bytes, pth_bytes};

fn replay(data: &[u8]) {
    let Ok(value) = load_value_bytes(data) else {
        return;
    };
    let Ok(bytes) = pth_bytes(&value) else {
        return;
    };
    let again = load_value_bytes(&bytes).expect("the written copy loads");
    // NaN != NaN: equality of the round trip is asked only of values that
    // equal themselves.
    #[allow(clippy::eq_op)]
    if value == value {
        assert!(value == again, "the round trip changed the value");
    }
    if let Ok(a) = load_bytes(data) {
        let b = load_bytes(&bytes).expect("the written copy's state dict loads");
        assert_eq!(a.tensors.len(), b.tensors.len());
        for ((na, ta), (nb, tb)) in a.tensors.iter().zip(&b.tensors) {
            assert_eq!((na, ta.dtype, &ta.shape), (nb, tb.dtype, &tb.shape));
            assert!(ta.to_le_bytes() == tb.to_le_bytes(), "tensor {na} changed");
        }
    }
}

#[test]
fn every_crash_the_fuzzer_found_replays_without_a_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    cnnspot_testdata::replay_fuzz_regressions(&dir, replay);
}
