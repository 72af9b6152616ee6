//! `apigen-mt merge`: shard directories joined into one run directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Join the run directories of shards (`--shard I/N`) into one run directory.
#[derive(Debug, Args)]
#[command(long_about = "Join the run directories of a sharded run (`run`, `blueprints` or `trajectories`
with --shard I/N) into one run directory: the one a single process would have written.

The shards must be finished shards of the same run (same command, program version, config and
options) and cover 0..N exactly once; a missing, duplicated, foreign or unfinished shard is
refused, naming it. Phase 1 lines are committed in attempt order with deduplication and the
--tasks cut applied as an unsharded run applies them, then each kept blueprint's conversations;
stats.json and report.md are recounted from the merged files, and timings are summed per shard
(the wall time is the longest shard's). With the in-process engine, the merged record and
dataset files equal the unsharded run's byte for byte.

Example (Slurm array of 8, then one merge step):
  apigen-mt run --config run.toml --shard auto --out runs/r1/shard-$SLURM_ARRAY_TASK_ID
  apigen-mt merge runs/r1/merged runs/r1/shard-*")]
pub struct MergeArgs {
    /// The merged run directory to write (new, or empty).
    pub out: PathBuf,
    /// The shards' run directories, in any order.
    #[arg(required = true, num_args = 1..)]
    pub shards: Vec<PathBuf>,
}

pub fn run(args: MergeArgs) -> Result<()> {
    let stats = crate::dataset::merge::merge(&args.out, &args.shards)?;
    let records = &stats["dataset"]["records"];
    eprintln!(
        "merged {} shards into {}: {} dataset records",
        args.shards.len(),
        args.out.display(),
        if records.is_null() { "no".into() } else { records.to_string() }
    );
    Ok(())
}
