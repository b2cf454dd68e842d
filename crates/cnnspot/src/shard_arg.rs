//! `--shard`, defined once for every command that scores a set of images.

use std::path::{Path, PathBuf};

use anyhow::bail;
use cnnspot_eval::dataset::Dataset;
use cnnspot_eval::shard::{DatasetId, Shard, ShardSpec};

/// Which share of the images this task scores.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ShardArg {
    /// Score only shard K of N (0 <= K < N): a stable hash of each image's
    /// path (relative to the dataset root or the folder given) picks its
    /// shard, so the tasks of an array job share the images without talking
    /// to each other. `auto` reads the Slurm array (SLURM_ARRAY_TASK_ID of
    /// SLURM_ARRAY_TASK_COUNT); `auto/N` takes K from JOB_COMPLETION_INDEX
    /// (Kubernetes) or SLURM_ARRAY_TASK_ID as it is, so that a resubmitted
    /// task keeps its shard.
    #[arg(long, value_name = "K/N|auto|auto/N")]
    pub shard: Option<ShardSpec>,
}

impl ShardArg {
    /// The shard of this task, if sharded.
    pub fn resolve(&self) -> anyhow::Result<Option<Shard>> {
        Ok(match self.shard {
            Some(spec) => Some(spec.resolve()?),
            None => None,
        })
    }
}

/// The images one scoring task works on: the dataset under ROOT, narrowed
/// to `--generators` and then to this task's shard.
pub struct TaskImages {
    /// What this task scores.
    pub dataset: Dataset,
    /// The listing before sharding: every shard records it, so that a merge
    /// can tell shards of different datasets apart.
    pub whole: DatasetId,
    /// This task's shard, if sharded.
    pub shard: Option<Shard>,
    /// Where this task writes: `--out`, or its shard folder under it.
    pub out_dir: Option<PathBuf>,
}

/// Lists ROOT and narrows it as `eval` and `robustness` do.
pub fn task_images(
    root: &Path,
    generators: &[String],
    shard: &ShardArg,
    out: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<TaskImages> {
    let mut dataset = Dataset::discover(root)?;
    if !generators.is_empty() {
        dataset.select(generators)?;
    }
    let whole = DatasetId::of(&dataset);
    let shard = shard.resolve()?;
    let out_dir = match (shard, out) {
        (Some(_), None) => {
            bail!("--shard needs --out DIR: the shards are joined from DIR/shards/ by --merge DIR")
        }
        (Some(shard), Some(dir)) => Some(shard.dir(dir)),
        (None, dir) => dir.map(Path::to_path_buf),
    };
    if let Some(shard) = shard {
        dataset.retain_shard(shard);
        if !quiet {
            eprintln!(
                "shard {shard}: {} of the {} images",
                dataset.len(),
                whole.images
            );
        }
    }
    Ok(TaskImages {
        dataset,
        whole,
        shard,
        out_dir,
    })
}
