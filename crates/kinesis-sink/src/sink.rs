//! [`KinesisSink`]: the operator. Its subtask thread turns records into entries and hands them to
//! the background writer; barriers wait for the writer to drain.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_kinesis_common::KinesisConnection;
use rill_runtime::BoxError;
use rill_runtime::{Barrier, Collector, OpenContext, Operator, OperatorContext, OperatorFactory, OperatorResult};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::batch::Entry;
use crate::budget::Budget;
use crate::error::truncate;
use crate::metrics::{SinkStats, Telemetry};
use crate::partitioner::partition_key_problem;
use crate::stream_check::check_stream;
use crate::writer::{Command, FailureSlot, Writer};
use crate::{ErrorPolicy, KinesisSinkBuilder, Partitioner, SinkConfig, SinkError, MAX_RECORD_BYTES};

/// Turns a record into the bytes stored in Kinesis.
pub type Serializer<T> = Arc<dyn Fn(T) -> std::result::Result<Vec<u8>, BoxError> + Send + Sync>;
/// Picks a record's target stream (`None`: the default stream).
pub type StreamSelector<T> = Arc<dyn Fn(&T) -> Option<String> + Send + Sync>;

/// Room in the command channel beyond the buffer limit (for flush commands): records are bounded
/// by the shared [`Budget`] before they enter the channel, so the channel never holds more.
const CHANNEL_SLACK: usize = 16;
/// How long `on_close` lets the writer's runtime wind down.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The user's functions that turn a record into an entry.
pub(crate) struct RecordFns<T> {
    pub(crate) serializer: Serializer<T>,
    pub(crate) selector: Option<StreamSelector<T>>,
    pub(crate) partitioner: Partitioner<T>,
}

struct Shared<T> {
    connection: KinesisConnection,
    default_stream: Option<String>,
    config: Arc<SinkConfig>,
    fns: RecordFns<T>,
    stats: Arc<SinkStats>,
}

/// Writes each record to Amazon Kinesis with batched `PutRecords` calls: the description of the
/// sink, an operator factory for `sink_to` / [`rill_runtime::DataStream::sink`].
///
/// Each subtask opens a [`KinesisSinkOperator`], which owns a one-worker tokio runtime and a
/// background writer; `process` blocks when the subtask's buffer is full (back-pressure), and
/// `on_barrier` returns only when every record received before the barrier is acknowledged by
/// Kinesis (at-least-once; see the crate documentation). All subtasks share [`SinkStats`].
pub struct KinesisSink<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for KinesisSink<T> {
    fn clone(&self) -> Self {
        KinesisSink { shared: self.shared.clone() }
    }
}

/// The running [`KinesisSink`] of one subtask.
pub struct KinesisSinkOperator<T> {
    shared: Arc<Shared<T>>,
    running: Running,
}

impl<T> fmt::Debug for KinesisSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KinesisSink")
            .field("connection", &self.shared.connection)
            .field("default_stream", &self.shared.default_stream)
            .field("config", &self.shared.config)
            .field("partitioner", &self.shared.fns.partitioner)
            .finish()
    }
}

/// One open subtask's state.
struct Running {
    /// Taken at close, to wind it down with a timeout.
    runtime: Option<tokio::runtime::Runtime>,
    commands: mpsc::Sender<Command>,
    /// Records and bytes held, from hand-over to acknowledgement.
    budget: Arc<Budget>,
    failure: FailureSlot,
    context: String,
    subtask: usize,
    fixed_key: String,
    records: u64,
    default_stream: Option<Arc<str>>,
    streams: HashMap<String, Arc<str>>,
    telemetry: Telemetry,
}

impl<T: Send + 'static> KinesisSink<T> {
    /// A builder.
    pub fn builder() -> KinesisSinkBuilder<T> {
        KinesisSinkBuilder::default()
    }

    pub(crate) fn new(
        connection: KinesisConnection,
        default_stream: Option<String>,
        config: SinkConfig,
        fns: RecordFns<T>,
    ) -> Self {
        let shared =
            Shared { connection, default_stream, config: Arc::new(config), fns, stats: Arc::new(SinkStats::default()) };
        KinesisSink { shared: Arc::new(shared) }
    }

    /// Figures summed over all subtasks of this sink (and its clones).
    pub fn stats(&self) -> Arc<SinkStats> {
        self.shared.stats.clone()
    }

    /// The sink's settings.
    pub fn config(&self) -> &SinkConfig {
        &self.shared.config
    }

    fn start(&self, ctx: &OpenContext<'_>) -> std::result::Result<Running, SinkError> {
        let info = ctx.info();
        let task = info.name();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("kinesis-sink-{}", info.subtask))
            .enable_all()
            .build()
            .map_err(SinkError::Runtime)?;
        let shared = &*self.shared;
        // The writer does its own retries, so that it sees throttling and can slow down.
        let connection =
            shared.connection.clone().with_max_attempts(1).with_attempt_timeout(shared.config.request_timeout);
        let client = runtime.block_on(connection.client())?;
        let describe = connection.describe();
        if let Some(stream) = &shared.default_stream {
            runtime.block_on(check_stream(&client, stream, &describe))?;
        }
        let telemetry = Telemetry::new(&task, shared.stats.clone());
        let failure: FailureSlot = Arc::new(Mutex::new(None));
        let budget = Arc::new(Budget::new(shared.config.max_buffered_records, shared.config.max_buffered_bytes));
        let (commands, receiver) = mpsc::channel(shared.config.max_buffered_records + CHANNEL_SLACK);
        let writer =
            Writer::new(client, shared.config.clone(), describe, task.clone(), telemetry.clone(), budget.clone());
        runtime.spawn(writer.run(receiver, failure.clone()));
        tracing::info!(task = %task, stream = ?shared.default_stream, connection = %connection.describe(), "Kinesis sink open");
        Ok(Running {
            runtime: Some(runtime),
            commands,
            budget,
            failure,
            context: format!("kinesis sink {task}"),
            subtask: info.subtask,
            fixed_key: info.subtask.to_string(),
            records: 0,
            default_stream: shared.default_stream.as_deref().map(Arc::from),
            streams: HashMap::new(),
            telemetry,
        })
    }
}

