//! JPEG decoding through libjpeg (MozJPEG 4, a libjpeg-turbo fork, compiled
//! from C by `mozjpeg-sys` without SIMD), configured as Pillow configures
//! libjpeg-turbo: islow integer IDCT, fancy upsampling, output colour space
//! chosen from the number of components (1: grey, 3: RGB, 4: CMYK). The
//! decoded samples are bit-identical to Pillow's on every JPEG we measured.
//!
//! libjpeg reports fatal errors through `error_exit`, which must not return.
//! Ours unwinds (`resume_unwind`, no panic hook) back to a `catch_unwind`
//! around the calls; the C code is compiled with `-fexceptions` (feature
//! `unwinding` of `mozjpeg-sys`) so unwinding through its frames is defined.
//! This needs `panic = "unwind"` (the default): with `panic = "abort"` a
//! corrupt JPEG would abort the process.

use std::any::Any;
use std::os::raw::{c_int, c_long, c_ulong, c_void};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use image::RgbImage;
use mozjpeg_sys as ffi;

use crate::decode::{alloc_limit, check_pixels};
use crate::ImageError;

/// Progressive files with more scans than this are refused (a few dozen is
/// normal; thousands are a known way to make decoding pathologically slow).
const MAX_SCANS: c_int = 1000;

/// Rows handed to `jpeg_read_scanlines` per call.
const ROWS_PER_CALL: usize = 16;

/// libjpeg's error manager followed by our own state. `repr(C)` with the
/// library's struct first, so the `jpeg_error_mgr*` libjpeg holds is also a
/// pointer to this struct.
#[repr(C)]
struct ErrorManager {
    base: ffi::jpeg_error_mgr,
    /// Set when the data ended early (warning `JWRN_JPEG_EOF`): libjpeg then
    /// fills the rest with grey, which Pillow refuses as "truncated".
    eof_warning: bool,
}

impl ErrorManager {
    /// A heap error manager with libjpeg's defaults and our `error_exit`
    /// (unwinds) and `emit_message` (records the EOF warning); the caller
    /// frees it with `Box::from_raw` after destroying the libjpeg object
    /// that points to it.
    fn new_raw() -> *mut ErrorManager {
        // SAFETY: all-zero is a valid state for this plain C struct
        // (integers, nullable pointers, Option<fn>), and jpeg_std_error only
        // fills in the fields of the live, exclusively owned allocation.
        unsafe {
            let err: *mut ErrorManager =
                Box::into_raw(Box::new(std::mem::zeroed::<ErrorManager>()));
            ffi::jpeg_std_error(&mut (*err).base);
            (*err).base.error_exit = Some(error_exit);
            (*err).base.emit_message = Some(emit_message);
            err
        }
    }
}

/// Payload of the unwind started by `error_exit`.
struct JpegFailure {
    code: c_int,
    message: String,
    /// The data had already run out (the error is a consequence).
    after_eof: bool,
}

/// The text of the current message (libjpeg's `format_message`).
///
/// # Safety
/// `cinfo.err` must point to an initialised `jpeg_error_mgr`.
unsafe fn current_message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    let mut buf = [0u8; 80]; // JMSG_LENGTH_MAX
    if let Some(format) = (*cinfo.err).format_message {
        // The binding types the output buffer as `&[u8; 80]`, but libjpeg
        // writes into it: call it through a pointer-taking signature (same
        // ABI) so that no shared reference is written through.
        let format: unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8) =
            std::mem::transmute(format);
        format(cinfo, buf.as_mut_ptr());
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    let code = (*cinfo.err).msg_code;
    let after_eof = (*cinfo.err.cast::<ErrorManager>()).eof_warning;
    let message = current_message(cinfo);
    resume_unwind(Box::new(JpegFailure {
        code,
        message,
        after_eof,
    }));
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    // level < 0: a warning (corrupt data that libjpeg works around); >= 0:
    // trace messages. Pillow ignores both; we only remember a premature end.
    if level < 0 {
        let err = cinfo.err.cast::<ErrorManager>();
        (*err).base.num_warnings += 1;
        if (*err).base.msg_code == ffi::JWRN_JPEG_EOF as c_int {
            (*err).eof_warning = true;
        }
    }
}

unsafe extern "C-unwind" fn progress_monitor(cinfo: &mut ffi::jpeg_common_struct) {
    if cinfo.is_decompressor != 0 {
        let dinfo = (cinfo as *mut ffi::jpeg_common_struct).cast::<ffi::jpeg_decompress_struct>();
        if (*dinfo).input_scan_number > MAX_SCANS {
            resume_unwind(Box::new(JpegFailure {
                code: -1,
                message: format!("more than {MAX_SCANS} progressive scans"),
                after_eof: false,
            }));
        }
    }
}

/// The decoded samples before conversion to RGB.
struct Raw {
    width: u32,
    height: u32,
    components: usize,
    samples: Vec<u8>,
}

