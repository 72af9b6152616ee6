//! `merge`: the run directories of N shards joined into the one an unsharded run writes.
//!
//! A shard does every attempt of its groups and deduplicates nothing (see [`crate::shard`]), so
//! its lines are exactly the unsharded run's lines for those attempts, before the two decisions
//! that need the whole run: deduplication and the `--tasks` cut. The merge walks all shards'
//! Phase 1 lines in attempt order and takes both decisions as the run's own commit does (with
//! the same code, [`blueprint_run::deduplicate`] and [`blueprint_run::Stats::count`]); then it
//! commits, blueprint by kept blueprint, the conversations a shard had for it. Every line goes
//! through the same [`RunDir`] writers a run uses, so with the in-process engine the merged
//! record and dataset files equal the unsharded run's byte for byte. `stats.json` is recounted
//! from the merged lines; its `timing` keeps each shard's and adds them up.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::jsonl::read_values;
use super::manifest::Manifest;
use super::rundir::{RunDir, BLUEPRINTS, BLUEPRINTS_REJECTED, HELDOUT, RESULTS, STATS, TRACE, TRAJECTORIES, TRAJECTORIES_REJECTED};
use super::stats;
use crate::blueprint::run::{self as blueprint_run, Progress as BlueprintProgress, Sink as _};
use crate::config::{first_difference, Settings};
use crate::shard::Shard;
use crate::trajectory::runner::{AttemptRecord, Progress as TrajectoryProgress};
use crate::trajectory::Task;

/// One shard's directory, read.
struct ShardDir {
    dir: PathBuf,
    manifest: Manifest,
    shard: Shard,
}

impl ShardDir {
    fn name(&self) -> String {
        format!("{} (shard {})", self.dir.display(), self.shard)
    }

    fn lines(&self, file: &str) -> Result<Vec<Value>> {
        let path = self.dir.join(file);
        match path.exists() {
            true => read_values(&path),
            false => Ok(Vec::new()),
        }
    }

    fn records(&self, file: &str) -> Result<Vec<AttemptRecord>> {
        self.lines(file)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_value(v)
                    .with_context(|| format!("{}: line {} of {file} is not an attempt record", self.dir.display(), i + 1))
            })
            .collect()
    }
}

/// Reads and checks the shard directories: each is a finished shard of the same run (command,
/// program version, config hash and options), and together they are shards 0..N exactly once.
fn read_shards(dirs: &[PathBuf]) -> Result<Vec<ShardDir>> {
    if dirs.is_empty() {
        bail!("merge needs the shard directories to merge");
    }
    let mut shards = Vec::new();
    for dir in dirs {
        let manifest =
            Manifest::read(dir)?.with_context(|| format!("{} is not a run directory: it has no manifest.json", dir.display()))?;
        let shard = match manifest.options.get("shard") {
            Some(Value::String(text)) => text.parse::<Shard>().with_context(|| format!("{}: manifest option shard", dir.display()))?,
            _ => bail!("{} is not a shard: its run was not started with --shard", dir.display()),
        };
        if !manifest.progress.complete {
            bail!("{} (shard {shard}) is unfinished: re-run its command to finish it, then merge", dir.display());
        }
        shards.push(ShardDir { dir: dir.clone(), manifest, shard });
    }
    let first = &shards[0];
    for other in &shards[1..] {
        let (a, b) = (&first.manifest, &other.manifest);
        let differs = |what: String| anyhow::anyhow!("{} and {} are shards of different runs: {what}", first.name(), other.name());
        if a.command != b.command {
            return Err(differs(format!("commands `{}` and `{}`", a.command, b.command)));
        }
        if a.version != b.version {
            return Err(differs(format!("program versions {} and {}", a.version, b.version)));
        }
        if a.config_hash != b.config_hash {
            let key = first_difference(&a.config, &b.config).unwrap_or_else(|| "(the hash)".into());
            return Err(differs(format!("their configs differ at `{key}`")));
        }
        let strip = |o: &Value| {
            let mut o = o.clone();
            if let Some(map) = o.as_object_mut() {
                map.remove("shard");
            }
            o
        };
        if let Some(key) = first_difference(&strip(&a.options), &strip(&b.options)) {
            return Err(differs(format!("option `{key}` differs")));
        }
        if other.shard.count != first.shard.count {
            return Err(differs(format!("one is split into {} shards and the other into {}", first.shard.count, other.shard.count)));
        }
    }
    let count = first.shard.count;
    let mut by_index: Vec<Option<&ShardDir>> = vec![None; count];
    for shard in &shards {
        if let Some(seen) = by_index[shard.shard.index] {
            bail!("{} and {} are both shard {}", seen.dir.display(), shard.dir.display(), shard.shard);
        }
        by_index[shard.shard.index] = Some(shard);
    }
    if let Some(missing) = by_index.iter().position(Option::is_none) {
        bail!("shard {missing}/{count} is missing: merge needs all {count} shards");
    }
    shards.sort_by_key(|s| s.shard.index);
    Ok(shards)
}