impl Running {
    /// The error that stopped the writer.
    fn writer_failure(&self) -> SinkError {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or(SinkError::WriterStopped)
    }

    fn fail(&self, error: SinkError) -> rill_runtime::BoxError {
        error.into_operator_error()
    }

    /// Hands a record to the writer, waiting while the subtask's buffer is full.
    fn send_record(&self, entry: Entry) -> OperatorResult {
        match self.budget.acquire(entry.size()) {
            Ok(true) => self.telemetry.backpressure_wait(),
            Ok(false) => {}
            Err(_) => return Err(self.fail(self.writer_failure())),
        }
        self.send(Command::Record(entry))
    }

    /// Hands a command to the writer.
    fn send(&self, command: Command) -> OperatorResult {
        match self.commands.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(command)) => {
                self.telemetry.backpressure_wait();
                self.commands.blocking_send(command).map_err(|_| self.fail(self.writer_failure()))
            }
            Err(TrySendError::Closed(_)) => Err(self.fail(self.writer_failure())),
        }
    }

    /// Waits until every record handed over so far is acknowledged by Kinesis.
    fn flush(&self) -> OperatorResult {
        let started = Instant::now();
        let (reply, done) = oneshot::channel();
        self.send(Command::Flush(reply))?;
        match done.blocking_recv() {
            Ok(()) => {
                tracing::debug!(context = %self.context, waited_ms = started.elapsed().as_millis() as u64, "flushed");
                Ok(())
            }
            Err(_) => Err(self.fail(self.writer_failure())),
        }
    }

    fn intern(&mut self, stream: String) -> Arc<str> {
        if let Some(s) = self.streams.get(&stream) {
            return s.clone();
        }
        let interned: Arc<str> = Arc::from(stream.as_str());
        self.streams.insert(stream, interned.clone());
        interned
    }
}

impl<T> Shared<T> {
    /// Turns a record into an entry, or a record-level error.
    fn entry(&self, record: T, index: u64, running: &mut Running) -> std::result::Result<Entry, SinkError> {
        let subtask = running.subtask;
        let stream = match self.fns.selector.as_ref().and_then(|select| select(&record)) {
            Some(name) => running.intern(name),
            None => running.default_stream.clone().ok_or(SinkError::NoTargetStream { record: index, subtask })?,
        };
        let partition_key = self.fns.partitioner.partition_key(&record, &running.fixed_key);
        if let Some(reason) = partition_key_problem(&partition_key) {
            return Err(SinkError::InvalidPartitionKey {
                record: index,
                subtask,
                partition_key: truncate(&partition_key, 64),
                reason,
            });
        }
        let explicit_hash_key = self.fns.partitioner.explicit_hash_key(&record);
        let data =
            (self.fns.serializer)(record).map_err(|source| SinkError::Serialize { record: index, subtask, source })?;
        let size = data.len() + partition_key.len();
        if size > MAX_RECORD_BYTES {
            return Err(SinkError::RecordTooLarge {
                record: index,
                subtask,
                stream: stream.to_string(),
                partition_key: truncate(&partition_key, 64),
                size,
                limit: MAX_RECORD_BYTES,
            });
        }
        Ok(Entry {
            id: index,
            stream,
            shard: None,
            data,
            partition_key,
            explicit_hash_key,
            attempts: 0,
            throttles: 0,
            throttled_since: None,
            enqueued: Instant::now(),
        })
    }
}

impl<T: Send + 'static> OperatorFactory<T, ()> for KinesisSink<T> {
    type Operator = KinesisSinkOperator<T>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<KinesisSinkOperator<T>> {
        let running = self.start(ctx).map_err(SinkError::into_operator_error)?;
        Ok(KinesisSinkOperator { shared: self.shared.clone(), running })
    }
}

impl<T: Send + 'static> Operator<T, ()> for KinesisSinkOperator<T> {
    fn process(&mut self, record: T, _ctx: &mut OperatorContext<'_>, _out: &mut Collector<()>) -> OperatorResult {
        let shared = &self.shared;
        let running = &mut self.running;
        let index = running.records;
        running.records += 1;
        match shared.entry(record, index, running) {
            Ok(entry) => running.send_record(entry),
            Err(error) if shared.config.error_policy == ErrorPolicy::DropAndCount => {
                running.telemetry.dropped(1);
                tracing::warn!(context = %running.context, %error, "Kinesis sink dropped a record");
                Ok(())
            }
            Err(error) => Err(running.fail(error)),
        }
    }

    /// Flushes and waits until Kinesis acknowledged every record received before the barrier.
    fn on_barrier(
        &mut self,
        _barrier: Barrier,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut Collector<()>,
    ) -> OperatorResult {
        self.running.flush()
    }

    fn on_end_of_input(&mut self, _ctx: &mut OperatorContext<'_>, _out: &mut Collector<()>) -> OperatorResult {
        self.running.flush()
    }

    fn on_close(&mut self, _ctx: &mut OperatorContext<'_>) -> OperatorResult {
        // Closing the command channel stops the writer; then its runtime winds down.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.running.commands, closed));
        if let Some(runtime) = self.running.runtime.take() {
            runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
        }
        Ok(())
    }
}
