//! Checkpoint loading from bytes, as `detect --weights`, `eval`, `serve` and
//! `weights info` do: `cnnspot_weights::load_bytes` (the state dict) and
//! `load_value_bytes` (the whole pickled object). Covers the format sniffer,
//! the zip reader (`.pth` >= 1.6), the legacy `.pth` reader, the pickle VM
//! and safetensors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ck) = cnnspot_weights::load_bytes(data) {
        // Every tensor that loads must be a valid view of its storage:
        // reading its elements must not go out of bounds.
        for (_, t) in &ck.tensors {
            assert!(t.validate().is_ok());
            let _ = t.to_f64_vec();
        }
    }
    let _ = cnnspot_weights::load_value_bytes(data);
});