/// Merges `shards` into `out` (which must not hold a run yet) and returns the merged stats.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Result<Value> {
    let shards = read_shards(dirs)?;
    let first = &shards[0].manifest;
    let settings: Settings = serde_json::from_value(first.config.clone()).context("the shards' config is not one this version can read")?;
    if Manifest::read(out)?.is_some() {
        bail!("{} already holds a run; merge into a new directory", out.display());
    }
    let mut options = first.options.clone();
    if let Some(map) = options.as_object_mut() {
        map.remove("shard");
        map.insert("merged_from".into(), json!(shards.iter().map(|s| s.dir.display().to_string()).collect::<Vec<_>>()));
    }
    let files: Vec<&'static str> = first.progress.files.keys().filter_map(|name| super::rundir::known_file(name)).collect();
    let timings = shards
        .iter()
        .map(|s| {
            let path = s.dir.join(STATS);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let stats: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            Ok((s.shard.to_string(), stats["timing"].clone()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut run = RunDir::open(out, &first.command, &settings, options, &files)?;
    if first.command == "eval" {
        return merge_eval(&shards, settings.attempts, run, stats::merged_timing(&timings));
    }

    let mut kept: Vec<String> = Vec::new();
    if first.progress.blueprints.is_some() {
        let (progress, ids) = merge_blueprints(&shards, &settings, &mut run)?;
        blueprint_run::Sink::committed(&mut run, &progress)?;
        kept = ids;
    }
    if first.progress.trajectories.is_some() {
        let kept = (first.command == "run").then_some(kept.as_slice());
        let progress = merge_trajectories(&shards, kept, settings.attempts, &mut run)?;
        crate::trajectory::runner::Sink::committed(&mut run, &progress)?;
    }
    run.finish_with_timing(stats::merged_timing(&timings))
}

/// An eval's shards: every task's trials, in the input's order, and the scores recounted.
fn merge_eval(shards: &[ShardDir], trials: usize, mut run: RunDir, timing: Value) -> Result<Value> {
    let mut lines: HashMap<String, VecDeque<Value>> = HashMap::new();
    for shard in shards {
        for line in shard.lines(RESULTS)? {
            let id =
                line["task_id"].as_str().with_context(|| format!("{}: a results line without task_id", shard.dir.display()))?.to_string();
            lines.entry(id).or_default().push_back(line);
        }
    }
    let mut merged = Vec::new();
    let mut progress = TrajectoryProgress::default();
    for id in input_order(&shards[0].manifest)? {
        let queue = lines.get_mut(&id).with_context(|| format!("no shard holds the trials of task {id}"))?;
        if queue.len() < trials {
            bail!("the shards hold {} trials of task {id}, not {trials}", queue.len());
        }
        for line in queue.drain(..trials) {
            run.append(RESULTS, &line)?;
            merged.push(line);
        }
        progress.next_blueprint += 1;
    }
    crate::trajectory::runner::Sink::committed(&mut run, &progress)?;
    let stats = super::scores::stats(&merged, timing)?;
    run.finish_custom(&stats, &super::scores::report(&stats, &run.dir().display().to_string()))?;
    Ok(stats)
}

/// The position of a Phase 1 line in the unsharded run's commit order: an attempt's line right
/// at its index, a group's recombination right after the attempt that closes the group.
fn commit_key(line: &Value, group: usize, max_attempts: usize) -> Result<(usize, bool)> {
    let task = line["task"].as_u64().with_context(|| format!("blueprint line {} has no task index", line["id"]))? as usize;
    Ok(match line["recombined"].as_bool().unwrap_or(false) {
        false => (task, false),
        true => ((task + group).min(max_attempts) - 1, true),
    })
}

/// Commits every shard's Phase 1 lines in attempt order, deduplicating and cutting at `tasks`
/// as the run does; returns the progress and the ids of the kept blueprints, in order.
fn merge_blueprints(shards: &[ShardDir], settings: &Settings, run: &mut RunDir) -> Result<(BlueprintProgress, Vec<String>)> {
    let config = blueprint_run::RunConfig::from_settings(settings, false)?;
    let (group, max_attempts) = (config.attempt.group.max(1), config.max_attempts);
    let mut units: BTreeMap<(usize, bool), Value> = BTreeMap::new();
    let mut traces: BTreeMap<(usize, bool), Vec<Value>> = BTreeMap::new();
    for shard in shards {
        for line in shard.lines(BLUEPRINTS)?.into_iter().chain(shard.lines(HELDOUT)?).chain(shard.lines(BLUEPRINTS_REJECTED)?) {
            let key = commit_key(&line, group, max_attempts)?;
            if units.insert(key, line).is_some() {
                bail!("{}: attempt {} appears twice among the shards", shard.dir.display(), key.0);
            }
        }
        for entry in shard.lines(TRACE)? {
            let task = entry["task"].as_u64().unwrap_or(0) as usize;
            let recombination = entry["call"][0] == "recombination";
            let key = match recombination {
                false => (task, false),
                true => ((task + group).min(max_attempts) - 1, true),
            };
            traces.entry(key).or_default().push(entry);
        }
    }
    let mut progress = BlueprintProgress::default();
    let mut accepted = Vec::new();
    let mut kept = Vec::new();
    for (key, line) in units {
        let line = blueprint_run::deduplicate(line, &mut accepted)?;
        progress.stats.count(&line)?;
        match line.get("stage") {
            None => {
                if line.get("heldout") != Some(&Value::Bool(true)) {
                    kept.push(line["id"].as_str().unwrap_or_default().to_string());
                }
                run.validated(&line)?;
            }
            Some(_) => run.rejected(&line)?,
        }
        if let Some(entries) = traces.remove(&key) {
            if run.writes(TRACE) {
                run.trace(&entries)?;
            }
        }
        progress.next_task = key.0 + 1;
        if progress.stats.validated >= config.count {
            break;
        }
    }
    progress.finished = true;
    Ok((progress, kept))
}

/// Commits the shards' Phase 2 records, blueprint by blueprint: for `run`, the kept blueprints
/// in Phase 1's order; for `trajectories`, the blueprints of the input file in its order (read
/// from the path the manifest recorded, and checked against its hash).
fn merge_trajectories(shards: &[ShardDir], kept: Option<&[String]>, attempts: usize, run: &mut RunDir) -> Result<TrajectoryProgress> {
    // Every shard's records by blueprint, in the order they were written (attempt order).
    let mut records: HashMap<String, VecDeque<AttemptRecord>> = HashMap::new();
    for shard in shards {
        let mut mine: Vec<AttemptRecord> = shard.records(TRAJECTORIES)?.into_iter().chain(shard.records(TRAJECTORIES_REJECTED)?).collect();
        mine.sort_by(|a, b| a.blueprint_id.cmp(&b.blueprint_id).then(a.attempt.cmp(&b.attempt)));
        for record in mine {
            records.entry(record.blueprint_id.clone()).or_default().push_back(record);
        }
    }
    let order: Vec<String> = match kept {
        Some(ids) => ids.to_vec(),
        None => input_order(&shards[0].manifest)?,
    };
    let mut progress = TrajectoryProgress::default();
    for id in order {
        let queue = records.get_mut(&id).with_context(|| format!("no shard holds the conversations of blueprint {id}"))?;
        if queue.len() < attempts {
            bail!("the shards hold {} attempts of blueprint {id}, not {attempts}", queue.len());
        }
        let batch: Vec<AttemptRecord> = queue.drain(..attempts).collect();
        progress.commit(batch, run)?;
    }
    Ok(progress)
}

/// The keys of the blueprints a `trajectories` run acted out, in the input file's order.
fn input_order(manifest: &Manifest) -> Result<Vec<String>> {
    let path = manifest.options["blueprints_path"].as_str().context("the shards' manifest does not record the blueprints file")?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the shards' blueprints file {path} (merge reads it for their order)"))?;
    if manifest.options["blueprints"].as_str() != Some(crate::seeds::sha256_hex(text.as_bytes()).as_str()) {
        bail!("{path} changed since the shards ran: merge needs the blueprints file they read");
    }
    Ok(Task::parse_jsonl(&text, path)?.iter().map(Task::key).collect())
}
