//! The ncnn `.param`/`.bin` loader, as `cnnspot synth` uses it:
//! `cnnspot_ncnn::Net::from_bytes(param, bin)`. The input is split in two at
//! the first NUL byte: the text before is the `.param`, the bytes after are
//! the `.bin` (without a NUL, all of it is the `.param` and the `.bin` is
//! empty). A graph that loads is run once on a small input with a small
//! activation bound, so that layer construction and shape checks run too.
#![no_main]

use cnnspot_ncnn::{Mat, Net};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (param, bin) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(param) = std::str::from_utf8(param) else {
        return; // from_files refuses non-UTF-8 .param files before parsing
    };
    let Ok(net) = Net::from_bytes(param, bin) else {
        return;
    };
    let net = net.with_max_elements(1 << 16);
    let input = Mat::new(3, 16, 16, vec![0.25; 3 * 16 * 16]).expect("mat");
    if let Ok(out) = net.run(&input) {
        assert_eq!(out.data.len(), out.c * out.h * out.w);
        assert!(out.data.len() <= 1 << 16);
    }
});
