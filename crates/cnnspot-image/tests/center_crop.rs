//! torchvision CenterCrop semantics: half-to-even offsets and black padding.

mod common;

use cnnspot_image::{center_crop, normalize, preprocess_rgb, ImageError, RgbImage, MEAN, STD};

/// The test pattern, identical to the Python used for the expected hashes:
/// `(x*7 + y*13) & 255, (x*3 + y*5 + 17) & 255, (x*y + x) & 255`.
fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            ((x * 7 + y * 13) & 255) as u8,
            ((x * 3 + y * 5 + 17) & 255) as u8,
            ((x * y + x) & 255) as u8,
        ])
    })
}

/// Output pixel (x, y) must be source pixel (x + dx, y + dy), or black
/// outside the source.
fn assert_shifted(src: &RgbImage, out: &RgbImage, dx: i64, dy: i64) {
    for (x, y, px) in out.enumerate_pixels() {
        let (sx, sy) = (i64::from(x) + dx, i64::from(y) + dy);
        let want =
            if sx >= 0 && sy >= 0 && sx < i64::from(src.width()) && sy < i64::from(src.height()) {
                *src.get_pixel(sx as u32, sy as u32)
            } else {
                image::Rgb([0, 0, 0])
            };
        assert_eq!(*px, want, "pixel ({x}, {y}) with offset ({dx}, {dy})");
    }
}

#[test]
fn offsets_use_round_half_to_even() {
    // Python 3: round((n - 224) / 2) for n = 224..=231 is 0, 0, 1, 2, 2, 2, 3, 4
    // (0.5 -> 0 and 2.5 -> 2, but 1.5 -> 2 and 3.5 -> 4).
    let expected = [0, 0, 1, 2, 2, 2, 3, 4];
    for (i, &off) in expected.iter().enumerate() {
        let n = 224 + i as u32;
        // Width varies, height fixed at 230 (offset 3), and the transpose.
        let img = pattern(n, 230);
        let out = center_crop(&img, 224);
        assert_eq!(out.dimensions(), (224, 224));
        assert_shifted(&img, &out, off, 3);
        let img = pattern(230, n);
        assert_shifted(&img, &center_crop(&img, 224), 3, off);
    }
}

#[test]
fn small_sides_are_padded_floor_half_before() {
    // 100 wide: shortfall 124 -> 62 black columns before, 62 after.
    // 300 high: offset round(76 / 2) = 38.
    let img = pattern(100, 300);
    let out = center_crop(&img, 224);
    assert_shifted(&img, &out, -62, 38);
    assert_eq!(*out.get_pixel(61, 0), image::Rgb([0, 0, 0]));
    assert_eq!(*out.get_pixel(62, 0), *img.get_pixel(0, 38));
    assert_eq!(*out.get_pixel(161, 0), *img.get_pixel(99, 38));
    assert_eq!(*out.get_pixel(162, 0), image::Rgb([0, 0, 0]));

    // Odd shortfall: 101 -> d = 123: 61 before, 62 after (asymmetric);
    // 223 -> d = 1: 0 before, 1 after.
    let img = pattern(101, 223);
    let out = center_crop(&img, 224);
    assert_shifted(&img, &out, -61, 0);
    assert_eq!(*out.get_pixel(60, 5), image::Rgb([0, 0, 0]));
    assert_eq!(*out.get_pixel(61, 5), *img.get_pixel(0, 5));
    assert_eq!(*out.get_pixel(161, 5), *img.get_pixel(100, 5));
    assert_eq!(*out.get_pixel(162, 5), image::Rgb([0, 0, 0]));
    assert_eq!(*out.get_pixel(50 + 61, 222), *img.get_pixel(50, 222));
    assert_eq!(*out.get_pixel(50 + 61, 223), image::Rgb([0, 0, 0]));

    // Smaller than the crop in both dimensions.
    let img = pattern(3, 6);
    assert_shifted(&img, &center_crop(&img, 8), -2, -1);
}

