//! JPEG compression round trips, with two independent encoders.
//!
//! CNNDetection draws its encoder from `--jpg_method cv2,pil` so that the
//! detector sees more than one encoder's artefacts. (With today's wheels the
//! two are in fact the same library: opencv-python 5.0 and Pillow 13 both
//! bundle libjpeg-turbo with the same defaults, and their files are
//! byte-identical; see `tests/data/generate.py`.) cnnspot offers two
//! genuinely different implementations:
//!
//! * [`JpegEncoder::LibjpegTurbo`] ("pil"): the libjpeg-turbo code base (as
//!   built by `mozjpeg-sys`) in its libjpeg-turbo profile, configured as
//!   Pillow's `save(format='jpeg', quality=q)`: standard Annex K tables
//!   scaled by quality, 4:2:0, islow DCT, Huffman tables not optimised, no
//!   progressive scans, no trellis quantisation ([`cnnspot_image::encode_jpeg`],
//!   next to the decoder it shares its libjpeg error handling with). Its files are
//!   byte-identical to Pillow's.
//! * [`JpegEncoder::PureRust`] ("cv2" stand-in): the `jpeg-encoder` crate
//!   with its defaults: the same tables and quality scaling, but chroma at
//!   full resolution from quality 90 and, below, subsampled 4:2:0 by
//!   decimation rather than averaging; its own colour conversion and DCT.
//!   (Configured to subsample as libjpeg does, it decodes to the same pixels
//!   as libjpeg-turbo at quality 95 and differs in about 2% of samples at
//!   30: not a second family.)
//!
//! Both are decoded by [`cnnspot_image::decode_rgb`] (libjpeg-turbo's decoder
//! as Pillow runs it).

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::AugmentError;

/// Which encoder compresses a JPEG augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JpegEncoder {
    /// libjpeg-turbo configured as Pillow (the reference's `pil`).
    #[serde(alias = "pil")]
    LibjpegTurbo,
    /// The pure-Rust `jpeg-encoder` crate (stands in for the reference's `cv2`).
    #[serde(alias = "cv2")]
    PureRust,
}

impl JpegEncoder {
    /// Both encoders, in the reference's `cv2,pil` order (stand-in first).
    pub const ALL: [JpegEncoder; 2] = [JpegEncoder::PureRust, JpegEncoder::LibjpegTurbo];

    /// The name used in configurations (`libjpeg-turbo`, `pure-rust`).
    pub fn name(self) -> &'static str {
        match self {
            JpegEncoder::LibjpegTurbo => "libjpeg-turbo",
            JpegEncoder::PureRust => "pure-rust",
        }
    }

    /// Parse a name: ours, or the reference's `pil` / `cv2`.
    pub fn from_name(name: &str) -> Option<JpegEncoder> {
        match name {
            "libjpeg-turbo" | "pil" => Some(JpegEncoder::LibjpegTurbo),
            "pure-rust" | "cv2" => Some(JpegEncoder::PureRust),
            _ => None,
        }
    }
}

impl std::fmt::Display for JpegEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Compress `img` at `quality` (1..=100) with `encoder`; the JPEG file bytes.
pub fn jpeg_encode(
    img: &RgbImage,
    quality: u8,
    encoder: JpegEncoder,
) -> Result<Vec<u8>, AugmentError> {
    if !(1..=100).contains(&quality) {
        return Err(AugmentError::Jpeg(format!(
            "quality {quality} is outside 1..=100"
        )));
    }
    if img.width() == 0 || img.height() == 0 {
        return Err(AugmentError::Jpeg("cannot encode an empty image".into()));
    }
    match encoder {
        JpegEncoder::LibjpegTurbo => encode_libjpeg(img, quality),
        JpegEncoder::PureRust => encode_pure_rust(img, quality),
    }
}

/// JPEG-compress `img` and decode it again, as the reference's `pil_jpg` and
/// `cv2_jpg` do.
pub fn jpeg_roundtrip(
    img: &RgbImage,
    quality: u8,
    encoder: JpegEncoder,
) -> Result<RgbImage, AugmentError> {
    let bytes = jpeg_encode(img, quality, encoder)?;
    let pixels = u64::from(img.width()) * u64::from(img.height());
    Ok(cnnspot_image::decode_rgb(&bytes, pixels)?)
}

fn encode_pure_rust(img: &RgbImage, quality: u8) -> Result<Vec<u8>, AugmentError> {
    let too_big = |_| AugmentError::Jpeg("image over 65535 pixels on a side".into());
    let w = u16::try_from(img.width()).map_err(too_big)?;
    let h = u16::try_from(img.height()).map_err(too_big)?;
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    // Set explicitly (these are the crate's defaults) so that an upgrade
    // cannot silently change the training data. They are what makes this
    // encoder's output differ from libjpeg's beyond rounding: chroma kept at
    // full resolution from quality 90 (4:4:4, as many photo editors do), and
    // below it 4:2:0 by taking one pixel of each 2x2 block instead of
    // libjpeg's average (so chroma aliases and shifts by half a pixel).
    let sampling = if quality < 90 {
        jpeg_encoder::SamplingFactor::F_2_2
    } else {
        jpeg_encoder::SamplingFactor::F_1_1
    };
    enc.set_sampling_factor(sampling);
    enc.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Nearest);
    enc.encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| AugmentError::Jpeg(e.to_string()))?;
    Ok(out)
}

fn encode_libjpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, AugmentError> {
    cnnspot_image::encode_jpeg(img, quality).map_err(|e| match e {
        cnnspot_image::ImageError::Encode(why) => AugmentError::Jpeg(why),
        other => AugmentError::Jpeg(other.to_string()),
    })
}