/// Decode a JPEG to 8-bit RGB as `PIL.Image.open(...).convert('RGB')` does.
pub(crate) fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ImageError> {
    let raw = decode_raw(bytes, max_pixels)?;
    let Raw {
        width,
        height,
        components,
        samples,
    } = raw;
    let rgb = match components {
        3 => samples,
        1 => samples.iter().flat_map(|&v| [v; 3]).collect(),
        4 => samples
            .chunks_exact(4)
            .flat_map(|p| adobe_cmyk_to_rgb([p[0], p[1], p[2], p[3]]))
            .collect(),
        _ => unreachable!("components checked in decode_raw"),
    };
    Ok(RgbImage::from_raw(width, height, rgb).expect("buffer size matches"))
}

/// One CMYK sample as libjpeg outputs it for an Adobe (inverted) CMYK or YCCK
/// JPEG, converted as Pillow does: raw mode `CMYK;I` inverts every channel,
/// then `convert('RGB')` computes `nk - nk * c / 255` with `nk = 255 - k`
/// using its rounded integer `MULDIV255`.
fn adobe_cmyk_to_rgb(p: [u8; 4]) -> [u8; 3] {
    let nk = i32::from(p[3]); // 255 - (255 - k)
    let channel = |v: u8| {
        let c = 255 - i32::from(v);
        let t = c * nk + 128;
        let muldiv = ((t >> 8) + t) >> 8;
        (nk - muldiv).clamp(0, 255) as u8
    };
    [channel(p[0]), channel(p[1]), channel(p[2])]
}

/// Classify a libjpeg failure.
fn failure_to_error(failure: JpegFailure) -> ImageError {
    if failure.after_eof {
        return truncated();
    }
    let code = failure.code;
    let message = failure.message;
    let is = |c: ffi::J_MESSAGE_CODE| code == c as c_int;
    if is(ffi::JERR_SOF_UNSUPPORTED)
        || is(ffi::JERR_CONVERSION_NOTIMPL)
        || is(ffi::JERR_NOT_COMPILED)
        || is(ffi::JERR_ARITH_NOTIMPL)
        || is(ffi::JERR_BAD_PRECISION)
        || is(ffi::JERR_IMAGE_TOO_BIG)
    {
        ImageError::Unsupported(format!("JPEG ({message})"))
    } else if is(ffi::JERR_OUT_OF_MEMORY) || is(ffi::JERR_NO_BACKING_STORE) {
        ImageError::MemoryLimit(message)
    } else {
        ImageError::Corrupt {
            format: "JPEG",
            message,
        }
    }
}

/// Run libjpeg on `bytes`: header, pixel limit, then all scanlines.
fn decode_raw(bytes: &[u8], max_pixels: u64) -> Result<Raw, ImageError> {
    // Only where `unsigned long` is 32 bits (Windows) can this fail.
    let len = c_ulong::try_from(bytes.len())
        .map_err(|_| ImageError::Unsupported("JPEG file over 4 GiB".into()))?;
    // SAFETY: all-zero is a valid initial state for these C structs (plain
    // data and nullable pointers/Option<fn>); libjpeg initialises them.
    // `err` outlives `cinfo` (freed after jpeg_destroy_decompress), `bytes`
    // outlives the decoding, and every libjpeg call happens inside
    // catch_unwind, so error_exit's unwind never leaves this function.
    unsafe {
        let err = ErrorManager::new_raw();
        let mut progress: Box<ffi::jpeg_progress_mgr> = Box::new(std::mem::zeroed());
        progress.progress_monitor = Some(progress_monitor);
        let mut cinfo: Box<ffi::jpeg_decompress_struct> = Box::new(std::mem::zeroed());
        cinfo.common.err = err.cast::<ffi::jpeg_error_mgr>();

        let outcome: Result<Result<Raw, ImageError>, Box<dyn Any + Send>> =
            catch_unwind(AssertUnwindSafe(|| {
                ffi::jpeg_create_decompress(&mut *cinfo);
                cinfo.common.progress = &mut *progress;
                (*cinfo.common.mem).max_memory_to_use =
                    c_long::try_from(alloc_limit(max_pixels)).unwrap_or(c_long::MAX);
                ffi::jpeg_mem_src(&mut cinfo, bytes.as_ptr(), len);
                ffi::jpeg_read_header(&mut cinfo, 1);
                check_pixels(cinfo.image_width, cinfo.image_height, max_pixels)?;
                if (*err).eof_warning {
                    return Err(truncated());
                }
                let (space, components) = match cinfo.num_components {
                    1 => (ffi::J_COLOR_SPACE::JCS_GRAYSCALE, 1),
                    3 => (ffi::J_COLOR_SPACE::JCS_RGB, 3),
                    4 => (ffi::J_COLOR_SPACE::JCS_CMYK, 4),
                    n => {
                        return Err(ImageError::Unsupported(format!(
                            "JPEG with {n} colour components"
                        )))
                    }
                };
                cinfo.out_color_space = space;
                cinfo.dct_method = ffi::J_DCT_METHOD::JDCT_ISLOW;
                cinfo.do_fancy_upsampling = 1;
                ffi::jpeg_start_decompress(&mut cinfo);
                let width = cinfo.output_width;
                let height = cinfo.output_height;
                if cinfo.output_components as usize != components {
                    return Err(ImageError::Corrupt {
                        format: "JPEG",
                        message: "unexpected number of output components".into(),
                    });
                }
                let stride = width as usize * components;
                let mut samples = vec![0u8; stride * height as usize];
                while cinfo.output_scanline < height {
                    let first = cinfo.output_scanline as usize;
                    let count = ROWS_PER_CALL.min(height as usize - first);
                    let mut rows = [std::ptr::null_mut::<u8>(); ROWS_PER_CALL];
                    for (i, row) in rows.iter_mut().take(count).enumerate() {
                        *row = samples.as_mut_ptr().add((first + i) * stride);
                    }
                    let read = ffi::jpeg_read_scanlines(&mut cinfo, rows.as_mut_ptr(), count as _);
                    if read == 0 {
                        // Cannot happen with an in-memory source; never spin.
                        return Err(truncated());
                    }
                }
                // Reads up to the EOI marker, as Pillow does: like Pillow
                // ("image file is truncated"), a file that ends early is
                // refused even when only the EOI marker is missing.
                ffi::jpeg_finish_decompress(&mut cinfo);
                if (*err).eof_warning {
                    return Err(truncated());
                }
                Ok(Raw {
                    width,
                    height,
                    components,
                    samples,
                })
            }));

        ffi::jpeg_destroy_decompress(&mut cinfo);
        drop(cinfo);
        drop(progress);
        drop(Box::from_raw(err));

        match outcome {
            Ok(result) => result,
            Err(payload) => match payload.downcast::<JpegFailure>() {
                Ok(failure) => Err(failure_to_error(*failure)),
                // A bug on our side: let it continue as the panic it was.
                Err(other) => resume_unwind(other),
            },
        }
    }
}

