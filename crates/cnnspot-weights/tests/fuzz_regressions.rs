//! Inputs the `weights_roundtrip` fuzz target (fuzz/) found crashing,
//! replayed as it runs them: load, write with `pth_bytes`, load again, and
//! compare (value equality reads every tensor's bytes). Each must end in an
//! error or an equal copy, never a panic.

use cnnspot_weights::{load_bytes, load_value_bytes, pth_bytes};

fn replay(data: &[u8]) {
    let Ok(value) = load_value_bytes(data) else {
        return;
    };
    let Ok(bytes) = pth_bytes(&value) else {
        return;
    };
    let again = load_value_bytes(&bytes).expect("the written copy loads");
    assert!(value == again, "the round trip changed the value");
    if let Ok(a) = load_bytes(data) {
        let b = load_bytes(&bytes).expect("the written copy's state dict loads");
        for ((na, ta), (_, tb)) in a.tensors.iter().zip(&b.tensors) {
            assert!(ta.to_le_bytes() == tb.to_le_bytes(), "tensor {na} changed");
        }
    }
}

#[test]
fn every_crash_the_fuzzer_found_replays_without_a_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    cnnspot_testdata::replay_fuzz_regressions(&dir, replay);
}
