//! Per-image scores on disk: `scores.jsonl` (one JSON object per image,
//! appended and flushed as images are scored) beside `scores.meta.json`
//! (what produced them). An interrupted evaluation resumes from them, and
//! any metric can be recomputed from them without rescoring.

use cnnspot_files::layout::{SCORES_JSONL, SCORES_META_JSON};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{Item, Label};
use crate::error::{io_err, EvalError, Result};

/// Version tag of the layout of both files.
pub const SCORES_FORMAT: &str = "cnnspot-scores/1";

/// One image's result: a score, or the reason it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// Path relative to the dataset root, `/`-separated.
    pub path: String,
    /// Generator (first folder level).
    pub generator: String,
    /// Class folder(s) between generator and label; `""` when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class: String,
    /// 0 real, 1 fake.
    pub label: u8,
    /// `sigmoid(logit)`: the f32 the network gave, written as the f64 of
    /// that f32 (what the reference's `.tolist()` hands scikit-learn).
    pub probability: Option<f64>,
    /// The raw output, likewise.
    pub logit: Option<f64>,
    /// Image width before any crop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image height before any crop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Why the file has no score; it is left out of the metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ScoreRow {
    /// A scored image.
    pub fn scored(generator: &str, item: &Item, score: &cnnspot_core::Score) -> ScoreRow {
        ScoreRow {
            path: item.key.clone(),
            generator: generator.to_string(),
            class: item.class.clone(),
            label: item.label.as_u8(),
            probability: Some(f64::from(score.probability)),
            logit: Some(f64::from(score.logit)),
            width: Some(score.width),
            height: Some(score.height),
            error: None,
        }
    }

    /// An image that could not be scored.
    pub fn failed(generator: &str, item: &Item, reason: String) -> ScoreRow {
        ScoreRow {
            path: item.key.clone(),
            generator: generator.to_string(),
            class: item.class.clone(),
            label: item.label.as_u8(),
            probability: None,
            logit: None,
            width: None,
            height: None,
            error: Some(reason),
        }
    }

    /// The label, if it is 0 or 1.
    pub fn label(&self) -> Option<Label> {
        Label::from_u8(self.label)
    }

    /// The probability when the image was scored and it is a number.
    pub fn usable_probability(&self) -> Option<f64> {
        self.probability
            .filter(|p| p.is_finite() && self.error.is_none())
    }
}

/// The settings that change scores: rows made with different ones are
/// never mixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Center crop size, `None` for the whole image.
    pub crop: Option<u32>,
    /// Pixel limit above which images are refused.
    pub max_pixels: u64,
    /// Post-processing applied to each decoded image before the crop, as
    /// `cnnspot robustness` names it (`"jpeg 90 libjpeg-turbo"`,
    /// `"blur 2"`); `None` for the images as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturbation: Option<String>,
    /// The convolutions' arithmetic when not f32 (`"int8"`); `None` for
    /// f32, the reference (and what files written before the setting
    /// existed mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
}

impl Settings {
    /// How `detector` computes, as [`Settings::precision`] records it.
    pub fn precision_of(detector: &cnnspot_core::Detector) -> Option<String> {
        let p = detector.precision();
        (p != cnnspot_core::Precision::F32).then(|| p.to_string())
    }
}

/// Which weights produced the scores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointId {
    /// The weight file as given.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes: its identity.
    pub sha256: String,
    /// Architecture inferred from the tensors.
    pub arch: String,
    /// Container format.
    pub format: String,
    /// Learnable parameters.
    pub parameters: u64,
}

impl CheckpointId {
    /// The identity of the weights the detector was loaded from.
    pub fn of(detector: &cnnspot_core::Detector) -> Result<CheckpointId> {
        let info = detector.info();
        Ok(CheckpointId {
            path: info.path.clone(),
            sha256: info.sha256.clone(),
            arch: info.arch.to_string(),
            format: info.format.to_string(),
            parameters: info.parameters,
        })
    }
}

/// What `scores.meta.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// [`SCORES_FORMAT`].
    pub format: String,
    /// `cnnspot <version>` that first wrote the scores.
    pub tool: String,
    /// The dataset root, made absolute.
    pub root: PathBuf,
    /// Preprocessing settings.
    pub settings: Settings,
    /// The weights.
    pub checkpoint: CheckpointId,
}

