//! An exactly-once file sink (two-phase commit through checkpoints).
//!
//! Records go to a hidden in-progress file. At a barrier the file is flushed, fsynced and renamed
//! to a hidden pending file, and its name goes into the checkpoint. Only when that checkpoint is
//! complete does the pending file become visible as `part-*` (atomic rename). On restore, the
//! pending files of the restored checkpoint are committed and every other hidden file is deleted.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rill_runtime::{Barrier, Collector, Context, Operator, Result, RuntimeError};
use rill_state::sync_dir;
use serde::{Deserialize, Serialize};

/// Formats a record as bytes (one line, with its newline).
pub type Encoder<T> = Arc<dyn Fn(&T, &mut Vec<u8>) + Send + Sync>;

/// Writes records to `part-*` files that appear only when their checkpoint completes.
pub struct FileSink<T> {
    dir: PathBuf,
    encode: Encoder<T>,
    run: Option<Run>,
}

impl<T> Clone for FileSink<T> {
    fn clone(&self) -> Self {
        FileSink { dir: self.dir.clone(), encode: self.encode.clone(), run: None }
    }
}

/// One entry of the sink's union state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
enum SinkEntry {
    /// The checkpoint this state belongs to.
    Checkpoint(u64),
    /// A sealed file waiting for its checkpoint to complete.
    Pending(PendingFile),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct PendingFile {
    epoch: u64,
    /// File name without the leading `.pending-` / `part-`.
    name: String,
}

struct Run {
    prefix: String,
    seq: u64,
    writer: Option<(String, BufWriter<File>)>,
    buf: Vec<u8>,
    pending: Vec<PendingFile>,
}

impl<T: std::fmt::Display> FileSink<T> {
    /// Writes each record's `Display` form as one line into `dir`.
    pub fn exactly_once(dir: impl Into<PathBuf>) -> Self {
        Self::with_encoder(
            dir,
            Arc::new(|t: &T, buf: &mut Vec<u8>| {
                let _ = writeln!(buf, "{t}");
            }),
        )
    }
}

impl<T> FileSink<T> {
    /// Writes records encoded by `encode` into `dir`.
    pub fn with_encoder(dir: impl Into<PathBuf>, encode: Encoder<T>) -> Self {
        FileSink { dir: dir.into(), encode, run: None }
    }

    fn context(&self) -> String {
        format!("file sink {}", self.dir.display())
    }

