//! An exactly-once sink writing lines to an object store (`s3://bucket/prefix`), a
//! [`TwoPhaseCommitSink`] on multipart uploads.
//!
//! Each subtask writes into an open multipart upload: lines are buffered and uploaded as a 5 MiB
//! part as soon as a buffer is full, so memory stays bounded. At a barrier the rest goes up as the
//! last part and the upload is sealed (pre-commit): its id and parts go into the checkpoint. Only
//! when that checkpoint completes is the upload completed, and the object `part-*` appears
//! (commit; idempotent, so a restore completes it again safely). An upload also rolls when it
//! reaches the configured size. At the barrier the next upload is started too, and its id goes into
//! the checkpoint: a restore of that checkpoint aborts it, with whatever it held after the barrier.
//! An upload started between barriers (a subtask's first, or one after a roll by size or time) is
//! not in any checkpoint yet: a small marker object under `_in-progress/` names it until it is
//! completed, so a restore aborts it too. The writer is in `object_writer.rs`.
//!
//! Object names, relative to the sink's location:
//!
//! ```text
//! part-<run>-<subtask>-<n>        committed output (visible once its checkpoint completed)
//! _owner                          the id of the job writing here (see below)
//! _in-progress/<object>           an upload started between barriers (its id and the job's),
//!                                 until completed
//! _committed/<epoch>/<object>     which checkpoint committed an object
//! _rolled-back/<object>           output committed after an older checkpoint that was restored
//! ```
//!
//! A restore of checkpoint `n` moves every object a checkpoint after `n` committed aside under
//! `_rolled-back/` (it will be produced again), as the file sink does: a savepoint or an explicit
//! older checkpoint restored never duplicates output.
//!
//! A location belongs to one job: the first to write there records its id (the id of its
//! checkpoint location, kept by every later run and process of that job) in `_owner`, and a job
//! with another id is refused at start. Two jobs on one prefix would abort each other's uploads
//! and roll back each other's output.

use std::sync::Arc;

use rill_runtime::{
    fatal, CommitOutcome, OpenContext, OperatorFactory, OperatorResult, TwoPhaseCommit, TwoPhaseCommitOperator,
    TwoPhaseCommitSink,
};
use rill_storage::{RemoteLocation, UploadCompletion};
use serde::{Deserialize, Serialize};

use crate::file_sink::Encoder;
use crate::object_writer::{
    marker_of, parse_marker, ObjectStoreSinkWriter, COMMITTED, IN_PROGRESS, PART_BYTES, ROLLED_BACK,
};

/// The object naming the job that owns the sink's location.
const OWNER: &str = "_owner";

/// Writes records as lines into `part-*` objects that appear only when their checkpoint completes.
pub struct ObjectStoreSink<T> {
    location: Arc<RemoteLocation>,
    encode: Encoder<T>,
    roll_bytes: u64,
    roll_interval: Option<std::time::Duration>,
}

/// An upload sealed at a barrier: what completing it needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealedUpload {
    /// Object name, relative to the sink's location.
    pub object: String,
    /// The multipart upload's id.
    pub id: String,
    /// Its parts' ids, in order.
    pub parts: Vec<String>,
    /// Whether a marker under `_in-progress/` names it (started between barriers).
    #[serde(default)]
    pub marked: bool,
}

/// An upload started and not sealed yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenUpload {
    /// Object name, relative to the sink's location.
    pub object: String,
    /// The multipart upload's id.
    pub id: String,
}

/// What one barrier sealed, and the upload that takes the records after it: the sink's
/// transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadBatch {
    /// Uploads to complete when the checkpoint completes.
    pub sealed: Vec<SealedUpload>,
    /// The upload started at the barrier, aborted if this checkpoint is restored.
    pub open: Option<OpenUpload>,
    /// The checkpoint whose barrier sealed it (0 in checkpoints written before it was recorded).
    #[serde(default)]
    pub epoch: u64,
}

impl<T: std::fmt::Display> ObjectStoreSink<T> {
    /// Writes each record's `Display` form as one line into objects at `location`.
    pub fn exactly_once(location: Arc<RemoteLocation>) -> Self {
        let encode: Encoder<T> = Arc::new(|t: &T, buf: &mut Vec<u8>| {
            use std::io::Write;
            let _ = writeln!(buf, "{t}");
        });
        Self::with_encoder(location, encode)
    }
}

impl<T> Clone for ObjectStoreSink<T> {
    fn clone(&self) -> Self {
        ObjectStoreSink {
            location: self.location.clone(),
            encode: self.encode.clone(),
            roll_bytes: self.roll_bytes,
            roll_interval: self.roll_interval,
        }
    }
}

impl<T: Send + 'static> OperatorFactory<T, ()> for ObjectStoreSink<T> {
    type Operator = TwoPhaseCommitOperator<T, ObjectStoreSink<T>>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Operator> {
        self.claim_location(&ctx.info().job_id)?;
        TwoPhaseCommit::new(self.clone()).open(ctx)
    }
}

impl<T> ObjectStoreSink<T> {
    /// Writes records encoded by `encode` (one line each, with its newline) into objects at
    /// `location`.
    pub fn with_encoder(location: Arc<RemoteLocation>, encode: Encoder<T>) -> Self {
        ObjectStoreSink { location, encode, roll_bytes: 128 << 20, roll_interval: None }
    }

