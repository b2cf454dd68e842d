//! Decoding any supported file to 8-bit RGB exactly as
//! `PIL.Image.open(p).convert('RGB')` does.

use std::error::Error as _;
use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, RgbImage};

use crate::{gif, jpeg, ImageError};

/// Bytes per pixel that the `image` decoders may need at most (RGBA, 16 bits
/// per channel), used to derive the allocation limit from the pixel limit.
const MAX_BYTES_PER_PIXEL: u64 = 8;
/// Headroom added to the allocation limit for decoder-internal buffers.
const ALLOC_SLACK: u64 = 64 << 20;

/// The allocation limit handed to the decoders for a given pixel limit.
pub(crate) fn alloc_limit(max_pixels: u64) -> u64 {
    max_pixels
        .saturating_mul(MAX_BYTES_PER_PIXEL)
        .saturating_add(ALLOC_SLACK)
}

/// Refuse `width` x `height` when it exceeds `max_pixels`.
pub(crate) fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), ImageError> {
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    Ok(())
}

/// A short human name for a format.
fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Gif => "GIF",
        ImageFormat::WebP => "WebP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Avif => "AVIF",
        ImageFormat::Ico => "ICO",
        ImageFormat::Hdr => "Radiance HDR",
        ImageFormat::OpenExr => "OpenEXR",
        ImageFormat::Pnm => "PNM",
        ImageFormat::Tga => "TGA",
        ImageFormat::Dds => "DDS",
        ImageFormat::Farbfeld => "farbfeld",
        ImageFormat::Qoi => "QOI",
        _ => "image",
    }
}

/// Map an `image` crate error to ours.
fn map_image_error(format: &'static str, err: image::ImageError) -> ImageError {
    use image::ImageError as E;
    match err {
        E::Decoding(e) => {
            let message = match e.source() {
                Some(src) => src.to_string(),
                None => "malformed data".to_string(),
            };
            ImageError::Corrupt { format, message }
        }
        E::IoError(e) => ImageError::Corrupt {
            format,
            message: if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "unexpected end of data".to_string()
            } else {
                e.to_string()
            },
        },
        E::Limits(e) => ImageError::MemoryLimit(e.to_string()),
        E::Unsupported(e) => ImageError::Unsupported(format!("{format} ({e})")),
        other => ImageError::Corrupt {
            format,
            message: other.to_string(),
        },
    }
}

/// Decode `bytes` (format detected from the content) to 8-bit RGB as PIL's
/// `Image.open(...).convert('RGB')` does. See [`crate::decode_rgb`].
pub(crate) fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::NotAnImage)?;
    let name = format_name(format);
    match format {
        ImageFormat::Jpeg => jpeg::decode_rgb(bytes, max_pixels),
        ImageFormat::Gif => gif::decode_rgb(bytes, max_pixels),
        // PNG, BMP, TIFF, WebP; other formats are refused there when this
        // build of `image` cannot read them.
        _ => decode_with_image(bytes, format, name, max_pixels),
    }
}

/// Decode with the `image` crate: header first (pixel limit), then pixels.
fn decode_with_image(
    bytes: &[u8],
    format: ImageFormat,
    name: &'static str,
    max_pixels: u64,
) -> Result<RgbImage, ImageError> {
    if !format.reading_enabled() {
        return Err(ImageError::Unsupported(name.to_string()));
    }
    // A PNG's size is in its first chunk: refuse a bomb from those bytes
    // alone, before the decoder reads on (it wants more than the header).
    if let Some((width, height)) = png_ihdr_size(bytes) {
        check_pixels(width, height, max_pixels)?;
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(alloc_limit(max_pixels));
    reader.limits(limits);
    // Reads the header only (PNG: up to the first IDAT chunk).
    let decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(name, e))?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, max_pixels)?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(name, e))?;
    let png_gray16 = format == ImageFormat::Png && png_is_gray16(bytes);
    Ok(to_rgb_like_pil(img, png_gray16))
}

/// Width and height from a PNG's IHDR chunk, when the bytes start with one.
fn png_ihdr_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || !bytes.starts_with(b"\x89PNG\r\n\x1a\n") || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}

/// Whether a PNG's IHDR declares 16-bit greyscale without alpha (colour type 0,
/// bit depth 16): PIL opens it in mode `I;16`, whose conversion to RGB clips
/// instead of scaling, also when a tRNS chunk made the decoder add alpha.
fn png_is_gray16(bytes: &[u8]) -> bool {
    // signature (8) + length (4) + "IHDR" (4) + width (4) + height (4) + depth + colour type
    bytes.len() > 25 && &bytes[12..16] == b"IHDR" && bytes[24] == 16 && bytes[25] == 0
}

/// `convert('RGB')` of what PIL would have opened, given the `image` crate's
/// decoded buffer:
/// - 8-bit L / LA / RGB / RGBA: grey replicated, alpha dropped (not composited);
/// - 16-bit RGB(A) and grey+alpha (PIL modes RGB/RGBA via `;16B` raw modes):
///   the high byte of each sample;
/// - 16-bit grey (PIL mode `I;16`): `min(v, 255)`, i.e. clipped, not scaled;
///   `gray16_clip` also applies this to a 16-bit grey PNG that gained alpha
///   from tRNS;
/// - anything else (float): the `image` crate's own conversion.
pub(crate) fn to_rgb_like_pil(img: DynamicImage, gray16_clip: bool) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let from_fn = |data: Vec<u8>| RgbImage::from_raw(w, h, data).expect("buffer size matches");
    match img {
        DynamicImage::ImageRgb8(im) => im,
        DynamicImage::ImageLuma8(im) => from_fn(im.as_raw().iter().flat_map(|&v| [v; 3]).collect()),
        DynamicImage::ImageLumaA8(im) => from_fn(
            im.as_raw()
                .chunks_exact(2)
                .flat_map(|p| [p[0]; 3])
                .collect(),
        ),
        DynamicImage::ImageRgba8(im) => from_fn(
            im.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        ),
        DynamicImage::ImageLuma16(im) => from_fn(
            im.as_raw()
                .iter()
                .flat_map(|&v| [v.min(255) as u8; 3])
                .collect(),
        ),
        DynamicImage::ImageLumaA16(im) => {
            let conv = |v: u16| {
                if gray16_clip {
                    v.min(255) as u8
                } else {
                    (v >> 8) as u8
                }
            };
            from_fn(
                im.as_raw()
                    .chunks_exact(2)
                    .flat_map(|p| [conv(p[0]); 3])
                    .collect(),
            )
        }
        DynamicImage::ImageRgb16(im) => {
            from_fn(im.as_raw().iter().map(|&v| (v >> 8) as u8).collect())
        }
        DynamicImage::ImageRgba16(im) => from_fn(
            im.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
                .collect(),
        ),
        other => other.to_rgb8(),
    }
}
