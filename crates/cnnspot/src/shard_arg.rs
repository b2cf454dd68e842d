//! `--shard`, defined once for every command that scores a set of images.

use cnnspot_eval::shard::{Shard, ShardSpec};

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