    fn run(&mut self) -> Result<&mut Run> {
        let context = self.context();
        self.run.as_mut().ok_or_else(|| RuntimeError::user(context, "used before open"))
    }
}

fn io(context: &str, what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let context = format!("{context}: {what} {}", path.display());
    move |e| RuntimeError::in_operator(context, e)
}

/// Makes a pending file visible. Already committed (by an earlier attempt) is fine; missing both
/// ways means committed data is gone, which is an error.
fn commit_file(dir: &Path, file: &PendingFile, context: &str) -> Result<()> {
    let from = dir.join(format!(".pending-{}", file.name));
    let to = dir.join(format!("part-{}", file.name));
    match fs::rename(&from, &to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => Ok(()),
        Err(e) => Err(io(context, "commit (pending file of a completed checkpoint is missing)", &from)(e)),
    }
}

/// Directory (inside the output directory) where rolled-back files are kept.
pub const ROLLED_BACK_DIR: &str = ".rolled-back";

/// When an older checkpoint is restored (the newest was corrupt, or an explicit restore), files
/// committed by newer checkpoints would be produced again by the replay. They are moved, not
/// deleted, into `.rolled-back/` so the visible output stays exactly-once and nothing is lost.
fn roll_back_newer_than(dir: &Path, epoch: u64, context: &str) -> Result<()> {
    let mut moved = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(context, "list", dir))? {
        let entry = entry.map_err(io(context, "list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_epoch = name.strip_prefix("part-").and_then(|rest| rest.get(..10)).and_then(|e| e.parse::<u64>().ok());
        if file_epoch.is_some_and(|e| e > epoch) {
            let target_dir = dir.join(ROLLED_BACK_DIR);
            fs::create_dir_all(&target_dir).map_err(io(context, "create", &target_dir))?;
            fs::rename(entry.path(), target_dir.join(&name)).map_err(io(context, "roll back", &entry.path()))?;
            moved.push(name);
        }
    }
    if !moved.is_empty() {
        tracing::warn!(
            restored = epoch,
            files = moved.len(),
            "rolled back output committed after the restored checkpoint"
        );
        eprintln!(
            "warning: {context}: moved {} file(s) committed after restored checkpoint {epoch} into {ROLLED_BACK_DIR}/ (they will be produced again)",
            moved.len()
        );
    }
    Ok(())
}

impl<T: Send + 'static> Operator<T, ()> for FileSink<T> {
    fn on_open(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let context = self.context();
        fs::create_dir_all(&self.dir).map_err(io(&context, "create", &self.dir))?;
        let info = ctx.info().clone();
        let mut restored = Vec::new();
        let mut restored_checkpoint = None;
        for entry in ctx.restored_union_state() {
            match bincode::deserialize(entry).map_err(|e| RuntimeError::in_operator(context.clone(), e))? {
                SinkEntry::Checkpoint(epoch) => restored_checkpoint = Some(epoch),
                SinkEntry::Pending(file) => restored.push(file),
            }
        }
        // Each restored pending file is committed by exactly one subtask.
        for (i, file) in restored.iter().enumerate() {
            if i % info.parallelism == info.subtask {
                commit_file(&self.dir, file, &context)?;
            }
        }
        if let (0, Some(epoch)) = (info.subtask, restored_checkpoint) {
            roll_back_newer_than(&self.dir, epoch, &context)?;
        }
        if info.subtask == 0 {
            // Hidden files of earlier attempts that no complete checkpoint references: discard.
            let keep: Vec<String> = restored.iter().map(|f| format!(".pending-{}", f.name)).collect();
            for entry in fs::read_dir(&self.dir).map_err(io(&context, "list", &self.dir))? {
                let entry = entry.map_err(io(&context, "list", &self.dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let hidden = name.starts_with(".inprogress-") || name.starts_with(".pending-");
                if hidden && !name.contains(&info.run_id) && !keep.contains(&name) {
                    fs::remove_file(entry.path()).map_err(io(&context, "remove stale", &entry.path()))?;
                }
            }
        }
        sync_dir(&self.dir)?;
        self.run = Some(Run {
            prefix: format!("{}-{:03}", info.run_id, info.subtask),
            seq: 0,
            writer: None,
            buf: Vec::with_capacity(64 * 1024),
            pending: Vec::new(),
        });
        Ok(())
    }

    #[inline]
    fn process(&mut self, record: T, _ctx: &mut Context<'_>, _out: &mut Collector<()>) -> Result<()> {
        // Hot path: no allocation unless a new file starts or an error is reported.
        let Some(run) = self.run.as_mut() else {
            return Err(RuntimeError::user(self.context(), "used before open"));
        };
        if run.writer.is_none() {
            run.seq += 1;
            let name = format!("{}-{:06}", run.prefix, run.seq);
            let path = self.dir.join(format!(".inprogress-{name}"));
            let file =
                File::create(&path).map_err(io(&format!("file sink {}", self.dir.display()), "create", &path))?;
            run.writer = Some((name, BufWriter::with_capacity(256 * 1024, file)));
        }
        run.buf.clear();
        (self.encode)(&record, &mut run.buf);
        if let Some((name, writer)) = run.writer.as_mut() {
            if let Err(e) = writer.write_all(&run.buf) {
                let path = self.dir.join(format!(".inprogress-{name}"));
                return Err(io(&format!("file sink {}", self.dir.display()), "write", &path)(e));
            }
        }
        Ok(())
    }

    fn on_barrier(&mut self, barrier: Barrier, ctx: &mut Context<'_>, _out: &mut Collector<()>) -> Result<()> {
        let context = self.context();
        let dir = self.dir.clone();
        let run = self.run()?;
        if let Some((name, writer)) = run.writer.take() {
            let from = dir.join(format!(".inprogress-{name}"));
            let file = writer.into_inner().map_err(|e| io(&context, "flush", &from)(e.into_error()))?;
            file.sync_all().map_err(io(&context, "fsync", &from))?;
            let final_name = format!("{:010}-{name}", barrier.epoch);
            let to = dir.join(format!(".pending-{final_name}"));
            fs::rename(&from, &to).map_err(io(&context, "seal", &from))?;
            sync_dir(&dir)?;
            run.pending.push(PendingFile { epoch: barrier.epoch, name: final_name });
        }
        let entries = std::iter::once(SinkEntry::Checkpoint(barrier.epoch))
            .chain(run.pending.iter().cloned().map(SinkEntry::Pending))
            .map(|e| bincode::serialize(&e).map_err(|e| RuntimeError::in_operator(context.clone(), e)))
            .collect::<Result<Vec<_>>>()?;
        ctx.put_union_state(entries);
        Ok(())
    }

    fn on_commit(&mut self, epoch: u64, _ctx: &mut Context<'_>) -> Result<()> {
        let context = self.context();
        let dir = self.dir.clone();
        let run = self.run()?;
        let (ready, later): (Vec<PendingFile>, Vec<PendingFile>) =
            std::mem::take(&mut run.pending).into_iter().partition(|p| p.epoch <= epoch);
        run.pending = later;
        for file in &ready {
            commit_file(&dir, file, &context)?;
        }
        if !ready.is_empty() {
            sync_dir(&dir)?;
        }
        Ok(())
    }
}
