//! Sharded evaluation: N tasks of a cluster array (Slurm, a Kubernetes
//! Indexed Job) each score their own share of a dataset without talking to
//! each other, and [`merge`] joins their scores into what one unsharded run
//! would have made.
//!
//! The partition is a stable hash of each image's key (its path relative to
//! the dataset root, `/`-separated): the first eight bytes of its SHA-256,
//! big-endian, modulo N. It depends on nothing but the key, so every task,
//! on any machine and any later version of cnnspot, computes the same one.
//!
//! ```text
//! DIR/shards/<K>-of-<N>/scores.jsonl       the shard's rows (appended; a rerun resumes)
//! DIR/shards/<K>-of-<N>/scores.meta.json   settings and checkpoint
//! DIR/shards/<K>-of-<N>/shard.json         written last: the shard finished
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use cnnspot_files::layout::{self, SCORES_JSONL, SCORES_META_JSON};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::Dataset;
use crate::error::{io_err, EvalError, Result};
use crate::scores::{read_meta, read_rows, to_json, write_atomic, RunMeta, ScoreRow};

/// Version tag of `shard.json`.
pub const SHARD_FORMAT: &str = "cnnspot-shard/1";

/// Shard `index` of `count` (0-based, as Slurm's `--array=0-3` and
/// Kubernetes' completion indexes number tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    /// Which share, `0..count`.
    pub index: u32,
    /// How many shares.
    pub count: u32,
}

/// Why a shard could not be named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `K/N`, `auto` or `auto/N`.
    #[error("{0:?} is not a shard: write K/N (0 <= K < N), auto or auto/N")]
    Syntax(String),
    /// `K >= N` or `N == 0`.
    #[error("shard {index} of {count} does not exist: shards are numbered 0 to N-1, N >= 1")]
    OutOfRange {
        /// K.
        index: u64,
        /// N.
        count: u64,
    },
    /// No array task index in the environment.
    #[error(
        "no array task index in the environment (SLURM_ARRAY_TASK_ID for a Slurm array job, \
         JOB_COMPLETION_INDEX for a Kubernetes Indexed Job)"
    )]
    NoTaskIndex,
    /// A task index but no task count.
    #[error("{variable} is set but the number of tasks is not: give it as auto/N")]
    NoTaskCount {
        /// The variable that held the index.
        variable: &'static str,
    },
    /// An environment variable that is not a number.
    #[error("{variable}={value:?} is not a whole number")]
    BadVariable {
        /// The variable.
        variable: &'static str,
        /// What it held.
        value: String,
    },
}

/// A shard as given: fixed, or read from the array job's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// `K/N`.
    Fixed(Shard),
    /// `auto` (`Some(N)` for `auto/N`).
    Auto(Option<u32>),
}

impl std::str::FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<ShardSpec, ShardError> {
        let text = text.trim();
        let syntax = || ShardError::Syntax(text.to_string());
        let number = |s: &str| s.trim().parse::<u64>().map_err(|_| syntax());
        if text == "auto" {
            return Ok(ShardSpec::Auto(None));
        }
        let (left, right) = text.split_once('/').ok_or_else(syntax)?;
        let count = number(right)?;
        if left.trim() == "auto" {
            let count = u32::try_from(count)
                .ok()
                .filter(|&n| n > 0)
                .ok_or(ShardError::OutOfRange { index: 0, count })?;
            return Ok(ShardSpec::Auto(Some(count)));
        }
        Ok(ShardSpec::Fixed(Shard::new(number(left)?, count)?))
    }
}