impl RunMeta {
    /// The description of a run of this build of the tool.
    pub fn new(root: &Path, settings: Settings, checkpoint: CheckpointId) -> RunMeta {
        RunMeta {
            format: SCORES_FORMAT.to_string(),
            tool: crate::tool_version(),
            root: root.canonicalize().unwrap_or_else(|_| root.to_path_buf()),
            settings,
            checkpoint,
        }
    }

    /// Why scores described by `self` cannot be mixed with `other`'s, if so,
    /// worded as "made with <self's>, not <other's>".
    /// The tool version may differ: it does not change scores by itself.
    pub fn incompatibility(&self, other: &RunMeta) -> Option<String> {
        self.difference(other).map(|d| format!("made with {d}"))
    }

    fn difference(&self, other: &RunMeta) -> Option<String> {
        if self.format != other.format {
            return Some(format!("format {}, not {}", self.format, other.format));
        }
        if self.root != other.root {
            return Some(format!(
                "dataset {}, not {}",
                self.root.display(),
                other.root.display()
            ));
        }
        if self.settings.crop != other.settings.crop {
            let show = |c: Option<u32>| c.map_or("no crop".to_string(), |c| format!("crop {c}"));
            return Some(format!(
                "{}, not {}",
                show(self.settings.crop),
                show(other.settings.crop)
            ));
        }
        if self.settings.max_pixels != other.settings.max_pixels {
            return Some(format!(
                "max_pixels {}, not {}",
                self.settings.max_pixels, other.settings.max_pixels
            ));
        }
        if self.settings.perturbation != other.settings.perturbation {
            let show = |p: &Option<String>| p.clone().unwrap_or_else(|| "no perturbation".into());
            return Some(format!(
                "{}, not {}",
                show(&self.settings.perturbation),
                show(&other.settings.perturbation)
            ));
        }
        if self.checkpoint.sha256 != other.checkpoint.sha256 {
            return Some(format!(
                "weights {} (sha256 {}), not {} (sha256 {})",
                self.checkpoint.path.display(),
                short_hash(&self.checkpoint.sha256),
                other.checkpoint.path.display(),
                short_hash(&other.checkpoint.sha256)
            ));
        }
        None
    }
}

/// The first 12 hex digits, enough to tell checkpoints apart by eye.
pub fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// Reads a meta file.
pub fn read_meta(path: &Path) -> Result<RunMeta> {
    let text = std::fs::read_to_string(path).map_err(io_err(path, "cannot read"))?;
    serde_json::from_str(&text).map_err(|e| EvalError::Json {
        path: path.to_path_buf(),
        why: format!("not a cnnspot scores description ({e})"),
    })
}

/// Rows of a scores file, and the byte length of its complete lines.
/// A last line cut short (an interrupted write) is dropped; any other line
/// that does not parse is an error naming it. When a path appears twice,
/// the later row wins.
pub fn read_rows(path: &Path) -> Result<(Vec<ScoreRow>, u64)> {
    let file = File::open(path).map_err(io_err(path, "cannot read"))?;
    let mut reader = BufReader::new(file);
    let mut rows: Vec<ScoreRow> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut good_len = 0u64;
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(io_err(path, "cannot read"))?;
        if n == 0 {
            break;
        }
        number += 1;
        let complete = line.ends_with('\n');
        let text = line.trim();
        if text.is_empty() {
            good_len += n as u64;
            continue;
        }
        match serde_json::from_str::<ScoreRow>(text) {
            Ok(row) if row.label <= 1 => {
                // A complete row may lack its newline; the store adds one
                // before appending.
                good_len += n as u64;
                match index.get(&row.path) {
                    Some(&i) => rows[i] = row,
                    None => {
                        index.insert(row.path.clone(), rows.len());
                        rows.push(row);
                    }
                }
            }
            Ok(row) => {
                return Err(EvalError::BadScores {
                    path: path.to_path_buf(),
                    line: number,
                    why: format!("label {} is neither 0 nor 1", row.label),
                })
            }
            Err(_) if !complete => break,
            Err(e) => {
                return Err(EvalError::BadScores {
                    path: path.to_path_buf(),
                    line: number,
                    why: e.to_string(),
                })
            }
        }
    }
    Ok((rows, good_len))
}

/// An output folder's scores, open for appending.
#[derive(Debug)]
pub struct ScoreStore {
    path: PathBuf,
    file: File,
    existing: HashMap<String, ScoreRow>,
    needs_newline: bool,
}

