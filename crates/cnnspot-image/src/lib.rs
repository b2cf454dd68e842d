//! The test-time image pipeline of cnnspot, bit-compatible with the PyTorch
//! reference of CNNDetection (Wang et al., CVPR 2020):
//!
//! ```python
//! img = PIL.Image.open(path).convert('RGB')
//! img = CenterCrop(224)(img)            # optional
//! x = Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])(ToTensor()(img))
//! ```
//!
//! * **Decoding** ([`decode_rgb`], [`load_rgb`]): the format is detected from
//!   the content (magic bytes), never from the file extension. The header's
//!   dimensions are checked against a pixel limit before any pixel buffer is
//!   allocated, and the decoders also get an allocation limit.
//!   - JPEG goes through libjpeg (MozJPEG 4, derived from libjpeg-turbo,
//!     built from C by `mozjpeg-sys`) with Pillow's settings (islow IDCT,
//!     fancy upsampling): the decoded samples are identical to Pillow's.
//!   - GIF: the first frame, composed as Pillow does (logical screen, fill
//!     with the transparent index, local or global palette).
//!   - PNG, BMP, TIFF and WebP go through the `image` crate; PNG decoding is
//!     exact in any library.
//! * **Conversion to RGB** as `convert('RGB')`: grey is replicated; alpha is
//!   dropped, not composited; palettes are expanded (transparency ignored);
//!   16-bit RGB(A) and 16-bit grey+alpha keep the high byte of each sample;
//!   16-bit grey (Pillow's mode `I;16`) is *clipped* to 255, which is what
//!   Pillow does (so most 16-bit grey photos turn nearly white, in the
//!   reference too); CMYK JPEGs are read with Adobe (inverted) polarity and
//!   converted with Pillow's integer formula. No EXIF rotation is applied.
//! * **Center crop** ([`center_crop`]) with torchvision's semantics, including
//!   Python's round-half-to-even offsets and black padding of small images.
//! * **Normalisation** ([`normalize`]): `(pixel / 255 - mean) / std` in `f32`,
//!   operation for operation as torchvision, in CHW order.
//!
//! Known differences from Pillow (outside the formats of the paper's data):
//! 16-bit BMP and exotic TIFF variants are decoded by the `image` crate and
//! may differ slightly from Pillow's own decoders (lossy WebP matched
//! Pillow's libwebp 1.6 exactly on the files tried); lossless (SOF3) and
//! 12-bit JPEGs are refused as unsupported (Pillow's newer libjpeg-turbo
//! reads them); on JPEGs with damaged entropy-coded data, which both decode
//! with warnings, the concealed pixels can differ from Pillow's.
//!
//! JPEG errors unwind through libjpeg's C frames (compiled with
//! `-fexceptions`), so a build with `panic = "abort"` would abort on a
//! corrupt JPEG instead of returning an error.

#![warn(missing_docs)]
mod decode;
mod error;
mod gif;
mod jpeg;

use std::path::Path;

pub use error::ImageError;
pub use image::RgbImage;
pub use jpeg::encode_jpeg;

/// Per-channel mean of ImageNet used by the reference's `Normalize` (RGB).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];

/// Per-channel standard deviation of ImageNet used by the reference's
/// `Normalize` (RGB).
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The smallest height and width the ResNet-50 accepts (five stride-2
/// stages). Smaller results are refused with [`ImageError::TooSmall`].
pub const MIN_SIDE: u32 = 32;

/// Default pixel limit of [`PreprocessOptions`]: 2^27 = 134,217,728 pixels
/// (e.g. 11585 x 11585), far above any photograph, low enough that a
/// decompression bomb cannot exhaust memory (the RGB image then takes at most
/// 384 MiB).
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 27;

/// The crop size of the paper's tables (`--crop 224`).
pub const PAPER_CROP: u32 = 224;

/// Extensions of the image files cnnspot picks up when it walks a folder
/// (case-insensitive). Decoding itself goes by content, not by name.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "jpe", "jfif", "bmp", "gif", "tif", "tiff", "webp",
];

