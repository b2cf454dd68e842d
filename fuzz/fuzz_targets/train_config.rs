//! The TOML training configuration, as `cnnspot train --config FILE` reads
//! it: `TrainConfig::from_toml_file` is `toml::from_str::<TrainConfig>` on
//! the file's text (same `toml` crate, pinned by the copied Cargo.lock),
//! then `validate()`. A configuration that parses must also serialise
//! (`to_toml`, as the run saves its `config.toml`) and read back equal.
#![no_main]

use cnnspot_train::TrainConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read_to_string refuses non-UTF-8 files
    };
    let Ok(cfg) = toml::from_str::<TrainConfig>(text) else {
        return;
    };
    let _ = cfg.validate();
    let _ = cfg.run_dir();
    let saved = match cfg.to_toml() {
        Ok(s) => s,
        Err(_) => return, // e.g. a non-UTF-8 path: refused with an error
    };
    let back: TrainConfig = toml::from_str(&saved)
        .unwrap_or_else(|e| panic!("saved config.toml does not read back: {e}\n{saved}"));
    if cfg == cfg {
        assert!(back == cfg, "config changed through config.toml:\n{saved}");
    }
});