impl ShardSpec {
    /// The shard this task is: fixed, or read through `var` (the process
    /// environment in [`ShardSpec::resolve`]).
    ///
    /// `auto`: Slurm's `SLURM_ARRAY_TASK_ID` less `SLURM_ARRAY_TASK_MIN` of
    /// `SLURM_ARRAY_TASK_COUNT`, the whole array being the partition
    /// (`--array=1-4` works too). `auto/N`: the task id itself of N, so that
    /// a resubmitted part of the array (`--array=2`) is still shard 2 of N;
    /// Kubernetes' `JOB_COMPLETION_INDEX` is read this way only (a pod does
    /// not know its Job's completions).
    pub fn resolve_with(self, var: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        let count = match self {
            ShardSpec::Fixed(shard) => return Ok(shard),
            ShardSpec::Auto(count) => count,
        };
        let read = |name: &'static str| -> Result<Option<u64>, ShardError> {
            match var(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| ShardError::BadVariable {
                        variable: name,
                        value: v,
                    }),
            }
        };
        if let Some(id) = read("SLURM_ARRAY_TASK_ID")? {
            if let Some(n) = count {
                return Shard::new(id, u64::from(n));
            }
            let min = read("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = read("SLURM_ARRAY_TASK_COUNT")?.ok_or(ShardError::NoTaskCount {
                variable: "SLURM_ARRAY_TASK_ID",
            })?;
            let index = id
                .checked_sub(min)
                .ok_or(ShardError::OutOfRange { index: id, count })?;
            return Shard::new(index, count);
        }
        if let Some(index) = read("JOB_COMPLETION_INDEX")? {
            let count = count.ok_or(ShardError::NoTaskCount {
                variable: "JOB_COMPLETION_INDEX",
            })?;
            return Shard::new(index, u64::from(count));
        }
        Err(ShardError::NoTaskIndex)
    }

    /// [`ShardSpec::resolve_with`] the process environment.
    pub fn resolve(self) -> Result<Shard, ShardError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: u64, count: u64) -> Result<Shard, ShardError> {
        match (u32::try_from(index), u32::try_from(count)) {
            (Ok(i), Ok(n)) if i < n => Ok(Shard { index: i, count: n }),
            _ => Err(ShardError::OutOfRange { index, count }),
        }
    }

    /// The shard that holds `key` in a partition into `count` shares.
    pub fn of_key(key: &str, count: u32) -> u32 {
        let digest = Sha256::digest(key.as_bytes());
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(head) % u64::from(count.max(1))) as u32
    }

    /// Whether the image stored under `key` is this shard's.
    pub fn holds(&self, key: &str) -> bool {
        Shard::of_key(key, self.count) == self.index
    }

    /// `K-of-N`, the shard's folder name.
    pub fn folder_name(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }

    /// The shard's folder in the output folder `dir`.
    pub fn dir(&self, dir: &Path) -> PathBuf {
        dir.join(layout::SHARDS_DIR).join(self.folder_name())
    }

    fn parse_folder(name: &str) -> Option<Shard> {
        let (k, n) = name.split_once("-of-")?;
        Shard::new(k.parse().ok()?, n.parse().ok()?).ok()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.folder_name())
    }
}

/// SHA-256 of the sorted keys, one per line: the identity of a set of
/// images, whatever order they were listed in.
pub fn keys_digest<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let sorted: BTreeSet<&str> = keys.into_iter().collect();
    let mut hasher = Sha256::new();
    for key in sorted {
        hasher.update(key.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the whole dataset was when a shard was cut from it; every shard of
/// one run must agree on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetId {
    /// Images over all generators.
    pub images: usize,
    /// [`keys_digest`] of all their keys.
    pub keys_sha256: String,
    /// The generators, in the order the results list them.
    pub generators: Vec<String>,
    /// Layout warnings found while walking it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl DatasetId {
    /// The identity of `dataset` (before it is cut into shards).
    pub fn of(dataset: &Dataset) -> DatasetId {
        DatasetId {
            images: dataset.len(),
            keys_sha256: keys_digest(
                dataset
                    .generators
                    .iter()
                    .flat_map(|g| &g.items)
                    .map(|i| i.key.as_str()),
            ),
            generators: dataset.generators.iter().map(|g| g.name.clone()).collect(),
            warnings: dataset
                .generators
                .iter()
                .flat_map(|g| g.warnings.iter().cloned())
                .collect(),
        }
    }
}

/// `shard.json`: written when a shard has scored all of its images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// [`SHARD_FORMAT`].
    pub format: String,
    /// Which shard.
    pub shard: Shard,
    /// The dataset it was cut from.
    pub dataset: DatasetId,
    /// This shard's images (rows in its scores, failures included).
    pub images: usize,
    /// [`keys_digest`] of their keys.
    pub keys_sha256: String,
    /// Images scored by the run that finished it (`eval`; 0 from a
    /// robustness sweep, whose points count apart).
    pub scored_now: usize,
    /// Images whose scores an earlier, interrupted run of it had made
    /// (likewise).
    pub reused: usize,
    /// Wall time of the run that finished it.
    pub wall_seconds: f64,
}