/// Whether a path's extension is one of [`IMAGE_EXTENSIONS`].
pub fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Options of [`preprocess_path`] and [`preprocess_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreprocessOptions {
    /// Center crop to `size` x `size` (torchvision `CenterCrop`), or `None`
    /// for the whole image (the README's "no crop" setting).
    pub crop: Option<u32>,
    /// Refuse images whose header announces more than this many pixels
    /// (width x height), before decoding them.
    pub max_pixels: u64,
}

impl Default for PreprocessOptions {
    /// No crop, [`DEFAULT_MAX_PIXELS`].
    fn default() -> Self {
        Self {
            crop: None,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// A preprocessed image: the network's input tensor for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// Normalised values in CHW order (channel-major, then rows): the
    /// `[1, 3, height, width]` NCHW tensor without its batch dimension;
    /// `3 * height * width` values.
    pub data: Vec<f32>,
    /// Height of the tensor (the crop size when cropped).
    pub height: u32,
    /// Width of the tensor (the crop size when cropped).
    pub width: u32,
    /// Width of the decoded image, before cropping.
    pub original_width: u32,
    /// Height of the decoded image, before cropping.
    pub original_height: u32,
}

impl Preprocessed {
    /// The NCHW shape `[1, 3, height, width]`.
    pub fn shape(&self) -> [usize; 4] {
        [1, 3, self.height as usize, self.width as usize]
    }
}

/// Read and decode an image file to 8-bit RGB as
/// `PIL.Image.open(path).convert('RGB')` does. The format is detected from
/// the content, not the extension. See [`decode_rgb`].
pub fn load_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path)?;
    decode_rgb(&bytes, max_pixels)
}

/// Decode an encoded image (PNG, JPEG, GIF, BMP, TIFF, WebP) to 8-bit RGB as
/// `PIL.Image.open(...).convert('RGB')` does.
///
/// Images whose header announces more than `max_pixels` pixels are refused
/// with [`ImageError::TooLarge`] before their pixels are decoded.
pub fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ImageError> {
    decode::decode_rgb(bytes, max_pixels)
}

/// Python's `round(n / 2)` for a non-negative integer `n`: halves go to the
/// even neighbour (0.5 -> 0, 1.5 -> 2, 2.5 -> 2).
fn half_round_even(n: u32) -> u32 {
    let m = n / 2;
    if n % 2 == 1 && m % 2 == 1 {
        m + 1
    } else {
        m
    }
}

/// Where a center crop of `size` starts along a side of `len` pixels, as
/// torchvision computes it: `round((len - size) / 2)` when the side is long
/// enough, otherwise minus the padding put before it (`(size - len) // 2`).
fn crop_start(len: u32, size: u32) -> i64 {
    if size > len {
        -i64::from((size - len) / 2)
    } else {
        i64::from(half_round_even(len - size))
    }
}

/// torchvision's `CenterCrop(size)` on a PIL image.
///
/// Offsets are `top = round((H - size) / 2)`, `left = round((W - size) / 2)`
/// with Python's round (halves to even). A side shorter than `size` is first
/// padded with black, `d // 2` pixels before and `(d + 1) // 2` after for a
/// shortfall `d`, independently per side.
pub fn center_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let x0 = crop_start(w, size);
    let y0 = crop_start(h, size);
    let mut out = RgbImage::new(size, size);
    let src = img.as_raw();
    let src_stride = w as usize * 3;
    // Range of output columns that fall inside the source.
    let col_lo = (-x0).clamp(0, i64::from(size)) as usize;
    let col_hi = (i64::from(w) - x0).clamp(0, i64::from(size)) as usize;
    let out_stride = size as usize * 3;
    let dst = &mut *out;
    for oy in 0..size as usize {
        let sy = oy as i64 + y0;
        if sy < 0 || sy >= i64::from(h) || col_lo >= col_hi {
            continue; // stays black
        }
        let sx = (col_lo as i64 + x0) as usize;
        let s = sy as usize * src_stride + sx * 3;
        let d = oy * out_stride + col_lo * 3;
        let n = (col_hi - col_lo) * 3;
        dst[d..d + n].copy_from_slice(&src[s..s + n]);
    }
    out
}

/// torchvision's `ToTensor()` then `Normalize(MEAN, STD)`: for every sample
/// `(v as f32 / 255 - MEAN[c]) / STD[c]`, rounded in `f32` at each step as
/// PyTorch does. Returns CHW order: all red values row by row, then green,
/// then blue.
pub fn normalize(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = w as usize * h as usize;
    // One table per channel: the same f32 operations, done 256 times.
    let table: [[f32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - MEAN[c]) / STD[c]));
    let mut data = vec![0.0f32; 3 * plane];
    let (r, rest) = data.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        r[i] = table[0][usize::from(px[0])];
        g[i] = table[1][usize::from(px[1])];
        b[i] = table[2][usize::from(px[2])];
    }
    data
}

/// Read, decode, optionally center-crop and normalise an image file; see
/// [`preprocess_bytes`].
pub fn preprocess_path(path: &Path, opts: &PreprocessOptions) -> Result<Preprocessed, ImageError> {
    let bytes = std::fs::read(path)?;
    preprocess_bytes(&bytes, opts)
}

/// Decode, optionally center-crop and normalise an encoded image: the
/// reference's `convert('RGB')`, `[CenterCrop(crop)]`, `ToTensor()`,
/// `Normalize(MEAN, STD)`.
///
/// Fails with [`ImageError::TooSmall`] when the result is under
/// [`MIN_SIDE`] pixels in either dimension (an uncropped small image, or a
/// crop size under 32).
pub fn preprocess_bytes(
    bytes: &[u8],
    opts: &PreprocessOptions,
) -> Result<Preprocessed, ImageError> {
    let img = decode_rgb(bytes, opts.max_pixels)?;
    preprocess_rgb(&img, opts.crop)
}

/// Crop (optionally) and normalise an already decoded RGB image; the steps of
/// [`preprocess_bytes`] after decoding.
pub fn preprocess_rgb(img: &RgbImage, crop: Option<u32>) -> Result<Preprocessed, ImageError> {
    let (original_width, original_height) = img.dimensions();
    let (width, height) = match crop {
        Some(size) => (size, size),
        None => (original_width, original_height),
    };
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(ImageError::TooSmall {
            width,
            height,
            min: MIN_SIDE,
        });
    }
    let data = match crop {
        Some(size) => normalize(&center_crop(img, size)),
        None => normalize(img),
    };
    Ok(Preprocessed {
        data,
        height,
        width,
        original_width,
        original_height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_round_even_matches_python() {
        // Python: [round(n / 2) for n in range(12)]
        let expected = [0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5, 6];
        for (n, e) in expected.iter().enumerate() {
            assert_eq!(half_round_even(n as u32), *e, "n = {n}");
        }
    }

    #[test]
    fn crop_start_pads_before_by_floor_half() {
        assert_eq!(crop_start(100, 224), -62);
        assert_eq!(crop_start(101, 224), -61); // d = 123: 61 before, 62 after
        assert_eq!(crop_start(224, 224), 0);
        assert_eq!(crop_start(225, 224), 0);
        assert_eq!(crop_start(227, 224), 2);
    }
}
