//! The detector: a loaded network plus the reference preprocessing, and a
//! pipeline that scores many files with decoding running beside the model.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use burn::tensor::{Device, Tensor, TensorData};
use cnnspot_image::{ImageError, PreprocessOptions, Preprocessed};

use crate::error::{Error, Result};
use crate::model::{Arch, ResNet};
use crate::weights;
use cnnspot_engine::{FastResNet, Precision, Tiling};

/// Pixels per image above which a forward pass is refused by default
/// (16.7 million, e.g. 4096x4096; the fast engine needs about 300 bytes per
/// pixel of input, so about 5 GB).
pub const DEFAULT_MAX_INFER_PIXELS: u64 = 1 << 24;

/// Which implementation of the network scores images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The inference engine of [`cnnspot_engine`]: BatchNorm folded, NHWC,
    /// AVX-512 kernels where the CPU has them. The default.
    #[default]
    Fast,
    /// The burn model of [`crate::model`], the reference and training model.
    Burn,
}

impl Engine {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Fast => "fast",
            Engine::Burn => "burn",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Engine, String> {
        match s.to_ascii_lowercase().as_str() {
            "fast" => Ok(Engine::Fast),
            "burn" => Ok(Engine::Burn),
            _ => Err(format!("unknown engine {s:?}; expected fast or burn")),
        }
    }
}

/// The loaded network, in the form the chosen engine runs.
#[derive(Debug)]
enum Route {
    Fast(Box<FastResNet>),
    Burn { net: Box<ResNet>, device: Device },
}

/// The compute device cnnspot uses by default (burn's flex CPU backend).
pub fn default_device() -> Device {
    Device::flex()
}

/// What was loaded, for reports and `--format jsonl`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// The weight file.
    pub path: PathBuf,
    /// Its container format (serialised as its name, e.g. "PyTorch zip").
    #[serde(serialize_with = "as_display")]
    pub format: cnnspot_weights::Format,
    /// Architecture inferred from its tensors (serialised as its name, e.g.
    /// "resnet50").
    #[serde(serialize_with = "as_display")]
    pub arch: Arch,
    /// What the network reads (`rgb`, `npr`, `spectrum`).
    pub input: String,
    /// Learnable parameters.
    pub parameters: u64,
    /// SHA-256 of the weight file's bytes: its identity.
    pub sha256: String,
}

fn as_display<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The score of one image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Score {
    /// Raw output of the network.
    pub logit: f32,
    /// `sigmoid(logit / temperature)`: the probability that the image is
    /// synthetic (calibrated for the built-in model; temperature 1 otherwise).
    pub probability: f32,
    /// Width of the image as decoded (before any crop).
    pub width: u32,
    /// Height of the image as decoded (before any crop).
    pub height: u32,
}

impl Score {
    /// Whether the image is called synthetic at `threshold`: its probability
    /// is above it (see [`Detector::threshold`] for the model's default).
    pub fn is_synthetic(&self, threshold: f32) -> bool {
        self.probability > threshold
    }
}

/// Logistic function, computed so that large |x| does not overflow.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// A network ready to score images.
#[derive(Debug)]
pub struct Detector {
    route: Route,
    arch: Arch,
    /// Logits are divided by this before the sigmoid (1 unless calibrated).
    temperature: f32,
    /// The probability above which an image is called synthetic by default.
    threshold: f32,
    info: ModelInfo,
    max_infer_pixels: u64,
}

impl Detector {
    /// Loads a weight file (PyTorch zip or legacy `.pth`, or safetensors),
    /// inferring the architecture from its tensors, for the fast engine.
    pub fn load(path: &Path) -> Result<Detector> {
        Self::load_with(path, Engine::Fast)
    }

    /// As [`Detector::load`], with a chosen engine (the burn one runs on
    /// [`default_device`]).
    pub fn load_with(path: &Path, engine: Engine) -> Result<Detector> {
        match engine {
            Engine::Fast => Self::load_route(path, None),
            Engine::Burn => Self::load_route(path, Some(&default_device())),
        }
    }

    /// As [`Detector::load`], with the burn engine on a chosen device.
    pub fn load_on(path: &Path, device: &Device) -> Result<Detector> {
        Self::load_route(path, Some(device))
    }

