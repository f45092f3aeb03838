//! [`KinesisSource`]: the rill [`Source`] over Kinesis shards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_runtime::{
    Barrier, Collector, OpenContext, OperatorContext, OperatorResult, Source, SourceFactory, SourcePoll, Watermark,
};

use crate::position::{decode_union, StateEntry};
use crate::reader::ReaderEvent;
use crate::shared::Shared;
use crate::subtask::{Batch, EventTime, Identity, Subtask};
use crate::{
    ConsumerSettings, KinesisDeserializer, KinesisSourceBuilder, KinesisSourceError, MalformedRecordPolicy, Result,
    SourceStats,
};

/// Records emitted per poll at most (a poll must return within about 100 ms).
const POLL_RECORD_BUDGET: usize = 8192;
/// Time spent emitting per poll at most.
const POLL_TIME_BUDGET: Duration = Duration::from_millis(20);
/// How long the runtime waits before polling again when nothing is queued.
const IDLE_POLL: Duration = Duration::from_millis(5);

/// An exactly-once, parallel source over one or more Kinesis streams.
///
/// - Every subtask lists the shards (ListShards with paging, every discovery interval) and keeps
///   those the [`crate::ShardAssigner`] gives it; one tokio task per shard reads it with
///   GetRecords and feeds the subtask through a bounded queue.
/// - The checkpointed position of a shard is the last *emitted* record (sequence number and KPL
///   sub-sequence), or not-started / finished; positions are union state, so a restore at another
///   parallelism redistributes shards. Restores resume after the last emitted record, finished
///   shards are never read again, shards unknown to the checkpoint start at TRIM_HORIZON.
/// - A child shard is read only after its parents were read to their end, also across subtasks
///   and crashes (see `lineage`).
/// - Watermarks, when asked for ([`KinesisSourceBuilder::arrival_time_watermarks`] or
///   [`KinesisSourceBuilder::timestamp_assigner`]; none by default, as in Flink): per shard the
///   largest timestamp, the subtask's the minimum over its active shards; idle shards and
///   subtasks without shards do not hold it back.
///
/// It is the description of the source: `env.source(..)` takes it, and each subtask opens its
/// [`KinesisSourceReader`] from it (the subtasks of one source share an in-process registry).
///
/// ```no_run
/// use rill_operators::{PrintSink, StreamExt};
/// use rill_runtime::StreamEnv;
/// use rill_kinesis_source::{InitialPosition, KinesisSource, Utf8Deserializer};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let env = StreamEnv::builder().parallelism(2).checkpoint_dir("/tmp/job").build()?;
/// let source = KinesisSource::builder(Utf8Deserializer)
///     .stream("orders")
///     .initial_position(InitialPosition::TrimHorizon)
///     .build()?;
/// env.source("orders", source).sink_to(PrintSink);
/// env.execute("print-orders")?;
/// # Ok(()) }
/// ```
pub struct KinesisSource<T> {
    shared: Arc<Shared<T>>,
}

/// The running [`KinesisSource`] of one subtask.
pub struct KinesisSourceReader<T> {
    shared: Arc<Shared<T>>,
    subtask: Subtask,
}

impl<T> std::fmt::Debug for KinesisSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisSource")
            .field("connection", &self.shared.connection)
            .field("streams", &self.shared.streams)
            .field("settings", &self.shared.settings)
            .finish()
    }
}

impl<T: Send + 'static> KinesisSource<T> {
    /// A builder; records are made by `deserializer`.
    pub fn builder(deserializer: impl KinesisDeserializer<T>) -> KinesisSourceBuilder<T> {
        KinesisSourceBuilder::new(deserializer)
    }

    /// A source of `streams` configured by Flink's property keys (`aws.*`, `flink.*`).
    pub fn from_properties<I, S>(
        streams: I,
        properties: &HashMap<String, String>,
        deserializer: impl KinesisDeserializer<T>,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::builder(deserializer).streams(streams).properties(properties)?.build()
    }
}

impl<T> KinesisSource<T> {
    pub(crate) fn from_shared(shared: Shared<T>) -> Self {
        KinesisSource { shared: Arc::new(shared) }
    }

    /// Totals over all subtasks of this source in this process.
    pub fn stats(&self) -> SourceStats {
        self.shared.stats.snapshot()
    }

    /// The settings in force.
    pub fn settings(&self) -> &ConsumerSettings {
        &self.shared.settings
    }

    /// A handle to read the totals while the job runs (the source itself moves into the job).
    pub fn stats_handle(&self) -> impl Fn() -> SourceStats + Send + Sync + 'static {
        let stats = self.shared.stats.clone();
        move || stats.snapshot()
    }
}

