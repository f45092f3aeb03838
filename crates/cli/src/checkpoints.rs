//! The `checkpoints` commands: each builds its report from the checkpoint store and the same
//! checks a restore makes ([`check_checkpoint`]), and says whether all was well.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use rill_state::decisions::{check_checkpoint, CheckpointCheck};
use rill_state::{CheckpointStore, FsCheckpointStore, Manifest, OperatorStateSnapshot};

use crate::positions;

/// What a command prints, and whether it found everything in order.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) text: String,
    pub(crate) ok: bool,
}

fn open(dir: &Path) -> anyhow::Result<FsCheckpointStore> {
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    FsCheckpointStore::new(dir).with_context(|| format!("opening checkpoints in {}", dir.display()))
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn size(manifest: &Manifest) -> u64 {
    manifest.files().map(|f| f.size).sum()
}

/// Reads a manifest without verifying files: `Ok(None)` if absent.
fn manifest(store: &FsCheckpointStore, id: u64) -> anyhow::Result<Option<Result<Manifest, String>>> {
    let Some(bytes) = store.read_manifest(id)? else { return Ok(None) };
    Ok(Some(Manifest::decode(id, &bytes).map_err(|e| e.to_string())))
}

/// `rill checkpoints list DIR`.
pub(crate) fn list(dir: &Path) -> anyhow::Result<Report> {
    let store = open(dir)?;
    let mut ids = store.list()?;
    ids.sort_unstable();
    let mut text = format!("{:>8}  {:<24}  {:>12}  status\n", "id", "completed", "bytes");
    for id in &ids {
        let line = match store.read_manifest(*id) {
            Ok(None) => format!("{id:>8}  {:<24}  {:>12}  incomplete (no manifest)\n", "-", "-"),
            Err(e) => format!("{id:>8}  {:<24}  {:>12}  unreadable: {e}\n", "-", "-"),
            Ok(Some(bytes)) => match Manifest::decode(*id, &bytes) {
                Ok(m) => {
                    let kind = match (m.savepoint, m.final_checkpoint) {
                        (true, true) => "savepoint (final)",
                        (true, false) => "savepoint",
                        (false, true) => "complete (final)",
                        (false, false) => "complete",
                    };
                    format!("{id:>8}  {:<24}  {:>12}  {kind}\n", time(m.completed_at_ms), size(&m))
                }
                Err(e) => format!("{id:>8}  {:<24}  {:>12}  corrupt manifest: {e}\n", "-", "-"),
            },
        };
        text.push_str(&line);
    }
    for id in store.retired()? {
        let _ = writeln!(text, "{id:>8}  {:<24}  {:>12}  retired (newer than a restored checkpoint)", "-", "-");
    }
    if ids.is_empty() {
        text.push_str("(no checkpoints)\n");
    }
    Ok(Report { text, ok: true })
}

/// `rill checkpoints show DIR [ID]`.
pub(crate) fn show(dir: &Path, id: Option<u64>) -> anyhow::Result<Report> {
    let store = open(dir)?;
    let id = match id {
        Some(id) => id,
        None => {
            let mut ids = store.list()?;
            ids.sort_unstable_by(|a, b| b.cmp(a));
            let newest = ids.into_iter().find(|id| matches!(manifest(&store, *id), Ok(Some(Ok(_)))));
            newest.context("no complete checkpoint to show")?
        }
    };
    let m = match manifest(&store, id)? {
        None => anyhow::bail!("checkpoint {id} has no manifest (incomplete or absent)"),
        Some(Err(e)) => anyhow::bail!("checkpoint {id}: {e}"),
        Some(Ok(m)) => m,
    };
    let mut text = String::new();
    let _ = writeln!(text, "checkpoint {id} of job '{}'", m.job);
    let _ = writeln!(
        text,
        "completed   {}{}{}",
        time(m.completed_at_ms),
        if m.savepoint { " (savepoint)" } else { "" },
        if m.final_checkpoint { " (final)" } else { "" }
    );
    let _ = writeln!(text, "key groups  {}", m.max_parallelism);
    let _ = writeln!(text, "size        {} bytes in {} files", size(&m), m.files().count());
    for vertex in &m.vertices {
        let _ = writeln!(text, "vertex {} (parallelism {})", vertex.vertex, vertex.parallelism);
        for s in &vertex.subtasks {
            let keyed: u64 = s
                .keyed_state_dir
                .as_ref()
                .map(|d| s.files.iter().filter(|f| f.path.starts_with(d.as_str())).map(|f| f.size).sum())
                .unwrap_or(0);
            let operator: u64 = s
                .operator_state_file
                .as_ref()
                .map(|p| s.files.iter().filter(|f| f.path == *p).map(|f| f.size).sum())
                .unwrap_or(0);
            let _ = writeln!(
                text,
                "  subtask {:>3}  key groups {:>5}..={:<5}  keyed state {:>10} bytes  operator state {:>8} bytes  {} files",
                s.subtask,
                s.key_groups.start,
                s.key_groups.end,
                keyed,
                operator,
                s.files.len()
            );
            if let Some(file) = &s.operator_state_file {
                let path = store.checkpoint_dir(id).join(file);
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let state =
                    OperatorStateSnapshot::decode(&bytes).with_context(|| format!("decoding {}", path.display()))?;
                text.push_str(&positions::describe(&state));
            }
        }
    }
    Ok(Report { text, ok: true })
}

/// `rill checkpoints verify DIR [ID]`.
pub(crate) fn verify(dir: &Path, id: Option<u64>) -> anyhow::Result<Report> {
    let store = open(dir)?;
    let asked = id;
    let mut ids = store.list()?;
    ids.sort_unstable();
    if let Some(id) = id {
        anyhow::ensure!(ids.contains(&id), "no checkpoint {id} in {}", dir.display());
        ids = vec![id];
    }
    let mut text = String::new();
    let mut ok = true;
    let ids_empty = ids.is_empty();
    for id in ids {
        match check_checkpoint(&store, id)? {
            CheckpointCheck::Complete(m) => {
                let _ = writeln!(text, "checkpoint {id}: ok ({} files, {} bytes)", m.files().count(), size(&m));
            }
            CheckpointCheck::Incomplete => {
                let _ = writeln!(text, "checkpoint {id}: incomplete (no manifest)");
                // One being taken has no manifest yet: a failure only when it was asked for.
                ok &= asked.is_none();
            }
            CheckpointCheck::Corrupt(reason) => {
                let _ = writeln!(text, "checkpoint {id}: CORRUPT: {reason}");
                ok = false;
            }
        }
    }
    if ids_empty {
        text.push_str("(no checkpoints)\n");
    }
    Ok(Report { text, ok })
}
