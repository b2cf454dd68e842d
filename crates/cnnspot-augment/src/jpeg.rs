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
//!   progressive scans, no trellis quantisation. Its files are
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

use std::any::Any;
use std::os::raw::{c_int, c_ulong, c_void};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use image::RgbImage;
use mozjpeg_sys as ffi;
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

extern "C" {
    // jpeg_mem_dest's buffer comes from the C library's malloc.
    fn free(ptr: *mut c_void);
}

/// Payload of the unwind started by `error_exit`.
struct JpegFailure(String);

/// The text of the current libjpeg message.
///
/// # Safety
/// `cinfo.err` must point to an initialised `jpeg_error_mgr`.
unsafe fn current_message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    let mut buf = [0u8; 80]; // JMSG_LENGTH_MAX
    if let Some(format) = (*cinfo.err).format_message {
        // The binding types the buffer as `&[u8; 80]` although libjpeg writes
        // to it: call through a pointer-taking signature (same ABI).
        let format: unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8) =
            std::mem::transmute(format);
        format(cinfo, buf.as_mut_ptr());
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

// libjpeg's error_exit must not return: unwind to the catch_unwind around
// the calls (the C code is compiled with -fexceptions by mozjpeg-sys'
// `unwinding` feature).
unsafe extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    let message = current_message(cinfo);
    resume_unwind(Box::new(JpegFailure(message)));
}

unsafe extern "C-unwind" fn emit_message(_cinfo: &mut ffi::jpeg_common_struct, _level: c_int) {}

fn encode_libjpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, AugmentError> {
    let (width, height) = img.dimensions();
    let pixels = img.as_raw();
    let stride = width as usize * 3;
    // SAFETY: all-zero is a valid initial state for these C structs (plain
    // data, nullable pointers, Option<fn>); libjpeg initialises them. `err`,
    // `pixels` and `out_buf` outlive every libjpeg call, all of which run
    // inside catch_unwind, so error_exit's unwind never leaves this function;
    // the destination buffer is freed once, after jpeg_destroy_compress.
    unsafe {
        let mut err: Box<ffi::jpeg_error_mgr> = Box::new(std::mem::zeroed());
        ffi::jpeg_std_error(&mut err);
        err.error_exit = Some(error_exit);
        err.emit_message = Some(emit_message);
        let mut cinfo: Box<ffi::jpeg_compress_struct> = Box::new(std::mem::zeroed());
        cinfo.common.err = &mut *err;
        let mut out_buf: *mut u8 = std::ptr::null_mut();
        let mut out_len: c_ulong = 0;

        let outcome: Result<Vec<u8>, Box<dyn Any + Send>> = catch_unwind(AssertUnwindSafe(|| {
            ffi::jpeg_create_compress(&mut *cinfo);
            ffi::jpeg_mem_dest(&mut cinfo, &mut out_buf, &mut out_len);
            cinfo.image_width = width;
            cinfo.image_height = height;
            cinfo.input_components = 3;
            cinfo.in_color_space = ffi::J_COLOR_SPACE::JCS_RGB;
            // MozJPEG's own defaults (progressive, trellis quantisation,
            // optimised Huffman codes, other tables) make a different encoder;
            // this profile restores libjpeg-turbo's, which Pillow uses.
            ffi::jpeg_c_set_int_param(
                &mut cinfo,
                ffi::J_INT_PARAM::JINT_COMPRESS_PROFILE,
                ffi::JINT_COMPRESS_PROFILE_VALUE::JCP_FASTEST as c_int,
            );
            ffi::jpeg_set_defaults(&mut cinfo);
            // Pillow: jpeg_set_quality(&cinfo, quality, TRUE).
            ffi::jpeg_set_quality(&mut cinfo, c_int::from(quality), 1);
            cinfo.dct_method = ffi::J_DCT_METHOD::JDCT_ISLOW;
            cinfo.optimize_coding = 0;
            ffi::jpeg_start_compress(&mut cinfo, 1);
            while cinfo.next_scanline < height {
                let row = pixels.as_ptr().add(cinfo.next_scanline as usize * stride);
                let rows = [row];
                if ffi::jpeg_write_scanlines(&mut cinfo, rows.as_ptr(), 1) != 1 {
                    // Cannot happen with a memory destination; never spin.
                    resume_unwind(Box::new(JpegFailure("scanline not written".into())));
                }
            }
            ffi::jpeg_finish_compress(&mut cinfo);
            if out_buf.is_null() {
                return Vec::new();
            }
            std::slice::from_raw_parts(out_buf, out_len as usize).to_vec()
        }));

        ffi::jpeg_destroy_compress(&mut cinfo);
        if !out_buf.is_null() {
            free(out_buf.cast());
        }
        drop(cinfo);
        drop(err);

        match outcome {
            Ok(bytes) if bytes.is_empty() => Err(AugmentError::Jpeg("no output".into())),
            Ok(bytes) => Ok(bytes),
            Err(payload) => match payload.downcast::<JpegFailure>() {
                Ok(failure) => Err(AugmentError::Jpeg(failure.0)),
                Err(other) => resume_unwind(other),
            },
        }
    }
}