impl ScoreStore {
    /// Opens (creating if needed) `dir/scores.jsonl` for a run described by
    /// `meta`. Rows already there are kept for reuse when they were made
    /// by a compatible run; otherwise this fails without touching them.
    pub fn open(dir: &Path, meta: &RunMeta) -> Result<ScoreStore> {
        std::fs::create_dir_all(dir).map_err(io_err(dir, "cannot create the folder"))?;
        let path = dir.join(SCORES_JSONL);
        let meta_path = dir.join(SCORES_META_JSON);
        let mut existing = HashMap::new();
        let mut good_len = 0u64;
        if meta_path.exists() {
            let old = read_meta(&meta_path)?;
            if let Some(why) = old.incompatibility(meta) {
                return Err(EvalError::Mismatch {
                    path: dir.to_path_buf(),
                    why,
                });
            }
            if path.exists() {
                let (rows, len) = read_rows(&path)?;
                good_len = len;
                existing = rows.into_iter().map(|r| (r.path.clone(), r)).collect();
            }
        } else if path.exists() && std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
            return Err(EvalError::Mismatch {
                path: dir.to_path_buf(),
                why: format!(
                    "{SCORES_JSONL} is there without {SCORES_META_JSON}, so its settings are unknown"
                ),
            });
        } else {
            write_atomic(&meta_path, &to_json(&meta_path, meta)?)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path, "cannot open"))?;
        // Drop a half-written last line left by an interrupted run.
        file.set_len(good_len)
            .map_err(io_err(&path, "cannot write"))?;
        file.seek(SeekFrom::End(0))
            .map_err(io_err(&path, "cannot write"))?;
        let needs_newline = good_len > 0 && !ends_with_newline(&path, good_len)?;
        Ok(ScoreStore {
            path,
            file,
            existing,
            needs_newline,
        })
    }

    /// Rows from earlier runs, by path.
    pub fn existing(&self) -> &HashMap<String, ScoreRow> {
        &self.existing
    }

    /// The scores file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row and flushes it to the operating system, so that an
    /// interrupt loses at most the row being written.
    pub fn append(&mut self, row: &ScoreRow) -> Result<()> {
        let mut line = Vec::with_capacity(160);
        if self.needs_newline {
            line.push(b'\n');
            self.needs_newline = false;
        }
        serde_json::to_writer(&mut line, row).map_err(|e| EvalError::Json {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .map_err(io_err(&self.path, "cannot write"))
    }
}

fn ends_with_newline(path: &Path, len: u64) -> Result<bool> {
    use std::io::Read;
    let mut f = File::open(path).map_err(io_err(path, "cannot read"))?;
    f.seek(SeekFrom::Start(len - 1))
        .map_err(io_err(path, "cannot read"))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map_err(io_err(path, "cannot read"))?;
    Ok(b[0] == b'\n')
}

/// Pretty JSON of a value, for files.
pub fn to_json<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| EvalError::Json {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes a file so that readers see the old or the new content, never a
/// part ([`cnnspot_files::write_atomic`], with the path in the error).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    cnnspot_files::write_atomic(path, bytes).map_err(io_err(path, "cannot write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_read_back_are_the_values_written() {
        // f32 logits as f64, as the rows hold them: the first is one that a
        // parser without correct rounding read back one ulp off, which made
        // a merged run differ from its shards.
        let mut s = 12345u32;
        let mut values = vec![f64::from(0.966_200_7_f32)];
        for _ in 0..20_000 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = f32::from_bits(s);
            if v.is_finite() {
                values.push(f64::from(v));
            }
        }
        assert_eq!(values[0], 0.9662007093429565);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SCORES_JSONL);
        let mut text = String::new();
        for (i, v) in values.iter().enumerate() {
            let row = ScoreRow {
                path: format!("g/0_real/{i}.png"),
                generator: "g".into(),
                class: String::new(),
                label: 0,
                probability: Some(*v),
                logit: Some(*v),
                width: None,
                height: None,
                error: None,
            };
            text.push_str(&serde_json::to_string(&row).unwrap());
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        let (rows, _) = read_rows(&path).unwrap();
        assert_eq!(rows.len(), values.len());
        for (row, v) in rows.iter().zip(&values) {
            assert_eq!(row.logit.map(f64::to_bits), Some(v.to_bits()), "{v:e}");
        }
    }
}
