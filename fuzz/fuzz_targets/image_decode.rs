//! Image sniffing and decoding, as `detect` and `serve` run it on a file's
//! bytes: `cnnspot_image::preprocess_bytes` (format by magic bytes, header
//! checked against the pixel limit before any pixel buffer, decode to RGB,
//! optional center crop, normalisation).
//!
//! The pixel limit is `serve`'s default (4096 x 4096, the limit a server
//! facing strangers runs with): the largest legitimate allocation is then the
//! normalised tensor, 3 x 4 bytes x 2^24 = 192 MiB, under the campaign's
//! `-malloc_limit_mb=1024`. The first byte picks the crop (none, or the
//! paper's 224) so both paths of `preprocess_rgb` run.
#![no_main]

use cnnspot_image::{PreprocessOptions, MIN_SIDE};
use libfuzzer_sys::fuzz_target;

/// `cnnspot_serve::ServeConfig::default().max_pixels`.
const SERVE_MAX_PIXELS: u64 = 4096 * 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let opts = PreprocessOptions {
        crop: (sel & 1 == 1).then_some(cnnspot_image::PAPER_CROP),
        max_pixels: SERVE_MAX_PIXELS,
    };
    if let Ok(p) = cnnspot_image::preprocess_bytes(bytes, &opts) {
        // A verdict is only as good as its input: the tensor must be the
        // size it claims, within the limits, and every value finite.
        let px = u64::from(p.original_width) * u64::from(p.original_height);
        assert!(px <= SERVE_MAX_PIXELS, "decoded {px} pixels over the limit");
        assert!(p.width >= MIN_SIDE && p.height >= MIN_SIDE);
        assert_eq!(p.data.len(), 3 * p.width as usize * p.height as usize);
        assert!(p.data.iter().all(|v| v.is_finite()));
    }
});
