//! `dataset check`: what the files of each generator are (formats, sizes,
//! colour types, JPEG qualities and subsampling), split by real and fake,
//! and warnings where real and fake differ in a way a detector can exploit
//! without looking at the content.
//!
//! Only headers are read. How exploitable a difference is, is measured as
//! the balanced accuracy of the best rule that looks at that one attribute
//! alone (per value for categories, a threshold for the pixel count): 50%
//! means the attribute says nothing, 100% that it separates real from fake
//! perfectly. A difference is flagged above [`SHORTCUT_WARNING`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::dataset::{Dataset, Label};
use crate::jpeg;

/// Balanced accuracy above which a single-attribute shortcut is flagged:
/// the attribute alone tells real from fake in more than three cases out
/// of four.
pub const SHORTCUT_WARNING: f64 = 0.75;

/// Header facts about one image file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// Container format, from the content ("PNG", "JPEG", ...).
    pub format: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel type as stored ("RGB8", "L8", "RGBA16", ...).
    pub colour: String,
    /// For JPEG: the estimated quality.
    pub jpeg_quality: Option<jpeg::Quality>,
    /// For JPEG: chroma subsampling.
    pub subsampling: Option<String>,
}

impl FileInfo {
    /// Format with JPEG quality and subsampling: "JPEG q75 4:2:0", "PNG".
    pub fn encoding(&self) -> String {
        let mut s = self.format.clone();
        if let Some(q) = self.jpeg_quality {
            let _ = write!(s, " {q}");
        }
        if let Some(sub) = &self.subsampling {
            let _ = write!(s, " {sub}");
        }
        s
    }
}

/// Reads the header of an image file.
pub fn inspect(path: &Path) -> Result<FileInfo, String> {
    use image::ImageDecoder;
    let reader = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let format = reader
        .format()
        .ok_or_else(|| "not an image (unknown content)".to_string())?;
    let decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (width, height) = decoder.dimensions();
    let colour = format!("{:?}", decoder.color_type()).replace("Rgb", "RGB");
    let (jpeg_quality, subsampling) = if format == image::ImageFormat::Jpeg {
        let h = jpeg::read_header(path).map_err(|e| format!("bad JPEG header: {e}"))?;
        (h.quality, h.subsampling)
    } else {
        (None, None)
    };
    Ok(FileInfo {
        format: format!("{format:?}").to_uppercase(),
        width,
        height,
        colour,
        jpeg_quality,
        subsampling,
    })
}

/// Counts of one attribute's values.
pub type Counts = BTreeMap<String, usize>;

/// The files of one label of one generator.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Side {
    /// Image files.
    pub images: usize,
    /// By container format.
    pub formats: Counts,
    /// By format, JPEG quality and subsampling.
    pub encodings: Counts,
    /// By size "WxH".
    pub sizes: Counts,
    /// By pixel type.
    pub colours: Counts,
    /// Width x height of each readable file, for the threshold rule.
    #[serde(skip)]
    pub pixel_counts: Vec<u64>,
    /// Files whose header could not be read, and why.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl Side {
    fn add(&mut self, path: &Path, info: Result<FileInfo, String>) {
        self.images += 1;
        match info {
            Ok(i) => {
                *self.formats.entry(i.format.clone()).or_default() += 1;
                *self.encodings.entry(i.encoding()).or_default() += 1;
                *self
                    .sizes
                    .entry(format!("{}x{}", i.width, i.height))
                    .or_default() += 1;
                *self.colours.entry(i.colour.clone()).or_default() += 1;
                self.pixel_counts
                    .push(u64::from(i.width) * u64::from(i.height));
            }
            Err(e) => self.unreadable.push((path.to_path_buf(), e)),
        }
    }

    fn readable(&self) -> usize {
        self.images - self.unreadable.len()
    }
}

/// A difference between real and fake that a detector could use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shortcut {
    /// "file format", "JPEG quality", "image size", "pixel type".
    pub attribute: String,
    /// Balanced accuracy of the best rule on this attribute alone.
    pub balanced_accuracy: f64,
    /// The real side's values.
    pub real: String,
    /// The fake side's values.
    pub fake: String,
}

/// The check of one generator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratorCheck {
    /// Generator name.
    pub name: String,
    /// Classes with their real and fake counts (empty for one folder).
    pub classes: Vec<(String, usize, usize)>,
    /// Real images.
    pub real: Side,
    /// Fake images.
    pub fake: Side,
    /// Files in label folders that are not images by extension.
    pub ignored: usize,
    /// Exploitable differences, worst first.
    pub shortcuts: Vec<Shortcut>,
    /// Layout problems.
    pub warnings: Vec<String>,
}

