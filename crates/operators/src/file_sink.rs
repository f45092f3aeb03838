//! An exactly-once file sink, a [`TwoPhaseCommitSink`].
//!
//! Records go to a hidden in-progress file. At a barrier the file is flushed, fsynced and renamed
//! to a hidden pending file (pre-commit), and its name goes into the checkpoint. Only when that
//! checkpoint is complete does the pending file become visible as `part-*` (atomic rename). On
//! restore, the pending files of the restored checkpoint are committed and every other hidden file
//! is deleted; output committed after the restored checkpoint is moved to `.rolled-back/`.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rill_runtime::{
    fatal, Barrier, CommitOutcome, OpenContext, OperatorFactory, OperatorResult, SinkWriter, TwoPhaseCommit,
    TwoPhaseCommitOperator, TwoPhaseCommitSink,
};
use rill_state::sync_dir;
use serde::{Deserialize, Serialize};

/// Formats a record as bytes (one line, with its newline).
pub type Encoder<T> = Arc<dyn Fn(&T, &mut Vec<u8>) + Send + Sync>;

/// Writes records to `part-*` files that appear only when their checkpoint completes.
pub struct FileSink<T> {
    dir: PathBuf,
    encode: Encoder<T>,
}

impl<T> Clone for FileSink<T> {
    fn clone(&self) -> Self {
        FileSink { dir: self.dir.clone(), encode: self.encode.clone() }
    }
}

/// A sealed file waiting for its checkpoint to complete: the sink's transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingFile {
    /// File name without the leading `.pending-` / `part-`.
    name: String,
}

