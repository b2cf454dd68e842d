//! Images inside the page as `data:` URIs: the figures the other commands
//! drew, and thumbnails of dataset images.

use std::io::Cursor;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{ImageFormat, ImageReader, RgbImage};
use serde::Serialize;

/// Figures above this are left out rather than making a page browsers
/// struggle with (the figures cnnspot draws are well under 1 MiB each).
pub const MAX_FIGURE_BYTES: u64 = 32 << 20;

/// JPEG quality of thumbnails: small files, no visible blocking at 160 px.
const THUMB_QUALITY: u8 = 85;

/// An image ready for an `<img>`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Embedded {
    /// `data:image/...;base64,...`: only base64 characters after the
    /// prefix, so the template may print it unescaped.
    pub src: String,
    pub width: u32,
    pub height: u32,
    /// Bytes of the encoded image (before base64).
    pub bytes: usize,
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", STANDARD.encode(bytes))
}

/// A PNG or JPEG figure as it is on disk (not re-encoded). Errors are one
/// sentence without the path.
pub(crate) fn figure(path: &Path) -> Result<Embedded, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_FIGURE_BYTES {
        return Err(format!(
            "{len} bytes, over the {} MiB limit for embedded figures",
            MAX_FIGURE_BYTES >> 20
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mime = match image::guess_format(&bytes) {
        Ok(ImageFormat::Png) => "image/png",
        Ok(ImageFormat::Jpeg) => "image/jpeg",
        Ok(other) => return Err(format!("a {other:?} file, not PNG or JPEG")),
        Err(_) => return Err("not a PNG or JPEG file".into()),
    };
    // The header is checked so that a truncated or empty file becomes a
    // warning here instead of a broken image in the page.
    let (width, height) = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| format!("unreadable image ({e})"))?;
    Ok(Embedded {
        src: data_uri(mime, &bytes),
        width,
        height,
        bytes: bytes.len(),
    })
}

/// The size of a thumbnail of a `w` x `h` image whose longer side is at
/// most `side` (never enlarged, aspect kept, at least 1 px).
pub(crate) fn thumb_dims(w: u32, h: u32, side: u32) -> (u32, u32) {
    let longer = w.max(h).max(1);
    if longer <= side {
        return (w.max(1), h.max(1));
    }
    let scale = f64::from(side) / f64::from(longer);
    let fit = |x: u32| ((f64::from(x) * scale).round() as u32).clamp(1, side);
    (fit(w), fit(h))
}

/// A JPEG thumbnail of the image file at `path`, decoded as the detector
/// decodes it. Errors are one sentence without the path.
pub(crate) fn thumbnail(path: &Path, side: u32, max_pixels: u64) -> Result<Embedded, String> {
    let img = cnnspot_image::load_rgb(path, max_pixels).map_err(|e| e.to_string())?;
    let (w, h) = thumb_dims(img.width(), img.height(), side);
    let small: RgbImage = if (w, h) == img.dimensions() {
        img
    } else {
        // Triangle widens its support with the scale factor, so it
        // averages over the shrunk area instead of aliasing.
        image::imageops::resize(&img, w, h, FilterType::Triangle)
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, THUMB_QUALITY)
        .encode_image(&small)
        .map_err(|e| format!("cannot encode the thumbnail ({e})"))?;
    Ok(Embedded {
        src: data_uri("image/jpeg", &jpeg),
        width: w,
        height: h,
        bytes: jpeg.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_keep_the_aspect_and_never_grow() {
        assert_eq!(thumb_dims(1024, 512, 160), (160, 80));
        assert_eq!(thumb_dims(300, 900, 160), (53, 160));
        assert_eq!(thumb_dims(100, 50, 160), (100, 50));
        assert_eq!(thumb_dims(10_000, 1, 160), (160, 1));
    }

    #[test]
    fn figures_must_be_images() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("x.png");
        std::fs::write(&bad, b"<html>not a figure</html>").unwrap();
        assert!(figure(&bad).is_err());
        let png = dir.path().join("y.png");
        RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3]))
            .save(&png)
            .unwrap();
        let f = figure(&png).unwrap();
        assert!(f.src.starts_with("data:image/png;base64,iVBOR"));
        assert_eq!((f.width, f.height), (3, 2));
    }
}
