//! The writer of one subtask of an [`crate::ObjectStoreSink`]: lines buffered into 5 MiB parts of
//! a multipart upload, sealed at barriers and when the object reaches its size or age limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_runtime::{Barrier, OperatorResult, SinkWriter};
use rill_storage::RemoteLocation;

use crate::file_sink::Encoder;
use crate::object_sink::{OpenUpload, SealedUpload, UploadBatch};

/// S3's smallest part (but the last): lines are buffered up to this before a part is uploaded.
pub(crate) const PART_BYTES: usize = 5 << 20;

/// Where markers of uploads started between barriers go, under the sink's location.
pub(crate) const IN_PROGRESS: &str = "_in-progress/";

/// Where a committed object's record of its checkpoint goes: `_committed/<epoch>/<object>`.
pub(crate) const COMMITTED: &str = "_committed/";

/// Where output committed after the restored checkpoint is moved (as the file sink does).
pub(crate) const ROLLED_BACK: &str = "_rolled-back/";

/// The marker object of the upload of `object`.
pub(crate) fn marker_of(object: &str) -> String {
    format!("{IN_PROGRESS}{object}")
}

/// A marker's content: the upload's id, then the id of the job that started it.
pub(crate) fn marker_content(upload: &str, job_id: &str) -> Vec<u8> {
    format!("{upload}\n{job_id}\n").into_bytes()
}

/// The upload id and job id a marker holds (no job id in markers written before it was
/// recorded).
pub(crate) fn parse_marker(content: &[u8]) -> (String, Option<String>) {
    let text = String::from_utf8_lossy(content);
    let mut lines = text.lines();
    let upload = lines.next().unwrap_or_default().trim().to_string();
    let job = lines.next().map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
    (upload, job)
}

/// Records written between two looks at the clock (for the roll interval).
const CLOCK_EVERY: u32 = 1024;

/// The upload a writer is filling.
struct Current {
    object: String,
    id: String,
    parts: Vec<String>,
    bytes: u64,
    marked: bool,
}

/// The writer of one subtask of an [`crate::ObjectStoreSink`].
pub struct ObjectStoreSinkWriter<T> {
    location: Arc<RemoteLocation>,
    encode: Encoder<T>,
    roll_bytes: u64,
    roll_interval: Option<Duration>,
    /// `part-<run>-<subtask>-`: unique per attempt and subtask.
    prefix: String,
    /// The job's id, written into the markers of its uploads.
    job_id: String,
    seq: u64,
    current: Option<Current>,
    buffer: Vec<u8>,
    /// When the object being filled got its first record.
    opened_at: Option<Instant>,
    since_clock: u32,
    sealed: Vec<SealedUpload>,
}

impl<T> ObjectStoreSinkWriter<T> {
    pub(crate) fn new(
        location: Arc<RemoteLocation>,
        encode: Encoder<T>,
        prefix: String,
        job_id: String,
        roll_bytes: u64,
        roll_interval: Option<Duration>,
    ) -> Self {
        ObjectStoreSinkWriter {
            location,
            encode,
            roll_bytes,
            roll_interval,
            prefix,
            job_id,
            seq: 0,
            current: None,
            buffer: Vec::new(),
            opened_at: None,
            since_clock: 0,
            sealed: Vec::new(),
        }
    }

    /// Starts the next upload. One started between barriers is in no checkpoint: a marker names
    /// it (`marked`) until it is completed, so that a restore can abort it.
    fn start(&mut self, marked: bool) -> OperatorResult<Current> {
        self.seq += 1;
        let object = format!("{}{:06}", self.prefix, self.seq);
        let id = self.location.start_upload(&object)?;
        if marked {
            self.location.write(&marker_of(&object), marker_content(&id, &self.job_id))?;
        }
        Ok(Current { object, id, parts: Vec::new(), bytes: 0, marked })
    }

    /// Uploads the buffer as the next part of the current upload (started if there is none).
    fn upload_buffer(&mut self) -> OperatorResult {
        let mut current = match self.current.take() {
            Some(current) => current,
            None => self.start(true)?,
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
        self.opened_at = None;
        match self.current.take() {
            Some(c) if !c.parts.is_empty() => {
                self.sealed.push(SealedUpload { object: c.object, id: c.id, parts: c.parts, marked: c.marked });
            }
            other => self.current = other,
        }
        Ok(())
    }

    /// Whether the object being filled has been open longer than the roll interval (looking at
    /// the clock every [`CLOCK_EVERY`] records).
    fn too_old(&mut self) -> bool {
        let (Some(interval), Some(opened)) = (self.roll_interval, self.opened_at) else { return false };
        self.since_clock += 1;
        if self.since_clock < CLOCK_EVERY {
            return false;
        }
        self.since_clock = 0;
        opened.elapsed() >= interval
    }
}

impl<T: Send + 'static> SinkWriter<T> for ObjectStoreSinkWriter<T> {
    type Transaction = UploadBatch;

    fn write(&mut self, record: T) -> OperatorResult {
        (self.encode)(&record, &mut self.buffer);
        self.opened_at.get_or_insert_with(Instant::now);
        if self.buffer.len() >= PART_BYTES {
            self.upload_buffer()?;
            if self.current.as_ref().is_some_and(|c| c.bytes >= self.roll_bytes) {
                self.seal()?;
            }
        }
        if self.too_old() {
            self.seal()?;
        }
        Ok(())
    }

    /// At the last barrier of a run nothing follows, so no upload is started for after it (and
    /// the empty one started at the barrier before is aborted).
    fn pre_commit(&mut self, barrier: Barrier) -> OperatorResult<Option<UploadBatch>> {
        if barrier.then_stop {
            return self.seal_last(barrier.epoch);
        }
        self.seal()?;
        if self.current.is_none() {
            self.current = Some(self.start(false)?);
        }
        let open = self.current.as_ref().map(|c| OpenUpload { object: c.object.clone(), id: c.id.clone() });
        Ok(Some(UploadBatch { sealed: std::mem::take(&mut self.sealed), open, epoch: barrier.epoch }))
    }
}

impl<T> ObjectStoreSinkWriter<T> {
    /// The last barrier of a run: seals what was written, aborts the empty upload started at the
    /// barrier before.
    fn seal_last(&mut self, epoch: u64) -> OperatorResult<Option<UploadBatch>> {
        self.seal()?;
        if let Some(empty) = self.current.take() {
            self.location.abort_upload(&empty.object, &empty.id)?;
            if empty.marked {
                self.location.remove(&marker_of(&empty.object))?;
            }
        }
        Ok(Some(UploadBatch { sealed: std::mem::take(&mut self.sealed), open: None, epoch }))
    }
}