#[test]
fn crops_match_torchvision_reimplementation() {
    // (width, height, crop, FNV-1a 64 of the cropped HWC bytes), computed once
    // with torchvision 0.29's F.center_crop PIL code path run on Pillow 13.0
    // (ImageOps.expand for the padding, Image.crop for the crop).
    let cases: [(u32, u32, u32, u64); 12] = [
        (224, 224, 224, 0x84f51898452109e5),
        (225, 225, 224, 0x84f51898452109e5),
        (226, 227, 224, 0x08ad7d5f52b448e5),
        (227, 226, 224, 0x5311b0e46ae3cee5),
        (229, 231, 224, 0x8856d412adb6cd65),
        (300, 100, 224, 0xaf79c0cafc3fcd05),
        (100, 300, 224, 0xfff9607162fb6a45),
        (101, 223, 224, 0x0cc4c90e0a544214),
        (5, 3, 8, 0x63012262b506d444),
        (3, 6, 8, 0x931c45cd91990bea),
        (40, 33, 32, 0xec5e2135253539e5),
        (500, 375, 224, 0x043f940bd4ee6be5),
    ];
    for (w, h, c, want) in cases {
        let out = center_crop(&pattern(w, h), c);
        assert_eq!(out.dimensions(), (c, c));
        assert_eq!(common::fnv1a64(out.as_raw()), want, "{w}x{h} -> {c}");
    }
}

#[test]
fn padding_is_black_before_normalisation() {
    let img = pattern(100, 300);
    let pre = preprocess_rgb(&img, Some(224)).unwrap();
    assert_eq!((pre.width, pre.height), (224, 224));
    assert_eq!((pre.original_width, pre.original_height), (100, 300));
    let plane = 224 * 224;
    for c in 0..3 {
        // Column 0 is padding: (0/255 - mean) / std.
        let pad = (0.0f32 - MEAN[c]) / STD[c];
        assert_eq!(pre.data[c * plane], pad);
        assert_eq!(pre.data[c * plane + 223], pad);
    }
    assert_eq!(pre.data, normalize(&center_crop(&img, 224)));
}

#[test]
fn normalisation_is_torchvision_float32() {
    // ToTensor: float32 v / 255; Normalize: sub then div, all in float32.
    let img = RgbImage::from_fn(2, 1, |x, _| {
        if x == 0 {
            image::Rgb([0, 128, 255])
        } else {
            image::Rgb([1, 2, 3])
        }
    });
    let v = normalize(&img);
    assert_eq!(v.len(), 6);
    let f = |p: u8, c: usize| (f32::from(p) / 255.0 - MEAN[c]) / STD[c];
    assert_eq!(
        v,
        vec![f(0, 0), f(1, 0), f(128, 1), f(2, 1), f(255, 2), f(3, 2)]
    );
    // NumPy float32 (same IEEE operations as PyTorch's CPU kernels):
    // (f32(0)/f32(255) - f32(0.485))/f32(0.229) = -2.117904,
    // (f32(255)/f32(255) - f32(0.406))/f32(0.225) = 2.64
    assert_eq!(v[0], -2.117_904);
    assert_eq!(v[4], 2.64);
}

#[test]
fn uncropped_images_under_32_pixels_are_refused() {
    let img = pattern(31, 300);
    match preprocess_rgb(&img, None) {
        Err(ImageError::TooSmall {
            width: 31,
            height: 300,
            min: 32,
        }) => {}
        other => panic!("expected TooSmall, got {other:?}"),
    }
    assert!(preprocess_rgb(&pattern(32, 32), None).is_ok());
    // A crop pads small images, so they are fine with a crop...
    assert!(preprocess_rgb(&pattern(10, 10), Some(224)).is_ok());
    // ...but a crop size under 32 is not.
    assert!(matches!(
        preprocess_rgb(&pattern(100, 100), Some(16)),
        Err(ImageError::TooSmall { .. })
    ));
}