    /// cnnspot's own model, compiled into the library (see
    /// [`crate::builtin`]), with its calibrated temperature.
    pub fn builtin(engine: Engine) -> Result<Detector> {
        let path = Path::new(crate::builtin::NAME);
        let ckpt = cnnspot_weights::load_bytes(crate::builtin::WEIGHTS)?;
        let device = default_device();
        let burn_device = (engine == Engine::Burn).then_some(&device);
        let sha256 = cnnspot_files::sha256_bytes(crate::builtin::WEIGHTS);
        let mut detector = Self::from_checkpoint(ckpt, path, sha256, burn_device)?;
        let calibration = crate::builtin::calibration()?;
        detector.temperature = calibration.temperature;
        detector.threshold = calibration.threshold;
        Ok(detector)
    }

    fn load_route(path: &Path, burn_device: Option<&Device>) -> Result<Detector> {
        let ckpt = weights::read(path)?;
        let sha256 = cnnspot_files::sha256_file(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_checkpoint(ckpt, path, sha256, burn_device)
    }

    fn from_checkpoint(
        ckpt: cnnspot_weights::Checkpoint,
        path: &Path,
        sha256: String,
        burn_device: Option<&Device>,
    ) -> Result<Detector> {
        let state = weights::state_dict(&ckpt);
        let format = ckpt.format;
        // The raw tensors are a second copy of every weight: free them
        // before the engine builds its own.
        drop(ckpt);
        let model_err = |source| Error::Model {
            path: path.to_path_buf(),
            source,
        };
        crate::model::check_detector_values(&state).map_err(model_err)?;
        let (route, arch) = match burn_device {
            Some(device) => {
                let (net, arch) = ResNet::from_state_dict(&state, device).map_err(model_err)?;
                (
                    Route::Burn {
                        net: Box::new(net),
                        device: device.clone(),
                    },
                    arch,
                )
            }
            None => {
                let net = FastResNet::from_state_dict(&state).map_err(model_err)?;
                let arch = net.arch();
                (Route::Fast(Box::new(net)), arch)
            }
        };
        let input = crate::InputTransform::of_state(&state, arch)
            .name()
            .to_string();
        let parameters = state
            .iter()
            .filter(|(n, _)| n.ends_with(".weight") || n.ends_with(".bias"))
            .map(|(_, (_, v))| v.len() as u64)
            .sum();
        Ok(Detector {
            route,
            arch,
            temperature: 1.0,
            threshold: 0.5,
            max_infer_pixels: DEFAULT_MAX_INFER_PIXELS,
            info: ModelInfo {
                path: path.to_path_buf(),
                format,
                arch,
                input,
                parameters,
                sha256,
            },
        })
    }

    /// The temperature logits are divided by before the sigmoid (1 for a
    /// checkpoint without calibration).
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// The default decision threshold on [`Score::probability`]: the
    /// calibrated one for the built-in model, 0.5 otherwise.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Sets the temperature (must be positive and finite; otherwise ignored).
    pub fn set_temperature(&mut self, t: f32) {
        if t.is_finite() && t > 0.0 {
            self.temperature = t;
        }
    }

    /// The architecture of the loaded network.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// What was loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The burn network, when the detector was loaded for the burn engine
    /// ([`Detector::load_with`] and [`Engine::Burn`]); the fast engine keeps
    /// only its folded form.
    pub fn network(&self) -> Option<&ResNet> {
        match &self.route {
            Route::Burn { net, .. } => Some(net),
            Route::Fast(_) => None,
        }
    }

    /// The fast network, when loaded for the fast engine.
    pub fn fast_network(&self) -> Option<&FastResNet> {
        match &self.route {
            Route::Fast(net) => Some(net),
            Route::Burn { .. } => None,
        }
    }

    /// The arithmetic of the convolutions: f32 unless
    /// [`Detector::set_precision`] chose int8.
    pub fn precision(&self) -> Precision {
        match &self.route {
            Route::Fast(net) => net.precision(),
            Route::Burn { .. } => Precision::F32,
        }
    }

    /// Chooses the arithmetic. Int8 is offered by the fast engine only
    /// (see [`cnnspot_engine::Precision`]); f32 by both.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        match &mut self.route {
            Route::Fast(net) => {
                net.set_precision(precision);
                Ok(())
            }
            Route::Burn { .. } if precision == Precision::F32 => Ok(()),
            Route::Burn { .. } => Err(Error::Unsupported {
                engine: Engine::Burn.name(),
                what: format!("{precision} arithmetic"),
            }),
        }
    }

    /// The engine that scores images.
    pub fn engine(&self) -> Engine {
        match self.route {
            Route::Fast(_) => Engine::Fast,
            Route::Burn { .. } => Engine::Burn,
        }
    }

    /// Pixels per forward pass at most. The fast engine scores a larger
    /// image in overlapping tiles whose features are pooled as the whole
    /// image's are (the same logit up to rounding, with memory bounded by
    /// the budget); the burn engine refuses it with [`Error::TooLarge`].
    pub fn max_infer_pixels(&self) -> u64 {
        self.max_infer_pixels
    }

    /// Sets the pixel budget of one image (see [`DEFAULT_MAX_INFER_PIXELS`]).
    pub fn set_max_infer_pixels(&mut self, pixels: u64) {
        self.max_infer_pixels = pixels;
    }

    /// The error for an image that cannot be scored within the pixel
    /// budget, if it cannot: over the budget on the burn engine, or so far
    /// under it that not even one tile fits on the fast engine.
    pub fn check_size(&self, height: usize, width: usize) -> Result<()> {
        self.tiling_for(height, width).map(|_| ())
    }

    /// `None` for an image within the budget (one forward pass), the tiles
    /// of one over it on the fast engine, or the [`Error::TooLarge`] of
    /// [`Detector::check_size`].
    fn tiling_for(&self, height: usize, width: usize) -> Result<Option<Tiling>> {
        let pixels = height as u64 * width as u64;
        if pixels <= self.max_infer_pixels {
            return Ok(None);
        }
        let tiling = match &self.route {
            Route::Fast(net) => net.tiling(height, width, self.max_infer_pixels),
            Route::Burn { .. } => None,
        };
        tiling.map(Some).ok_or(Error::TooLarge {
            width,
            height,
            pixels,
            budget: self.max_infer_pixels,
        })
    }

    /// Logits for an NCHW batch given as a flat `[n, 3, h, w]` array.
    pub fn logits_nchw(&self, data: Vec<f32>, n: usize, h: usize, w: usize) -> Result<Vec<f32>> {
        if data.len() != n * 3 * h * w {
            return Err(Error::Inference(format!(
                "batch of {} values does not have shape [{n}, 3, {h}, {w}]",
                data.len()
            )));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let tiling = self.tiling_for(h, w)?;
        match &self.route {
            Route::Fast(net) => Ok(match tiling {
                Some(t) => data
                    .chunks(3 * h * w)
                    .map(|image| net.forward_tiled(image, h, w, t)[0])
                    .collect(),
                None => net.logits_nchw(&data, n, h, w),
            }),
            Route::Burn { net, device } => {
                let x: Tensor<4> = Tensor::from_data(TensorData::new(data, [n, 3, h, w]), device);
                let values = net
                    .forward(x)
                    .into_data()
                    .try_into_vec::<f32>()
                    .map_err(|e| Error::Inference(format!("{e:?}")))?;
                // One logit per image: keep the first output if the head has more.
                let per = values.len() / n;
                Ok(values.chunks(per.max(1)).map(|c| c[0]).collect())
            }
        }
    }

    /// Logits for preprocessed images of one size, in one forward pass.
    pub fn logits(&self, batch: &[&Preprocessed]) -> Result<Vec<f32>> {
        let Some(first) = batch.first() else {
            return Ok(Vec::new());
        };
        let (h, w) = (first.height as usize, first.width as usize);
        if let Some(odd) = batch
            .iter()
            .find(|p| p.height as usize != h || p.width as usize != w)
        {
            return Err(Error::MixedSizes(format!(
                "{w}x{h} and {}x{}",
                odd.width, odd.height
            )));
        }
        let mut data = Vec::with_capacity(batch.len() * 3 * h * w);
        for p in batch {
            data.extend_from_slice(&p.data);
        }
        self.logits_nchw(data, batch.len(), h, w)
    }

    /// Scores one preprocessed image.
    pub fn score(&self, image: &Preprocessed) -> Result<Score> {
        let logit = self.logits(&[image])?[0];
        Ok(to_score(logit, self.temperature, image))
    }

    /// Reads, preprocesses and scores one file.
    pub fn score_path(&self, path: &Path, opts: &PreprocessOptions) -> Result<Score> {
        let image = cnnspot_image::preprocess_path(path, opts).map_err(|source| Error::Image {
            path: path.to_path_buf(),
            source,
        })?;
        self.score(&image)
    }

    /// Scores many files, decoding on `decoders` threads while the model runs
    /// and batching images of equal size (up to `batch_size`, and up to
    /// `max_batch_pixels` pixels per batch). `on_result` is called once per
    /// input, in input order; a file that cannot be read gets its error and
    /// the rest go on.
    pub fn score_paths(
        &self,
        paths: &[PathBuf],
        opts: &PreprocessOptions,
        batching: &Batching,
        on_result: impl FnMut(usize, &Path, Result<Score>),
    ) {
        let read = |path: &Path| cnnspot_image::preprocess_path(path, opts);
        self.score_paths_with(paths, &read, batching, on_result);
    }

    /// [`Detector::score_paths`] with the reading and preprocessing of each
    /// file done by `prepare` (on the decoder threads): for example an image
    /// decoded, JPEG-compressed or blurred, then cropped and normalised.
    pub fn score_paths_with(
        &self,
        paths: &[PathBuf],
        prepare: &(dyn Fn(&Path) -> std::result::Result<Preprocessed, ImageError> + Sync),
        batching: &Batching,
        mut on_result: impl FnMut(usize, &Path, Result<Score>),
    ) {
        let next = AtomicUsize::new(0);
        let temperature = self.temperature;
        let decoders = batching.decoders.max(1).min(paths.len().max(1));
        // Bounded: decoders run at most this far ahead of the model.
        let (tx, rx) = mpsc::sync_channel::<(usize, Result<Preprocessed>)>(
            batching.batch_size.max(1) * 2 + decoders,
        );
        std::thread::scope(|scope| {
            for _ in 0..decoders {
                let tx = tx.clone();
                let next = &next;
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    let r = prepare(path).map_err(|source| Error::Image {
                        path: path.clone(),
                        source,
                    });
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);

            let mut reorder = Reorder::default();
            let mut emit = |i: usize, r: Result<Score>| {
                reorder.push(i, r, |j, r| on_result(j, &paths[j], r));
            };
            let limits = batching.limits();
            let mut groups: HashMap<(u32, u32), Vec<(usize, Preprocessed)>> = HashMap::new();
            let run = |group: Vec<(usize, Preprocessed)>,
                       emit: &mut dyn FnMut(usize, Result<Score>)| {
                let refs: Vec<&Preprocessed> = group.iter().map(|(_, p)| p).collect();
                match self.logits(&refs) {
                    Ok(logits) => {
                        for ((i, p), logit) in group.iter().zip(logits) {
                            // A NaN is never a verdict.
                            if logit.is_finite() {
                                emit(*i, Ok(to_score(logit, temperature, p)));
                            } else {
                                emit(
                                    *i,
                                    Err(Error::Inference(format!(
                                        "the network gave a non-finite logit ({logit})"
                                    ))),
                                );
                            }
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for (i, _) in &group {
                            emit(*i, Err(Error::Inference(msg.clone())));
                        }
                    }
                }
            };
            for (i, r) in rx {
                match r {
                    Err(e) => emit(i, Err(e)),
                    Ok(p) => {
                        if let Err(e) = self.check_size(p.height as usize, p.width as usize) {
                            emit(i, Err(e));
                            continue;
                        }
                        let key = (p.width, p.height);
                        let pixels = p.width as u64 * p.height as u64;
                        let group = groups.entry(key).or_default();
                        if !limits.admits(group.len(), pixels) {
                            run(std::mem::take(group), &mut emit);
                        }
                        group.push((i, p));
                        if !limits.admits(group.len(), pixels) {
                            if let Some(g) = groups.remove(&key) {
                                run(g, &mut emit);
                            }
                        }
                    }
                }
            }
            for (_, g) in groups.drain() {
                run(g, &mut emit);
            }
        });
    }
}

/// How [`Detector::score_paths`] groups work.
#[derive(Debug, Clone)]
pub struct Batching {
    /// Images per forward pass at most.
    pub batch_size: usize,
    /// Pixels per forward pass at most (bounds memory for large uncropped images).
    pub max_batch_pixels: u64,
    /// Threads decoding and preprocessing images.
    pub decoders: usize,
}

impl Batching {
    /// The batch limits of these settings.
    pub fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_images: self.batch_size,
            max_pixels: self.max_batch_pixels,
        }
    }
}

