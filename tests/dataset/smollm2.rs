//! One `apigen-mt run` on the real SmolLM2 GGUF, made once per test binary and shared by the
//! tests that run the same command another way (killed and resumed, split into shards) and
//! compare their files with it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The run, sized for a test: three Phase 1 attempts, no revision round, no recombination (so each
/// attempt is a group of its own and three shards get one each) and a committee threshold of 0
/// (SmolLM2's 64-token reviews never pass; format, execution and policy still judge), then one
/// short conversation per validated blueprint. Seed 0 validates all three.
pub(crate) fn command(gguf: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_apigen-mt"));
    cmd.args(["run", "--domain", "retail", "--model"]).arg(gguf).arg("--out").arg(out);
    cmd.args([
        "--tasks",
        "3",
        "--max-attempts",
        "3",
        "--reviewers",
        "1",
        "--rounds",
        "0",
        "--threshold",
        "0",
        "--recombine",
        "0",
        "--seed",
        "0",
    ]);
    cmd.args(["--generator-max-tokens", "300", "--reviewer-max-tokens", "64", "--summarizer-max-tokens", "32"]);
    cmd.args(["--attempts", "1", "--best-of", "1", "--max-turns", "2", "--agent-max-tokens", "32", "--user-max-tokens", "24"]);
    cmd.env("HF_HUB_OFFLINE", "1").stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// The GGUF and the directory of the uninterrupted run, or `None` (after a notice) where the
/// model is absent. The first caller runs it; the others wait for it.
pub(crate) fn whole() -> Option<(PathBuf, &'static Path)> {
    static WHOLE: OnceLock<PathBuf> = OnceLock::new();
    let gguf = crate::support::smollm2_dir()?.join("model-q4_1.gguf");
    let dir = WHOLE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("smollm2-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let output = command(&gguf, &dir).output().expect("the binary runs");
        assert!(output.status.success(), "the uninterrupted run failed: {}", String::from_utf8_lossy(&output.stderr));
        dir
    });
    Some((gguf, dir.as_path()))
}
