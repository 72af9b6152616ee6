//! Shards: one run split over N processes (Slurm array tasks, Kubernetes Indexed Job pods), each
//! doing a fixed share of the attempts with no coordinator, and `merge` joining their
//! directories into the run that one process would have made.
//!
//! What makes that possible is that every decision of a run is a function of indices and the
//! seed alone: shard I of N runs the recombination groups `g` with `g % N == I` (whole groups,
//! since a group shares one user and database), every attempt of them, with no early stop; the
//! `--tasks` cut and deduplication are applied in attempt order when `merge` commits the lines,
//! exactly as an unsharded run applies them when it commits.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 {
            bail!("a run splits into at least 1 shard, not 0");
        }
        if index >= count {
            bail!("shard {index} is out of range for {count} shards (shards are numbered 0 to {})", count - 1);
        }
        Ok(Self { index, count })
    }

    /// The shard a scheduler assigned to this process: Slurm's array task id (relative to
    /// `SLURM_ARRAY_TASK_MIN`, since arrays may start at 1) out of `SLURM_ARRAY_TASK_COUNT`, or a
    /// Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`. `count` (from `--shard-count`) is needed
    /// where the environment does not say, and checked where it does.
    pub fn from_env(count: Option<usize>, var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let number = |name: &str| -> Result<Option<usize>> {
            var(name).map(|v| v.trim().parse::<usize>().with_context(|| format!("{name}={v:?} is not a number"))).transpose()
        };
        let (index, from_env, source) = if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            if id < min {
                bail!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}");
            }
            (id - min, number("SLURM_ARRAY_TASK_COUNT")?, "SLURM_ARRAY_TASK_ID")
        } else if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            (index, None, "JOB_COMPLETION_INDEX")
        } else {
            bail!("--shard auto needs SLURM_ARRAY_TASK_ID (a Slurm job array) or JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) in the environment; give --shard I/N otherwise");
        };
        let count = match (count, from_env) {
            (Some(flag), Some(env)) if flag != env => {
                bail!("--shard-count {flag} disagrees with SLURM_ARRAY_TASK_COUNT={env}")
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => bail!("--shard auto with {source} needs the number of shards: give --shard-count N"),
        };
        Self::new(index, count).with_context(|| format!("shard from {source}"))
    }

    /// Whether attempt group `group` belongs to this shard: groups are dealt round-robin, so every
    /// shard holds some of the early attempts that survive the `--tasks` cut.
    pub fn owns_group(&self, group: usize) -> bool {
        group % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    /// `I/N`, as in `--shard 2/8`.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || anyhow::anyhow!("--shard {text:?}: expected I/N with 0 <= I < N (for example 0/4), or auto");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = index.trim().parse().map_err(|_| bad())?;
        let count: usize = count.trim().parse().map_err(|_| bad())?;
        Self::new(index, count)
    }
}

/// The attempt indices a run (or a shard of it) does, in commit order: all of `0..max_attempts`,
/// or the shard's whole groups of `group` attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    pub max_attempts: usize,
    pub group: usize,
    pub shard: Option<Shard>,
}

impl Attempts {
    /// Whether attempt `task` is done here.
    pub fn contains(&self, task: usize) -> bool {
        task < self.max_attempts && self.shard.is_none_or(|s| s.owns_group(task / self.group.max(1)))
    }

    /// The first attempt done here at or after `task`, if any.
    pub fn next_from(&self, mut task: usize) -> Option<usize> {
        let group = self.group.max(1);
        while task < self.max_attempts {
            if self.contains(task) {
                return Some(task);
            }
            // Skip to the start of the next group.
            task = (task / group + 1) * group;
        }
        None
    }

    /// How many attempts are done here from `task` on.
    pub fn count_from(&self, task: usize) -> usize {
        (task..self.max_attempts).filter(|&t| self.contains(t)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_i_of_n_and_names_bad_forms() {
        assert_eq!("0/1".parse::<Shard>().unwrap(), Shard { index: 0, count: 1 });
        assert_eq!(" 2 / 8 ".parse::<Shard>().unwrap(), Shard { index: 2, count: 8 });
        for bad in ["", "1", "a/b", "1/", "/2", "-1/2", "1/2/3"] {
            let err = format!("{:#}", bad.parse::<Shard>().unwrap_err());
            assert!(err.contains("expected I/N"), "{bad}: {err}");
        }
        let err = "3/3".parse::<Shard>().unwrap_err().to_string();
        assert!(err.contains("out of range") && err.contains("0 to 2"), "{err}");
        assert!("0/0".parse::<Shard>().unwrap_err().to_string().contains("at least 1"));
    }

    #[test]
    fn auto_reads_slurm_arrays_from_their_minimum_and_indexed_jobs() {
        let env =
            |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")]);
        assert_eq!(Shard::from_env(None, slurm).unwrap(), Shard { index: 2, count: 4 });
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1")]);
        assert_eq!(Shard::from_env(Some(3), k8s).unwrap(), Shard { index: 1, count: 3 });
        let err = Shard::from_env(None, env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err().to_string();
        assert!(err.contains("--shard-count"), "{err}");
        let err = Shard::from_env(Some(5), env(&[("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "4")])).unwrap_err().to_string();
        assert!(err.contains("disagrees"), "{err}");
        assert!(Shard::from_env(Some(2), env(&[])).is_err());
        let err = format!("{:#}", Shard::from_env(Some(2), env(&[("JOB_COMPLETION_INDEX", "2")])).unwrap_err());
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn shards_split_the_attempts_into_whole_groups_exactly_once() {
        let all = Attempts { max_attempts: 20, group: 3, shard: None };
        assert_eq!(all.count_from(0), 20);
        let mut seen = vec![0; 20];
        for index in 0..3 {
            let shard = Attempts { shard: Some(Shard::new(index, 3).unwrap()), ..all };
            let mut task = shard.next_from(0);
            let mut count = 0;
            while let Some(t) = task {
                seen[t] += 1;
                count += 1;
                assert!(shard.contains(t) && shard.contains(t - t % 3), "whole groups");
                task = shard.next_from(t + 1);
            }
            assert_eq!(count, shard.count_from(0));
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }
}
