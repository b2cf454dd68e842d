//! Frequency analysis of real and generated images, as in Fig. 7 of Wang et
//! al. (CVPR 2020): every image is high-pass filtered (the image minus its
//! median filter), Fourier transformed, and the log magnitudes, centred on
//! the zero frequency, are averaged over the images of a class.
//! Upsampling layers of CNN generators leave periodic artifacts that show up
//! as bright dots and lines in these averages (e.g. at the Nyquist
//! frequency, the edges and corners of the centred spectrum).
//!
//! * [`median_filter`], [`median_filter_plane`]: 3x3 / 5x5 (any odd size)
//!   median filters with replicated edges;
//! * [`SpectrumOptions`], [`Spectrum2d`]: the spectrum of one image;
//! * [`generator_spectra`]: the average spectra of a generator's real and
//!   fake images, computed in parallel with bounded memory;
//! * [`render`]: colour maps, per-generator PNGs and the grid figure;
//! * [`npy`]: `.npy` (format 1.0, `<f4`, C order) writing.

#![warn(missing_docs)]
mod error;
mod median;
pub mod render;
mod spectrum;

pub use error::{AnalysisError, Result};
pub use median::{median_filter, median_filter_plane};
pub use spectrum::{
    generator_spectra, sample_evenly, Failure, GeneratorSpectra, HighPass, Spectrum2d,
    SpectrumAccumulator, SpectrumOptions, LOG_EPS, MAX_CROP,
};