impl Dataset {
    /// Keeps only the images of `shard` (generators keep their place, with
    /// fewer or no images).
    pub fn retain_shard(&mut self, shard: Shard) {
        for g in &mut self.generators {
            g.items.retain(|i| shard.holds(&i.key));
        }
    }
}

/// Writes `shard.json` into the shard's folder `dir` (atomically, last).
pub fn write_record(dir: &Path, record: &ShardRecord) -> Result<()> {
    let path = dir.join(layout::SHARD_JSON);
    write_atomic(&path, &to_json(&path, record)?)
}

fn read_record(path: &Path) -> Result<ShardRecord> {
    let text = std::fs::read_to_string(path).map_err(io_err(path, "cannot read"))?;
    let record: ShardRecord = serde_json::from_str(&text).map_err(|e| EvalError::Json {
        path: path.to_path_buf(),
        why: format!("not a cnnspot shard record ({e})"),
    })?;
    if record.format != SHARD_FORMAT {
        return Err(EvalError::Json {
            path: path.to_path_buf(),
            why: format!("format {}, not {SHARD_FORMAT}", record.format),
        });
    }
    Ok(record)
}

/// The joined scores of every shard of a run.
#[derive(Debug, Clone)]
pub struct Merged {
    /// What the scores were made with (the same for every shard).
    pub meta: RunMeta,
    /// The dataset they cover.
    pub dataset: DatasetId,
    /// One row per image, in the order an unsharded run lists them
    /// (generators as in [`DatasetId::generators`], then by key).
    pub rows: Vec<ScoreRow>,
    /// Each shard's record, by index.
    pub records: Vec<ShardRecord>,
}

impl Merged {
    /// Images scored by the runs that finished the shards.
    pub fn scored_now(&self) -> usize {
        self.records.iter().map(|r| r.scored_now).sum()
    }

    /// Images whose scores came from interrupted runs.
    pub fn reused(&self) -> usize {
        self.records.iter().map(|r| r.reused).sum()
    }

    /// The longest shard's wall time: how long the array took with every
    /// task running at once.
    pub fn wall_seconds(&self) -> f64 {
        self.records
            .iter()
            .map(|r| r.wall_seconds)
            .fold(0.0, f64::max)
    }
}

/// Joins `dir/shards/*-of-N/` after checking that the shards are all there
/// and finished, disjoint, cut from the same dataset, made with the same
/// settings and checkpoint, and that together they hold every image of the
/// dataset once. Every problem found is listed in one
/// [`EvalError::Shards`], each naming its shard.
pub fn merge(dir: &Path) -> Result<Merged> {
    merge_at(dir, Path::new(""))
}