/// Emits up to `budget` records of `batch`; returns how many were emitted (skipped excluded).
fn emit_batch<T: 'static>(
    shared: &Shared<T>,
    sub: &mut Subtask,
    mut batch: Batch,
    budget: usize,
    out: &mut Collector<T>,
) -> Result<usize> {
    let take = batch.records.len().min(budget);
    let mut emitted = 0usize;
    let mut bytes = 0u64;
    let mut max_ts: Option<i64> = None;
    let mut last = None;
    let key = batch.shard.clone();
    for raw in batch.records.drain(..take) {
        let view = raw.view(&key.stream, &key.shard_id);
        match shared.deserializer.deserialize(&view) {
            Ok(value) => {
                let ts = match &shared.timestamps {
                    Some(assigner) => assigner.timestamp(&value, &view),
                    None => view.approximate_arrival_timestamp_ms,
                };
                if let Some(ts) = ts {
                    max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
                }
                bytes += raw.data.len() as u64;
                emitted += 1;
                out.emit(value);
            }
            Err(e) => match shared.settings.malformed_records {
                MalformedRecordPolicy::Fail => {
                    return Err(KinesisSourceError::Deserialize {
                        stream: key.stream.clone(),
                        shard: key.shard_id.clone(),
                        sequence_number: raw.sequence_number.clone(),
                        sub_sequence_number: raw.sub_sequence,
                        reason: e.to_string(),
                    })
                }
                MalformedRecordPolicy::SkipAndCount => {
                    tracing::warn!(
                        stream = %key.stream,
                        shard = %key.shard_id,
                        sequence_number = %raw.sequence_number,
                        sub_sequence_number = ?raw.sub_sequence,
                        error = %e,
                        "skipping a record that could not be deserialized"
                    );
                    sub.stats().skipped(&key);
                }
            },
        }
        last = Some((raw.sequence_number, raw.sub_sequence));
    }
    if let Some((seq, sub_seq)) = last {
        sub.advance(&key, seq, sub_seq);
    }
    if emitted > 0 {
        sub.stats().emitted(&key, emitted as u64, bytes);
        sub.watermarks.on_records(&key, max_ts, Instant::now());
    }
    if !batch.records.is_empty() {
        sub.batch = Some(batch);
    }
    Ok(emitted)
}

impl<T: Send + 'static> KinesisSourceReader<T> {
    fn poll_inner(&mut self, out: &mut Collector<T>) -> Result<SourcePoll> {
        let shared = self.shared.clone();
        let sub = &mut self.subtask;
        if sub.is_finished() {
            return Ok(SourcePoll::Finished);
        }
        sub.drain_listings(&shared.assigner)?;
        sub.start_ready();
        let started = Instant::now();
        let mut emitted = 0usize;
        loop {
            if let Some(batch) = sub.batch.take() {
                emitted += emit_batch(&shared, sub, batch, POLL_RECORD_BUDGET - emitted, out)?;
            } else {
                match sub.next_event()? {
                    Some(ReaderEvent::Records { shard, records }) => {
                        sub.batch = Some(Batch { shard, records: records.into() });
                    }
                    Some(ReaderEvent::End { shard }) => sub.shard_ended(&shard),
                    Some(ReaderEvent::Failed { shard, error }) => {
                        // Reported once, by the job, with the task's context.
                        tracing::debug!(%shard, %error, "shard reader failed; failing the task");
                        return Err(error);
                    }
                    None => break,
                }
            }
            if emitted >= POLL_RECORD_BUDGET || started.elapsed() >= POLL_TIME_BUDGET {
                break;
            }
        }
        let now = Instant::now();
        if emitted > 0 {
            sub.touch();
            sub.active();
        }
        match sub.event_time(now) {
            EventTime::Watermark(w) if shared.watermarks => out.emit_watermark(Watermark { timestamp_ms: w }),
            EventTime::Idle => out.mark_idle(),
            EventTime::Watermark(_) | EventTime::Unchanged => {}
        }
        if emitted == 0 && sub.idle_exit_due(now) {
            sub.finish();
            return Ok(SourcePoll::Finished);
        }
        if emitted > 0 || sub.batch.is_some() {
            Ok(SourcePoll::Ready)
        } else {
            Ok(SourcePoll::Idle(IDLE_POLL))
        }
    }
}

impl<T: Send + 'static> SourceFactory<T> for KinesisSource<T> {
    type Source = KinesisSourceReader<T>;

    fn open(&self, ctx: &mut OpenContext<'_>, restored: Vec<StateEntry>) -> OperatorResult<KinesisSourceReader<T>> {
        let info = ctx.info().clone();
        let id = Identity {
            uid: ctx.operator_id().to_string(),
            name: format!("{} ({})", info.name(), self.shared.streams.join(",")),
            index: info.subtask,
            parallelism: info.parallelism,
        };
        let restored = decode_union(restored).map_err(KinesisSourceError::into_operator_error)?;
        let subtask =
            Subtask::open(&self.shared, id, &info.run_id, restored).map_err(KinesisSourceError::into_operator_error)?;
        Ok(KinesisSourceReader { shared: self.shared.clone(), subtask })
    }
}

impl<T: Send + 'static> Source<T> for KinesisSourceReader<T> {
    type Position = StateEntry;

    fn poll(&mut self, ctx: &mut OperatorContext<'_>, out: &mut Collector<T>) -> OperatorResult<SourcePoll> {
        let poll = self.poll_inner(out).map_err(KinesisSourceError::into_operator_error)?;
        self.subtask.report_shards(ctx.monitor(), Instant::now());
        Ok(poll)
    }

    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OperatorContext<'_>) -> OperatorResult<Vec<StateEntry>> {
        Ok(self.subtask.snapshot(barrier.epoch))
    }

    fn on_commit(&mut self, epoch: u64, _ctx: &mut OperatorContext<'_>) -> OperatorResult {
        self.subtask.committed(epoch);
        Ok(())
    }
}