    /// The same sink, also rolling to a new object once one has been open this long (by
    /// default objects roll only at checkpoints and at their size limit).
    pub fn with_roll_interval(mut self, interval: std::time::Duration) -> Self {
        self.roll_interval = Some(interval);
        self
    }

    /// The same sink, rolling to a new object once one holds `bytes` (default 128 MiB; at least
    /// one part, 5 MiB). Objects roll at every checkpoint anyway.
    pub fn with_roll_bytes(mut self, bytes: u64) -> Self {
        self.roll_bytes = bytes.max(PART_BYTES as u64);
        self
    }
}

impl<T> ObjectStoreSink<T> {
    /// Makes job `job_id` the owner of the sink's location if it has none; fails (fatal) if
    /// another job owns it.
    fn claim_location(&self, job_id: &str) -> OperatorResult {
        let owner = self.location.get_or_create(OWNER, format!("{job_id}\n").into_bytes())?;
        let owner = String::from_utf8_lossy(&owner);
        if owner.trim() == job_id {
            return Ok(());
        }
        let record = self.location.url_of(OWNER);
        Err(fatal(format!(
            "object sink: {} is the output of another job ({}); this job is {job_id}. Two jobs writing one \
             output location would abort each other's uploads: give this job its own output location, or \
             delete {record} if the other job is gone for good",
            self.location.url(),
            owner.trim()
        )))
    }

    /// Moves every object a checkpoint after `restored` committed aside under `_rolled-back/`:
    /// the restored run produces it again.
    fn roll_back_newer_than(&self, restored: u64) -> OperatorResult {
        let mut moved = 0;
        for record in self.location.list(COMMITTED)? {
            let Some((epoch, object)) = record.trim_start_matches(COMMITTED).split_once('/') else { continue };
            if epoch.parse::<u64>().map_or(true, |epoch| epoch <= restored) {
                continue;
            }
            if self.location.exists(object)? {
                self.location.copy(object, &format!("{ROLLED_BACK}{object}"))?;
                self.location.remove(object)?;
                moved += 1;
            }
            self.location.remove(&record)?;
        }
        if moved > 0 {
            tracing::warn!(location = %self.location.url(), restored, objects = moved,
                "moved output committed after the restored checkpoint into _rolled-back/ (it will be produced again)");
        }
        Ok(())
    }
}

impl<T: Send + 'static> TwoPhaseCommitSink<T> for ObjectStoreSink<T> {
    type Writer = ObjectStoreSinkWriter<T>;

    fn open_writer(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Writer> {
        let info = ctx.info();
        let prefix = format!("part-{}-{:03}-", info.run_id, info.subtask);
        Ok(ObjectStoreSinkWriter::new(
            self.location.clone(),
            self.encode.clone(),
            prefix,
            info.job_id.clone(),
            self.roll_bytes,
            self.roll_interval,
        ))
    }

    fn commit(&self, batch: &UploadBatch) -> OperatorResult<CommitOutcome> {
        let mut missing = Vec::new();
        for upload in &batch.sealed {
            if self.location.complete_upload(&upload.object, &upload.id, &upload.parts)? == UploadCompletion::Missing {
                missing.push(format!("{} (upload {})", self.location.url_of(&upload.object), upload.id));
            } else if batch.epoch > 0 {
                let record = format!("{COMMITTED}{:010}/{}", batch.epoch, upload.object);
                self.location.write(&record, upload.object.clone().into_bytes())?;
            }
            if upload.marked {
                self.location.remove(&marker_of(&upload.object))?;
            }
        }
        if missing.is_empty() {
            return Ok(CommitOutcome::Committed);
        }
        Ok(CommitOutcome::Missing { what: format!("objects gone with their uploads: {}", missing.join(", ")) })
    }

    /// Aborts what earlier attempts started and no kept batch seals (those were completed just
    /// before): the uploads the restored checkpoint opened for the records after it, and every
    /// upload an earlier attempt of this job marked as started between barriers (never another
    /// job's). Each by one subtask.
    fn abort_others(&self, ctx: &mut OpenContext<'_>, kept: &[UploadBatch]) -> OperatorResult {
        let (subtask, parallelism) = (ctx.info().subtask, ctx.info().parallelism);
        if let (0, Some(restored)) = (subtask, ctx.restored_checkpoint()) {
            self.roll_back_newer_than(restored)?;
        }
        let this_run = format!("part-{}-", ctx.info().run_id);
        let sealed: std::collections::HashSet<&str> =
            kept.iter().flat_map(|b| b.sealed.iter().map(|u| u.id.as_str())).collect();
        let open = kept.iter().filter_map(|b| b.open.as_ref()).filter(|o| !sealed.contains(o.id.as_str()));
        for upload in open.skip(subtask).step_by(parallelism) {
            self.location.abort_upload(&upload.object, &upload.id)?;
        }
        let mut markers = self.location.list(IN_PROGRESS)?;
        markers.sort();
        // Markers of this run belong to writers already running in other subtasks.
        let earlier = markers.iter().filter(|m| !m.contains(&this_run));
        for marker in earlier.skip(subtask).step_by(parallelism) {
            let object = marker.trim_start_matches(IN_PROGRESS);
            if let Some(content) = self.location.read(marker)? {
                let (id, job) = parse_marker(&content);
                if job.is_some_and(|job| job != ctx.info().job_id) {
                    continue;
                }
                if !sealed.contains(id.as_str()) {
                    self.location.abort_upload(object, &id)?;
                }
            }
            self.location.remove(marker)?;
        }
        Ok(())
    }
}