/// How large one forward pass may be: the one rule that
/// [`Detector::score_paths`] and the server's model thread follow. Only
/// images of one size share a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Images per pass at most (0 counts as 1).
    pub max_images: usize,
    /// Pixels per pass at most, unless one image alone has more.
    pub max_pixels: u64,
}

impl BatchLimits {
    /// Whether a batch of `n` images of `pixels` pixels each may take one
    /// more of them. An empty batch takes any image.
    pub fn admits(&self, n: usize, pixels: u64) -> bool {
        n == 0
            || (n < self.max_images.max(1)
                && (n as u64 + 1).saturating_mul(pixels) <= self.max_pixels)
    }
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            batch_size: 8,
            max_batch_pixels: 8 * 256 * 256,
            decoders: 1,
        }
    }
}

fn to_score(logit: f32, temperature: f32, p: &Preprocessed) -> Score {
    Score {
        logit,
        probability: sigmoid(logit / temperature),
        width: p.original_width,
        height: p.original_height,
    }
}

/// Releases results in input order although they complete out of order.
struct Reorder<T> {
    next: usize,
    waiting: BTreeMap<usize, T>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder {
            next: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<T> Reorder<T> {
    fn push(&mut self, i: usize, value: T, mut out: impl FnMut(usize, T)) {
        self.waiting.insert(i, value);
        while let Some(v) = self.waiting.remove(&self.next) {
            out(self.next, v);
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detectors_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Detector>();
    }

    #[test]
    fn engines_parse_and_print() {
        assert_eq!("fast".parse::<Engine>(), Ok(Engine::Fast));
        assert_eq!("Burn".parse::<Engine>(), Ok(Engine::Burn));
        assert!("onnx"
            .parse::<Engine>()
            .unwrap_err()
            .contains("fast or burn"));
        assert_eq!(Engine::default().to_string(), "fast");
    }

    #[test]
    fn batches_stop_at_the_image_or_pixel_limit_whichever_comes_first() {
        let limits = BatchLimits {
            max_images: 4,
            max_pixels: 3 * 100,
        };
        let grow = |pixels: u64| (0..).take_while(|&n| limits.admits(n, pixels)).count();
        assert_eq!(grow(10), 4, "image limit");
        assert_eq!(grow(100), 3, "pixel limit, reached exactly");
        assert_eq!(grow(101), 2, "pixel limit, never exceeded");
        assert_eq!(
            grow(1000),
            1,
            "one image larger than the limit still runs, alone"
        );
        let one = BatchLimits {
            max_images: 0,
            max_pixels: u64::MAX,
        };
        assert!(
            one.admits(0, u64::MAX) && !one.admits(1, 1),
            "0 images counts as 1"
        );
        let huge = BatchLimits {
            max_images: usize::MAX,
            max_pixels: u64::MAX - 1,
        };
        assert!(!huge.admits(1, u64::MAX / 2 + 1), "no overflow");
    }

    #[test]
    fn reorder_releases_in_input_order() {
        let mut r = Reorder::default();
        let mut seen = Vec::new();
        for i in [2, 0, 3, 1, 4] {
            r.push(i, i * 10, |j, v| seen.push((j, v)));
        }
        assert_eq!(seen, vec![(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);
    }

    #[test]
    fn sigmoid_is_stable_and_symmetric() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-7);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }
}