/// The check of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetCheck {
    /// Its root.
    pub root: PathBuf,
    /// Per generator.
    pub generators: Vec<GeneratorCheck>,
}

/// Balanced accuracy of the best per-value rule: each value is called the
/// label it is more frequent in (relative to that label's size).
pub fn categorical_separability(real: &Counts, fake: &Counts) -> f64 {
    let (nr, nf) = (real.values().sum::<usize>(), fake.values().sum::<usize>());
    if nr == 0 || nf == 0 {
        return 0.5;
    }
    let mut keys: Vec<&String> = real.keys().chain(fake.keys()).collect();
    keys.sort();
    keys.dedup();
    let sum: f64 = keys
        .iter()
        .map(|k| {
            let p = *real.get(*k).unwrap_or(&0) as f64 / nr as f64;
            let q = *fake.get(*k).unwrap_or(&0) as f64 / nf as f64;
            p.max(q)
        })
        .sum();
    0.5 * sum
}

/// Balanced accuracy of the best threshold rule on a number ("fake above
/// t" or "fake below t").
pub fn threshold_separability(real: &[u64], fake: &[u64]) -> f64 {
    if real.is_empty() || fake.is_empty() {
        return 0.5;
    }
    let mut values: Vec<u64> = real.iter().chain(fake).copied().collect();
    values.sort_unstable();
    values.dedup();
    let (nr, nf) = (real.len() as f64, fake.len() as f64);
    let mut best: f64 = 0.5;
    for &t in &values {
        // Rule "fake when value > t".
        let tnr = real.iter().filter(|&&v| v <= t).count() as f64 / nr;
        let tpr = fake.iter().filter(|&&v| v > t).count() as f64 / nf;
        let b = 0.5 * (tnr + tpr);
        best = best.max(b).max(1.0 - b);
    }
    best
}

