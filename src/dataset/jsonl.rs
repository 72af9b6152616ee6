//! Append-only JSON Lines files that survive being killed at any moment.
//!
//! Every line is written whole and flushed before the next task's lines, so a crash leaves at
//! most one partial last line. On reopening, the file is cut back either to the length the
//! manifest last recorded (which also drops whole lines written after that checkpoint, whose
//! task will be run again) or, without a manifest, to its last complete line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// One append-only `.jsonl` file and the number of bytes committed to it.
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    file: File,
    len: u64,
}

impl JsonlWriter {
    /// Opens (creating if needed) `path` for appending. With `committed`, the file is cut back
    /// to that many bytes, and refused if it is shorter (someone else truncated it: the run's
    /// record would silently lose lines). Without it, a partial last line is removed.
    pub fn open(path: &Path, committed: Option<u64>) -> Result<Self> {
        let mut file =
            OpenOptions::new().create(true).read(true).append(true).open(path).with_context(|| format!("opening {}", path.display()))?;
        let actual = file.metadata().with_context(|| format!("reading {}", path.display()))?.len();
        let len = match committed {
            Some(len) if len > actual => {
                bail!("{} holds {actual} bytes but the manifest recorded {len}: the file was changed outside the run", path.display())
            }
            Some(len) => len,
            None => complete_prefix(&mut file, actual).with_context(|| format!("reading {}", path.display()))?,
        };
        if len != actual {
            file.set_len(len).with_context(|| format!("truncating {} to {len} bytes", path.display()))?;
        }
        Ok(Self { path: path.to_path_buf(), file, len })
    }

    /// Appends one value as a line and flushes it to the operating system.
    pub fn append(&mut self, value: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_string(value).with_context(|| format!("encoding a line of {}", self.path.display()))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.len += line.len() as u64;
        Ok(())
    }

    /// Forces the written lines to disk, before a checkpoint that counts them.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().with_context(|| format!("syncing {}", self.path.display()))
    }

    /// Bytes committed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The length of the file up to and including its last newline.
fn complete_prefix(file: &mut File, len: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads every line of a JSON Lines file as JSON; errors name the file and line.
pub fn read_values(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| serde_json::from_str(line).with_context(|| format!("{}:{}: not JSON", path.display(), i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_partial_last_line_is_cut_away_and_appending_continues_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut w = JsonlWriter::open(&path, None).unwrap();
        w.append(&json!({"n": 1})).unwrap();
        w.append(&json!({"n": 2})).unwrap();
        let whole = w.len();
        drop(w);
        // A crash in the middle of the third line.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"n\": 3, \"te").unwrap();
        let mut w = JsonlWriter::open(&path, None).unwrap();
        assert_eq!(w.len(), whole);
        w.append(&json!({"n": 3})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
        assert_eq!(read_values(&path).unwrap().len(), 3);
    }

    #[test]
    fn the_committed_length_drops_lines_written_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut w = JsonlWriter::open(&path, None).unwrap();
        w.append(&json!(1)).unwrap();
        let checkpoint = w.len();
        w.append(&json!(2)).unwrap();
        drop(w);
        let w = JsonlWriter::open(&path, Some(checkpoint)).unwrap();
        assert_eq!(w.len(), checkpoint);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
        let err = JsonlWriter::open(&path, Some(100)).unwrap_err().to_string();
        assert!(err.contains("a.jsonl") && err.contains("manifest"), "{err}");
    }

    #[test]
    fn a_file_without_any_newline_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{\"half").unwrap();
        assert!(JsonlWriter::open(&path, None).unwrap().is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn bad_lines_are_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.jsonl");
        std::fs::write(&path, "{}\nnot json\n").unwrap();
        let err = format!("{:#}", read_values(&path).unwrap_err());
        assert!(err.contains("b.jsonl:2"), "{err}");
    }
}