/// [`merge`] of the scores kept in `sub` of every shard's folder (a
/// robustness sweep keeps one set of scores per point there); `shard.json`
/// stays at the top of each shard's folder.
pub fn merge_at(dir: &Path, sub: &Path) -> Result<Merged> {
    let shards_dir = dir.join(layout::SHARDS_DIR);
    let entries = std::fs::read_dir(&shards_dir).map_err(io_err(&shards_dir, "cannot read"))?;
    let mut found: Vec<(Shard, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(&shards_dir, "cannot read"))?;
        if let Some(shard) = entry.file_name().to_str().and_then(Shard::parse_folder) {
            found.push((shard, entry.path()));
        }
    }
    found.sort();
    let fail = |problems: Vec<String>| EvalError::Shards {
        dir: dir.to_path_buf(),
        problems,
    };
    let Some(&(first, _)) = found.first() else {
        return Err(fail(vec![format!(
            "{} holds no shard folder (K-of-N)",
            shards_dir.display()
        )]));
    };
    let count = first.count;
    if let Some((other, _)) = found.iter().find(|(s, _)| s.count != count) {
        return Err(fail(vec![format!(
            "shards of two partitions are there ({first} and {other}); keep one"
        )]));
    }

    let mut problems = Vec::new();
    let mut parts: Vec<(Shard, ShardRecord, RunMeta, Vec<ScoreRow>)> = Vec::new();
    for index in 0..count {
        let shard = Shard { index, count };
        let Some((_, path)) = found.iter().find(|(s, _)| *s == shard) else {
            problems.push(format!(
                "shard {shard} is missing: run task {index} (--shard {index}/{count})"
            ));
            continue;
        };
        let scores = path.join(sub).join(SCORES_JSONL);
        let record_path = path.join(layout::SHARD_JSON);
        if !record_path.exists() {
            let so_far = if scores.exists() {
                read_rows(&scores).map(|(r, _)| r.len()).unwrap_or(0)
            } else {
                0
            };
            problems.push(format!(
                "shard {shard} did not finish ({so_far} images scored, no {}): rerun task {index} (--shard {index}/{count}); it resumes",
                layout::SHARD_JSON
            ));
            continue;
        }
        let record = read_record(&record_path)?;
        if record.shard != shard {
            problems.push(format!(
                "{} describes shard {}, not {shard}",
                record_path.display(),
                record.shard
            ));
            continue;
        }
        let meta = read_meta(&path.join(sub).join(SCORES_META_JSON))?;
        let (rows, _) = read_rows(&scores)?;
        parts.push((shard, record, meta, rows));
    }
    if let Some((shard0, record0, meta0, _)) = parts.first() {
        for (shard, record, meta, _) in &parts[1..] {
            if let Some(why) = meta.incompatibility(meta0) {
                problems.push(format!("shard {shard} was {why} (as shard {shard0} was)"));
            }
            if record.dataset != record0.dataset {
                problems.push(format!(
                    "shard {shard} was cut from another state of the dataset ({} images) than shard {shard0} ({} images): the dataset changed between tasks; rerun them all",
                    record.dataset.images, record0.dataset.images
                ));
            }
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    for (shard, record, _, rows) in &parts {
        let strays = rows.iter().filter(|r| !shard.holds(&r.path)).count();
        if strays > 0 {
            problems.push(format!(
                "shard {shard} holds {strays} rows of images that belong to other shards"
            ));
        }
        let twice = rows.iter().filter(|r| !seen.insert(r.path.clone())).count();
        if twice > 0 {
            problems.push(format!(
                "shard {shard} holds {twice} images that another shard also scored"
            ));
        }
        let digest = keys_digest(rows.iter().map(|r| r.path.as_str()));
        if rows.len() != record.images || digest != record.keys_sha256 {
            problems.push(format!(
                "shard {shard} holds {} rows but finished with {} images (its scores.jsonl holds rows of files no longer in the dataset, or lost some): delete {} and rerun task {}",
                rows.len(),
                record.images,
                layout::SHARDS_DIR.to_string() + "/" + &shard.folder_name(),
                shard.index
            ));
        }
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let Some((_, record0, meta0, _)) = parts.first() else {
        return Err(fail(vec!["no shard finished".into()]));
    };
    let (meta, dataset) = (meta0.clone(), record0.dataset.clone());
    let mut rows: Vec<ScoreRow> = Vec::with_capacity(dataset.images);
    let mut records = Vec::with_capacity(parts.len());
    for (_, record, _, part) in parts {
        rows.extend(part);
        records.push(record);
    }
    let digest = keys_digest(rows.iter().map(|r| r.path.as_str()));
    if rows.len() != dataset.images || digest != dataset.keys_sha256 {
        return Err(fail(vec![format!(
            "the shards hold {} images, the dataset they were cut from {}: rerun them all",
            rows.len(),
            dataset.images
        )]));
    }
    let place: HashMap<&str, usize> = dataset
        .generators
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    rows.sort_by(|a, b| {
        let pa = place
            .get(a.generator.as_str())
            .copied()
            .unwrap_or(usize::MAX);
        let pb = place
            .get(b.generator.as_str())
            .copied()
            .unwrap_or(usize::MAX);
        pa.cmp(&pb).then_with(|| a.path.cmp(&b.path))
    });
    Ok(Merged {
        meta,
        dataset,
        rows,
        records,
    })
}

/// Writes the merged rows as an ordinary output folder's scores
/// (`scores.jsonl` and `scores.meta.json`, each replaced atomically), so
/// that `eval --from-scores`, `report` and a later unsharded `eval --out`
/// read them as they read any run's.
pub fn write_merged_scores(dir: &Path, merged: &Merged) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir, "cannot create the folder"))?;
    let scores = dir.join(SCORES_JSONL);
    let mut bytes = Vec::with_capacity(merged.rows.len() * 160);
    for row in &merged.rows {
        serde_json::to_writer(&mut bytes, row).map_err(|e| EvalError::Json {
            path: scores.clone(),
            why: e.to_string(),
        })?;
        bytes.push(b'\n');
    }
    let meta = dir.join(SCORES_META_JSON);
    write_atomic(&meta, &to_json(&meta, &merged.meta)?)?;
    write_atomic(&scores, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_parse_and_refuse_what_does_not_exist() {
        assert_eq!(
            "2/4".parse::<ShardSpec>(),
            Ok(ShardSpec::Fixed(Shard { index: 2, count: 4 }))
        );
        assert_eq!("auto".parse::<ShardSpec>(), Ok(ShardSpec::Auto(None)));
        assert_eq!("auto/8".parse::<ShardSpec>(), Ok(ShardSpec::Auto(Some(8))));
        for bad in ["4/4", "0/0", "auto/0", "5/2"] {
            assert!(
                matches!(bad.parse::<ShardSpec>(), Err(ShardError::OutOfRange { .. })),
                "{bad}"
            );
        }
        for bad in ["", "2", "a/4", "2/b", "-1/4", "auto/"] {
            assert!(
                matches!(bad.parse::<ShardSpec>(), Err(ShardError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn auto_reads_slurm_and_kubernetes_indexes() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            ShardSpec::Auto(None).resolve_with(&slurm),
            Ok(Shard { index: 2, count: 4 })
        );
        // A resubmitted task of a 4-task array: auto/4 keeps its id.
        let again = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ]);
        assert_eq!(
            ShardSpec::Auto(Some(4)).resolve_with(&again),
            Ok(Shard { index: 2, count: 4 })
        );
        assert_eq!(
            ShardSpec::Auto(None).resolve_with(&again),
            Ok(Shard { index: 0, count: 1 })
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "5")]);
        assert_eq!(
            ShardSpec::Auto(Some(6)).resolve_with(&k8s),
            Ok(Shard { index: 5, count: 6 })
        );
        assert_eq!(
            ShardSpec::Auto(None).resolve_with(&k8s),
            Err(ShardError::NoTaskCount {
                variable: "JOB_COMPLETION_INDEX"
            })
        );
        assert_eq!(
            ShardSpec::Auto(Some(4)).resolve_with(env(&[("JOB_COMPLETION_INDEX", "4")])),
            Err(ShardError::OutOfRange { index: 4, count: 4 })
        );
        assert_eq!(
            ShardSpec::Auto(None).resolve_with(env(&[])),
            Err(ShardError::NoTaskIndex)
        );
        assert!(matches!(
            ShardSpec::Auto(None).resolve_with(env(&[("SLURM_ARRAY_TASK_ID", "x")])),
            Err(ShardError::BadVariable { .. })
        ));
        // A fixed shard ignores the environment.
        assert_eq!(
            ShardSpec::Fixed(Shard { index: 1, count: 2 }).resolve_with(&slurm),
            Ok(Shard { index: 1, count: 2 })
        );
    }

    #[test]
    fn the_partition_is_a_stable_hash_that_covers_every_key_once() {
        // Python's int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % n.
        for (key, four, seven) in [
            ("gen/0_real/0.png", 1, 1),
            ("stylegan2_ffhq_rosinality/1_fake/seed0001.png", 1, 6),
            ("a/b/1_fake/\u{e9}.jpg", 0, 1),
        ] {
            assert_eq!(Shard::of_key(key, 4), four, "{key}");
            assert_eq!(Shard::of_key(key, 7), seven, "{key}");
        }
        let keys: Vec<String> = (0..1000).map(|i| format!("gen/0_real/{i}.png")).collect();
        let mut sizes = [0usize; 4];
        for key in &keys {
            let owners: Vec<u32> = (0..4)
                .filter(|&k| Shard { index: k, count: 4 }.holds(key))
                .collect();
            assert_eq!(owners.len(), 1, "{key}");
            sizes[owners[0] as usize] += 1;
        }
        for size in sizes {
            assert!((200..300).contains(&size), "{sizes:?}");
        }
    }

    #[test]
    fn the_digest_ignores_order_and_sees_every_key() {
        let a = keys_digest(["x", "y", "z"]);
        assert_eq!(a, keys_digest(["z", "x", "y"]));
        assert_ne!(a, keys_digest(["x", "y"]));
        assert_ne!(a, keys_digest(["x", "y", "zz"]));
    }
}