/// Compress `img` at `quality` (1..=100) as Pillow's
/// `save(format='jpeg', quality=q)` does with its bundled libjpeg-turbo:
/// standard Annex K tables scaled by quality, 4:2:0 chroma, islow DCT,
/// Huffman tables not optimised, no progressive scans, no trellis
/// quantisation. The files are byte-identical to Pillow's.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, ImageError> {
    if !(1..=100).contains(&quality) {
        return Err(ImageError::Encode(format!(
            "quality {quality} is outside 1..=100"
        )));
    }
    let (width, height) = img.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::Encode("cannot encode an empty image".into()));
    }
    let pixels = img.as_raw();
    let stride = width as usize * 3;
    // SAFETY: all-zero is a valid initial state for these C structs (plain
    // data, nullable pointers, Option<fn>); libjpeg initialises them. `err`,
    // `pixels` and `out_buf` outlive every libjpeg call, all of which run
    // inside catch_unwind, so error_exit's unwind never leaves this function;
    // the destination buffer (malloc'ed by libjpeg) is freed once, after
    // jpeg_destroy_compress.
    unsafe {
        let err = ErrorManager::new_raw();
        let mut cinfo: Box<ffi::jpeg_compress_struct> = Box::new(std::mem::zeroed());
        cinfo.common.err = err.cast::<ffi::jpeg_error_mgr>();
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
                    resume_unwind(Box::new(JpegFailure {
                        code: -1,
                        message: "scanline not written".into(),
                        after_eof: false,
                    }));
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
        drop(Box::from_raw(err));

        match outcome {
            Ok(bytes) if bytes.is_empty() => Err(ImageError::Encode("no output".into())),
            Ok(bytes) => Ok(bytes),
            Err(payload) => match payload.downcast::<JpegFailure>() {
                Ok(failure) => Err(ImageError::Encode(failure.message)),
                Err(other) => resume_unwind(other),
            },
        }
    }
}

extern "C" {
    // jpeg_mem_dest's buffer comes from the C library's malloc.
    fn free(ptr: *mut c_void);
}

fn truncated() -> ImageError {
    ImageError::Corrupt {
        format: "JPEG",
        message: "premature end of data".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_formula_matches_pillow_samples() {
        // libjpeg output for Adobe CMYK is inverted: stored 255 - c.
        // Pillow 13.0: Image.frombytes('CMYK', (1,1), bytes([c,m,y,k])).convert('RGB')
        // (0,0,0,0) -> (255,255,255); (255,255,255,255) -> (0,0,0);
        // (100,150,200,50) -> (125,84,44)
        let inv = |c: [u8; 4]| [255 - c[0], 255 - c[1], 255 - c[2], 255 - c[3]];
        assert_eq!(adobe_cmyk_to_rgb(inv([0, 0, 0, 0])), [255, 255, 255]);
        assert_eq!(adobe_cmyk_to_rgb(inv([255, 255, 255, 255])), [0, 0, 0]);
        assert_eq!(adobe_cmyk_to_rgb(inv([100, 150, 200, 50])), [125, 84, 44]);
    }
}