/// The writer of one subtask of a [`FileSink`].
pub struct FileSinkWriter<T> {
    dir: PathBuf,
    encode: Encoder<T>,
    prefix: String,
    seq: u64,
    writer: Option<(String, BufWriter<File>)>,
    buf: Vec<u8>,
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

/// The committed output files of a [`FileSink`] writing into `dir` (its `part-*` files), sorted by
/// name: what a reader of the sink's output reads, never a file of an open transaction.
pub fn committed_part_files(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every line of the committed output files of a [`FileSink`] writing into `dir`, file by file
/// (see [`committed_part_files`]).
pub fn committed_lines(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    for path in committed_part_files(dir)? {
        lines.extend(std::fs::read_to_string(&path)?.lines().map(str::to_string));
    }
    Ok(lines)
}

impl<T> FileSink<T> {
    /// Writes records encoded by `encode` into `dir`.
    pub fn with_encoder(dir: impl Into<PathBuf>, encode: Encoder<T>) -> Self {
        FileSink { dir: dir.into(), encode }
    }
}

/// An I/O error of the sink, naming what it did to which file.
#[derive(Debug, thiserror::Error)]
#[error("file sink: {what} {path}: {source}")]
pub struct FileSinkError {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileSinkError {
    let path = path.to_path_buf();
    move |source| FileSinkError { what, path, source }
}

/// Which sink (run id, operator uid) writes to each output directory in this process.
fn claims() -> &'static std::sync::Mutex<std::collections::HashMap<PathBuf, (String, String)>> {
    static CLAIMS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<PathBuf, (String, String)>>> =
        std::sync::OnceLock::new();
    CLAIMS.get_or_init(Default::default)
}

/// Refuses a second file sink of the same job run on one directory: their recoveries would
/// delete each other's pending files.
fn claim_dir(dir: &Path, run_id: &str, uid: &str) -> OperatorResult {
    let dir = fs::canonicalize(dir).map_err(io("resolve", dir))?;
    let mut claims = claims().lock().unwrap_or_else(|p| p.into_inner());
    match claims.get(&dir) {
        Some((run, other)) if run == run_id && other != uid => Err(fatal(format!(
            "file sinks '{other}' and '{uid}' both write to {}: give each its own directory",
            dir.display()
        ))),
        _ => {
            claims.insert(dir, (run_id.to_string(), uid.to_string()));
            Ok(())
        }
    }
}

/// Makes a pending file visible. Already committed (by an earlier attempt) is fine; missing both
/// ways (the committed file was moved or deleted since) is [`CommitOutcome::Missing`].
fn commit_file(dir: &Path, file: &PendingFile) -> Result<CommitOutcome, FileSinkError> {
    let from = dir.join(format!(".pending-{}", file.name));
    let to = dir.join(format!("part-{}", file.name));
    match fs::rename(&from, &to) {
        Ok(()) => Ok(CommitOutcome::Committed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => Ok(CommitOutcome::Committed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(CommitOutcome::Missing { what: format!("{} (and its pending file {})", to.display(), from.display()) })
        }
        Err(e) => Err(io("commit", &from)(e)),
    }
}

/// Directory (inside the output directory) where rolled-back files are kept.
pub const ROLLED_BACK_DIR: &str = ".rolled-back";

/// When an older checkpoint is restored (the newest was corrupt, or an explicit restore), files
/// committed by newer checkpoints would be produced again by the replay. They are moved, not
/// deleted, into `.rolled-back/` so the visible output stays exactly-once and nothing is lost.
fn roll_back_newer_than(dir: &Path, epoch: u64) -> OperatorResult {
    let mut moved = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_epoch = name.strip_prefix("part-").and_then(|rest| rest.get(..10)).and_then(|e| e.parse::<u64>().ok());
        if file_epoch.is_some_and(|e| e > epoch) {
            let target_dir = dir.join(ROLLED_BACK_DIR);
            fs::create_dir_all(&target_dir).map_err(io("create", &target_dir))?;
            fs::rename(entry.path(), target_dir.join(&name)).map_err(io("roll back", &entry.path()))?;
            moved.push(name);
        }
    }
    if !moved.is_empty() {
        // Both directories durable: after a power cut each file is in one place or the other.
        sync_dir(&dir.join(ROLLED_BACK_DIR))?;
        sync_dir(dir)?;
        tracing::warn!(
            dir = %dir.display(),
            restored = epoch,
            files = moved.len(),
            "moved output committed after the restored checkpoint into {ROLLED_BACK_DIR}/ (it will be produced again)"
        );
    }
    Ok(())
}

impl<T: Send + 'static> TwoPhaseCommitSink<T> for FileSink<T> {
    type Writer = FileSinkWriter<T>;

    fn open_writer(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<FileSinkWriter<T>> {
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        claim_dir(&self.dir, &ctx.info().run_id, ctx.operator_id())?;
        let info = ctx.info();
        Ok(FileSinkWriter {
            dir: self.dir.clone(),
            encode: self.encode.clone(),
            prefix: format!("{}-{:03}", info.run_id, info.subtask),
            seq: 0,
            writer: None,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    fn commit(&self, file: &PendingFile) -> OperatorResult<CommitOutcome> {
        let outcome = commit_file(&self.dir, file)?;
        sync_dir(&self.dir)?;
        Ok(outcome)
    }

    fn abort_others(&self, ctx: &mut OpenContext<'_>, kept: &[PendingFile]) -> OperatorResult {
        let info = ctx.info().clone();
        if info.subtask != 0 {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        if let Some(epoch) = ctx.restored_checkpoint() {
            roll_back_newer_than(&self.dir, epoch)?;
        }
        // Hidden files of earlier attempts that no complete checkpoint references: discard.
        let keep: Vec<String> = kept.iter().map(|f| format!(".pending-{}", f.name)).collect();
        for entry in fs::read_dir(&self.dir).map_err(io("list", &self.dir))? {
            let entry = entry.map_err(io("list", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let hidden = name.starts_with(".inprogress-") || name.starts_with(".pending-");
            if hidden && !name.contains(&info.run_id) && !keep.contains(&name) {
                fs::remove_file(entry.path()).map_err(io("remove stale", &entry.path()))?;
            }
        }
        sync_dir(&self.dir)?;
        Ok(())
    }
}

impl<T: Send + 'static> SinkWriter<T> for FileSinkWriter<T> {
    type Transaction = PendingFile;

    #[inline]
    fn write(&mut self, record: T) -> OperatorResult {
        // Hot path: no allocation unless a new file starts or an error is reported.
        if self.writer.is_none() {
            self.seq += 1;
            let name = format!("{}-{:06}", self.prefix, self.seq);
            let path = self.dir.join(format!(".inprogress-{name}"));
            let file = File::create(&path).map_err(io("create", &path))?;
            self.writer = Some((name, BufWriter::with_capacity(256 * 1024, file)));
        }
        self.buf.clear();
        (self.encode)(&record, &mut self.buf);
        if let Some((name, writer)) = self.writer.as_mut() {
            if let Err(e) = writer.write_all(&self.buf) {
                let path = self.dir.join(format!(".inprogress-{name}"));
                return Err(io("write", &path)(e).into());
            }
        }
        Ok(())
    }

    fn pre_commit(&mut self, barrier: Barrier) -> OperatorResult<Option<PendingFile>> {
        let epoch = barrier.epoch;
        let Some((name, writer)) = self.writer.take() else {
            return Ok(None);
        };
        let from = self.dir.join(format!(".inprogress-{name}"));
        let file = writer.into_inner().map_err(|e| io("flush", &from)(e.into_error()))?;
        file.sync_all().map_err(io("fsync", &from))?;
        let final_name = format!("{epoch:010}-{name}");
        let to = self.dir.join(format!(".pending-{final_name}"));
        fs::rename(&from, &to).map_err(io("seal", &from))?;
        sync_dir(&self.dir)?;
        Ok(Some(PendingFile { name: final_name }))
    }
}

impl<T: Send + 'static> OperatorFactory<T, ()> for FileSink<T> {
    type Operator = TwoPhaseCommitOperator<T, FileSink<T>>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Operator> {
        TwoPhaseCommit::new(self.clone()).open(ctx)
    }
}