fn summarize(counts: &Counts, limit: usize) -> String {
    let mut items: Vec<(&String, &usize)> = counts.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = items
        .iter()
        .take(limit)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if items.len() > limit {
        let rest: usize = items[limit..].iter().map(|(_, n)| **n).sum();
        parts.push(format!("{} others {rest}", items.len() - limit));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn size_summary(side: &Side) -> String {
    if side.sizes.len() <= 3 {
        return summarize(&side.sizes, 3);
    }
    let parse = |s: &str| -> Option<(u32, u32)> {
        let (w, h) = s.split_once('x')?;
        Some((w.parse().ok()?, h.parse().ok()?))
    };
    let dims: Vec<(u32, u32)> = side.sizes.keys().filter_map(|k| parse(k)).collect();
    let (wmin, wmax) = dims
        .iter()
        .fold((u32::MAX, 0), |(a, b), d| (a.min(d.0), b.max(d.0)));
    let (hmin, hmax) = dims
        .iter()
        .fold((u32::MAX, 0), |(a, b), d| (a.min(d.1), b.max(d.1)));
    format!(
        "{} sizes, width {wmin}..{wmax}, height {hmin}..{hmax}",
        side.sizes.len()
    )
}

fn shortcuts(real: &Side, fake: &Side) -> Vec<Shortcut> {
    let mut out = Vec::new();
    if real.readable() == 0 || fake.readable() == 0 {
        return out;
    }
    let format = categorical_separability(&real.formats, &fake.formats);
    let encoding = categorical_separability(&real.encodings, &fake.encodings);
    // JPEG settings are reported only where they say more than the format.
    if encoding > format + 1e-9 {
        out.push(Shortcut {
            attribute: "JPEG quality/subsampling".into(),
            balanced_accuracy: encoding,
            real: summarize(&real.encodings, 4),
            fake: summarize(&fake.encodings, 4),
        });
    } else {
        out.push(Shortcut {
            attribute: "file format".into(),
            balanced_accuracy: format,
            real: summarize(&real.formats, 4),
            fake: summarize(&fake.formats, 4),
        });
    }
    // Exact sizes are a category only when there are few of them: with a
    // different size per image every image would be its own category.
    let few_sizes = {
        let mut all: Vec<&String> = real.sizes.keys().chain(fake.sizes.keys()).collect();
        all.sort();
        all.dedup();
        all.len() <= 12
    };
    let mut size = threshold_separability(&real.pixel_counts, &fake.pixel_counts);
    if few_sizes {
        size = size.max(categorical_separability(&real.sizes, &fake.sizes));
    }
    out.push(Shortcut {
        attribute: "image size".into(),
        balanced_accuracy: size,
        real: size_summary(real),
        fake: size_summary(fake),
    });
    out.push(Shortcut {
        attribute: "pixel type".into(),
        balanced_accuracy: categorical_separability(&real.colours, &fake.colours),
        real: summarize(&real.colours, 4),
        fake: summarize(&fake.colours, 4),
    });
    out.retain(|s| s.balanced_accuracy > SHORTCUT_WARNING);
    out.sort_by(|a, b| b.balanced_accuracy.total_cmp(&a.balanced_accuracy));
    out
}

/// Reads the header of every image of `dataset` and summarises them.
/// `on_file` is called after each file (for progress).
pub fn check_dataset(dataset: &Dataset, mut on_file: impl FnMut()) -> DatasetCheck {
    let generators = dataset
        .generators
        .iter()
        .map(|g| {
            let mut real = Side::default();
            let mut fake = Side::default();
            let mut classes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for item in &g.items {
                let info = inspect(&item.path);
                let counts = classes.entry(item.class.clone()).or_default();
                match item.label {
                    Label::Real => {
                        real.add(&item.path, info);
                        counts.0 += 1;
                    }
                    Label::Fake => {
                        fake.add(&item.path, info);
                        counts.1 += 1;
                    }
                }
                on_file();
            }
            GeneratorCheck {
                name: g.name.clone(),
                classes: classes
                    .into_iter()
                    .filter(|(c, _)| !c.is_empty())
                    .map(|(c, (r, f))| (c, r, f))
                    .collect(),
                shortcuts: shortcuts(&real, &fake),
                real,
                fake,
                ignored: g.ignored.len(),
                warnings: g.warnings.clone(),
            }
        })
        .collect();
    DatasetCheck {
        root: dataset.root.clone(),
        generators,
    }
}

impl DatasetCheck {
    /// Generators with at least one shortcut warning.
    pub fn flagged(&self) -> Vec<&str> {
        self.generators
            .iter()
            .filter(|g| !g.shortcuts.is_empty())
            .map(|g| g.name.as_str())
            .collect()
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let (nr, nf): (usize, usize) = self
            .generators
            .iter()
            .fold((0, 0), |(r, f), g| (r + g.real.images, f + g.fake.images));
        let _ = writeln!(
            out,
            "{}: {} generators, {} images ({nr} real, {nf} fake)",
            self.root.display(),
            self.generators.len(),
            nr + nf
        );
        for g in &self.generators {
            let _ = writeln!(out);
            let layout = if g.classes.is_empty() {
                String::new()
            } else {
                format!("  ({} classes)", g.classes.len())
            };
            let _ = writeln!(out, "{}{layout}", g.name);
            for (c, r, f) in &g.classes {
                let _ = writeln!(out, "  class {c}: {r} real, {f} fake");
            }
            for (label, side) in [("real", &g.real), ("fake", &g.fake)] {
                let _ = writeln!(
                    out,
                    "  {label} {:>6} images | {} | {} | {}",
                    side.images,
                    summarize(&side.encodings, 4),
                    size_summary(side),
                    summarize(&side.colours, 3)
                );
                for (p, why) in &side.unreadable {
                    let _ = writeln!(out, "    unreadable: {}: {why}", p.display());
                }
            }
            if g.ignored > 0 {
                let _ = writeln!(
                    out,
                    "  {} files without an image extension ignored",
                    g.ignored
                );
            }
            for w in &g.warnings {
                let _ = writeln!(out, "  warning: {w}");
            }
            for s in &g.shortcuts {
                let _ = writeln!(
                    out,
                    "  WARNING: real and fake differ in {}: real {}; fake {}. \
                     This alone tells them apart with {:.0}% balanced accuracy, \
                     without looking at the content.",
                    s.attribute,
                    s.real,
                    s.fake,
                    s.balanced_accuracy * 100.0
                );
            }
        }
        let flagged = self.flagged();
        let _ = writeln!(out);
        if flagged.is_empty() {
            let _ = writeln!(out, "no shortcut between real and fake found");
        } else {
            let _ = writeln!(
                out,
                "{} of {} generators have a shortcut between real and fake: {}",
                flagged.len(),
                self.generators.len(),
                flagged.join(", ")
            );
        }
        out
    }
}
