//! GIF: the first frame, as Pillow opens it (mode `P`, or `L` when there is no
//! palette or the palette is the identity grey ramp) and converts it to RGB.
//!
//! Pillow's canvas is the logical screen, grown to contain the first frame;
//! it starts filled with the frame's transparent index (else index 0), the
//! frame's indices are pasted at its offset, and every index maps through the
//! frame's local palette (else the global one). Transparency is ignored by
//! `convert('RGB')`, and indices past the end of the palette become black.

use std::io::Cursor;
use std::num::NonZeroU64;

use image::RgbImage;

use crate::decode::{alloc_limit, check_pixels};
use crate::ImageError;

fn corrupt(err: ::gif::DecodingError) -> ImageError {
    match err {
        ::gif::DecodingError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Corrupt {
                format: "GIF",
                message: "unexpected end of data".into(),
            }
        }
        other => ImageError::Corrupt {
            format: "GIF",
            message: other.to_string(),
        },
    }
}

/// Pillow's `_is_palette_needed` is false: every entry `i` is `(i, i, i)`.
fn is_grey_ramp(palette: &[u8]) -> bool {
    palette
        .chunks(3)
        .enumerate()
        .all(|(i, c)| c.len() == 3 && c.iter().all(|&v| usize::from(v) == i))
}

/// Decode the first frame of a GIF to RGB as Pillow does.
pub(crate) fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ImageError> {
    let mut options = ::gif::DecodeOptions::new();
    options.set_color_output(::gif::ColorOutput::Indexed);
    let limit = NonZeroU64::new(alloc_limit(max_pixels)).unwrap_or(NonZeroU64::MIN);
    options.set_memory_limit(::gif::MemoryLimit::Bytes(limit));
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(corrupt)?;
    let screen = (u32::from(decoder.width()), u32::from(decoder.height()));
    check_pixels(screen.0, screen.1, max_pixels)?;
    let global = decoder.global_palette().map(<[u8]>::to_vec);

    // Header of the first frame only, so the size check comes before the
    // frame's pixels are decompressed.
    let (left, top, fw, fh, local, transparent) =
        match decoder.next_frame_info().map_err(corrupt)? {
            Some(f) => (
                u32::from(f.left),
                u32::from(f.top),
                u32::from(f.width),
                u32::from(f.height),
                f.palette.clone(),
                f.transparent,
            ),
            None => {
                return Err(ImageError::Corrupt {
                    format: "GIF",
                    message: "no image in file".into(),
                })
            }
        };
    let width = screen.0.max(left + fw);
    let height = screen.1.max(top + fh);
    check_pixels(width, height, max_pixels)?;
    let mut indices = vec![0u8; fw as usize * fh as usize];
    decoder.read_into_buffer(&mut indices).map_err(corrupt)?;
    let palette = local.or(global);

    let mut canvas = vec![transparent.unwrap_or(0); width as usize * height as usize];
    for y in 0..fh as usize {
        let dst = (top as usize + y) * width as usize + left as usize;
        canvas[dst..dst + fw as usize]
            .copy_from_slice(&indices[y * fw as usize..(y + 1) * fw as usize]);
    }

    let rgb: Vec<u8> = match palette.as_deref() {
        Some(pal) if !is_grey_ramp(pal) => canvas
            .iter()
            .flat_map(|&i| {
                let at = usize::from(i) * 3;
                pal.get(at..at + 3)
                    .map_or([0, 0, 0], |c| [c[0], c[1], c[2]])
            })
            .collect(),
        _ => canvas.iter().flat_map(|&i| [i; 3]).collect(),
    };
    Ok(RgbImage::from_raw(width, height, rgb).expect("buffer size matches"))
}
