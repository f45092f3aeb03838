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

use std::sync::Arc;

use rill_runtime::{
    OpenContext, OperatorFactory, OperatorResult, SinkWriter, TwoPhaseCommit, TwoPhaseCommitOperator,
    TwoPhaseCommitSink,
};
use rill_state::RemoteLocation;
use serde::{Deserialize, Serialize};

use crate::file_sink::Encoder;

/// S3's smallest part (but the last): lines are buffered up to this before a part is uploaded.
const PART_BYTES: usize = 5 << 20;

/// Writes records as lines into `part-*` objects that appear only when their checkpoint completes.
pub struct ObjectStoreSink<T> {
    location: Arc<RemoteLocation>,
    encode: Encoder<T>,
    roll_bytes: u64,
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
}

impl<T: std::fmt::Display> ObjectStoreSink<T> {
    /// Writes each record's `Display` form as one line into objects at `location`.
    pub fn exactly_once(location: Arc<RemoteLocation>) -> Self {
        let encode: Encoder<T> = Arc::new(|t: &T, buf: &mut Vec<u8>| {
            use std::io::Write;
            let _ = writeln!(buf, "{t}");
        });
        ObjectStoreSink { location, encode, roll_bytes: 128 << 20 }
    }
}

impl<T> Clone for ObjectStoreSink<T> {
    fn clone(&self) -> Self {
        ObjectStoreSink { location: self.location.clone(), encode: self.encode.clone(), roll_bytes: self.roll_bytes }
    }
}

impl<T: Send + 'static> OperatorFactory<T, ()> for ObjectStoreSink<T> {
    type Operator = TwoPhaseCommitOperator<T, ObjectStoreSink<T>>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Operator> {
        TwoPhaseCommit::new(self.clone()).open(ctx)
    }
}

impl<T> ObjectStoreSink<T> {
    /// The same sink, rolling to a new object once one holds `bytes` (default 128 MiB; at least
    /// one part, 5 MiB). Objects roll at every checkpoint anyway.
    pub fn with_roll_bytes(mut self, bytes: u64) -> Self {
        self.roll_bytes = bytes.max(PART_BYTES as u64);
        self
    }
}

/// The upload a writer is filling.
struct Current {
    object: String,
    id: String,
    parts: Vec<String>,
    bytes: u64,
}

/// The writer of one subtask of an [`ObjectStoreSink`].
pub struct ObjectStoreWriter<T> {
    location: Arc<RemoteLocation>,
    encode: Encoder<T>,
    roll_bytes: u64,
    /// `part-<run>-<subtask>-`: unique per attempt and subtask.
    prefix: String,
    seq: u64,
    current: Option<Current>,
    buffer: Vec<u8>,
    sealed: Vec<SealedUpload>,
}

impl<T> ObjectStoreWriter<T> {
    fn start(&mut self) -> OperatorResult<Current> {
        self.seq += 1;
        let object = format!("{}{:06}", self.prefix, self.seq);
        let id = self.location.start_upload(&object)?;
        Ok(Current { object, id, parts: Vec::new(), bytes: 0 })
    }

    /// Uploads the buffer as the next part of the current upload (started if there is none).
    fn upload_buffer(&mut self) -> OperatorResult {
        let mut current = match self.current.take() {
            Some(current) => current,
            None => self.start()?,
        };
        let bytes = std::mem::take(&mut self.buffer);
        current.bytes += bytes.len() as u64;
        let part = self.location.upload_part(&current.object, &current.id, current.parts.len(), bytes)?;
        current.parts.push(part);
        self.current = Some(current);
        Ok(())
    }

    /// Seals the current upload, if it holds anything.
    fn seal(&mut self) -> OperatorResult {
        if !self.buffer.is_empty() {
            self.upload_buffer()?;
        }
        match self.current.take() {
            Some(c) if !c.parts.is_empty() => {
                self.sealed.push(SealedUpload { object: c.object, id: c.id, parts: c.parts });
            }
            other => self.current = other,
        }
        Ok(())
    }
}

impl<T: Send + 'static> SinkWriter<T> for ObjectStoreWriter<T> {
    type Transaction = UploadBatch;

    fn write(&mut self, record: T) -> OperatorResult {
        (self.encode)(&record, &mut self.buffer);
        if self.buffer.len() >= PART_BYTES {
            self.upload_buffer()?;
            if self.current.as_ref().is_some_and(|c| c.bytes >= self.roll_bytes) {
                self.seal()?;
            }
        }
        Ok(())
    }

    fn pre_commit(&mut self, _epoch: u64) -> OperatorResult<Option<UploadBatch>> {
        self.seal()?;
        if self.current.is_none() {
            self.current = Some(self.start()?);
        }
        let open = self.current.as_ref().map(|c| OpenUpload { object: c.object.clone(), id: c.id.clone() });
        Ok(Some(UploadBatch { sealed: std::mem::take(&mut self.sealed), open }))
    }

    /// The last barrier of a run: nothing follows, so no upload is started for after it (and
    /// the empty one started at the barrier before is aborted).
    fn pre_commit_last(&mut self, _epoch: u64) -> OperatorResult<Option<UploadBatch>> {
        self.seal()?;
        if let Some(empty) = self.current.take() {
            self.location.abort_upload(&empty.object, &empty.id)?;
        }
        Ok(Some(UploadBatch { sealed: std::mem::take(&mut self.sealed), open: None }))
    }
}

impl<T: Send + 'static> TwoPhaseCommitSink<T> for ObjectStoreSink<T> {
    type Writer = ObjectStoreWriter<T>;

    fn open_writer(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Writer> {
        let info = ctx.info();
        Ok(ObjectStoreWriter {
            location: self.location.clone(),
            encode: self.encode.clone(),
            roll_bytes: self.roll_bytes,
            prefix: format!("part-{}-{:03}-", info.run_id, info.subtask),
            seq: 0,
            current: None,
            buffer: Vec::new(),
            sealed: Vec::new(),
        })
    }

    fn commit(&self, batch: &UploadBatch) -> OperatorResult {
        for upload in &batch.sealed {
            self.location.complete_upload(&upload.object, &upload.id, &upload.parts)?;
        }
        Ok(())
    }

    /// Aborts the uploads the restored checkpoint started for records after it (each by one
    /// subtask), unless a kept batch seals them (they were then completed just before).
    fn abort_others(&self, ctx: &mut OpenContext<'_>, kept: &[UploadBatch]) -> OperatorResult {
        let (subtask, parallelism) = (ctx.info().subtask, ctx.info().parallelism);
        let sealed: std::collections::HashSet<&str> =
            kept.iter().flat_map(|b| b.sealed.iter().map(|u| u.id.as_str())).collect();
        let open = kept.iter().filter_map(|b| b.open.as_ref()).filter(|o| !sealed.contains(o.id.as_str()));
        for (i, upload) in open.enumerate() {
            if i % parallelism == subtask {
                self.location.abort_upload(&upload.object, &upload.id)?;
            }
        }
        Ok(())
    }
}
