//! The background writer of one subtask: an async task on the subtask's runtime that batches
//! records, keeps several PutRecords calls in flight, retries failures, adapts the send rate
//! (per subtask for whole-request failures, per shard for throttled entries), and answers flush
//! requests once everything before them is acknowledged.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use rill_kinesis_common::{classify_code, AwsErrorKind, FullJitter};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinSet};

use crate::batch::{BatchLimits, Entry, Queues};
use crate::budget::Budget;
use crate::metrics::Telemetry;
use crate::rate::Aimd;
use crate::request::{put_records, Completion, Outcome};
use crate::shard_map::{self, ShardMap};
use crate::shard_rates::ShardRates;
use crate::{ErrorPolicy, SinkConfig, SinkError};

/// How often the shard map of a stream is listed again (new shards after a reshard).
const SHARD_MAP_REFRESH: Duration = Duration::from_secs(30);
/// Backoff exponent cap for throttled records.
const MAX_THROTTLE_EXPONENT: u32 = 6;

/// What the subtask thread sends to its writer, in order.
#[derive(Debug)]
pub(crate) enum Command {
    /// A record to send.
    Record(Entry),
    /// Answer once every record sent before this command is acknowledged by Kinesis.
    Flush(oneshot::Sender<()>),
}

/// Where the writer leaves the error that stopped it, for the subtask thread to report.
pub(crate) type FailureSlot = Arc<Mutex<Option<SinkError>>>;

/// The writer's state.
pub(crate) struct Writer {
    client: Client,
    config: Arc<SinkConfig>,
    connection: String,
    task: String,
    queues: Queues,
    in_flight: JoinSet<Completion>,
    in_flight_records: usize,
    /// Failed records waiting for their backoff to pass.
    retry_wait: Vec<(Instant, Vec<Entry>)>,
    /// Records (and bytes) received and not yet acknowledged or dropped.
    held_records: usize,
    held_bytes: usize,
    /// The subtask's buffer limit, shared with its thread (which takes room before sending).
    budget: Arc<Budget>,
    rate: Aimd,
    shard_rates: ShardRates,
    shard_maps: HashMap<Arc<str>, (Instant, ShardMap)>,
    backoff: FullJitter,
    flush: Option<oneshot::Sender<()>>,
    telemetry: Telemetry,
}

impl Writer {
    pub(crate) fn new(
        client: Client,
        config: Arc<SinkConfig>,
        connection: String,
        task: String,
        telemetry: Telemetry,
        budget: Arc<Budget>,
    ) -> Self {
        let max_in_flight = config.max_batch_records * config.max_in_flight_requests;
        let rate = Aimd::new(max_in_flight, config.rate_increase, config.rate_decrease_factor);
        let shard_rates = ShardRates::new(
            max_in_flight,
            config.rate_increase,
            config.rate_decrease_factor,
            config.backoff(),
            config.ordering,
        );
        telemetry.rate_initial(rate.limit());
        Writer {
            budget,
            shard_rates,
            shard_maps: HashMap::new(),
            client,
            backoff: config.backoff(),
            config,
            connection,
            task,
            queues: Queues::default(),
            in_flight: JoinSet::new(),
            in_flight_records: 0,
            retry_wait: Vec::new(),
            held_records: 0,
            held_bytes: 0,
            rate,
            flush: None,
            telemetry,
        }
    }

    /// Runs until the command channel closes or a fatal error; the error goes into `failure`
    /// before the channel and any pending flush are dropped, so the subtask thread finds it.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>, failure: FailureSlot) {
        if let Err(error) = self.event_loop(&mut commands).await {
            // Reported once, by the job, when the subtask finds it.
            tracing::debug!(task = %self.task, %error, "Kinesis sink failed");
            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        }
        self.budget.close();
        commands.close();
        self.in_flight.abort_all();
    }

    async fn event_loop(&mut self, commands: &mut mpsc::Receiver<Command>) -> Result<(), SinkError> {
        loop {
            let now = Instant::now();
            self.release_retries(now);
            self.dispatch(now);
            self.answer_flush();
            self.telemetry.buffered(self.held_records, self.held_bytes);
            self.telemetry.in_flight(self.in_flight.len(), self.in_flight_records);

            let deadline = self.next_deadline(now);
            let accept = self.flush.is_none();
            tokio::select! {
                biased;
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => self.complete(done)?,
                command = commands.recv(), if accept => match command {
                    Some(command) => {
                        self.handle(command).await;
                        while self.flush.is_none() {
                            match commands.try_recv() {
                                Ok(command) => self.handle(command).await,
                                Err(_) => break,
                            }
                        }
                    }
                    // The subtask closed or dropped the sink: nothing waits for the rest.
                    None => return Ok(()),
                },
                () = sleep_until(deadline), if deadline.is_some() => {}
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Record(mut entry) => {
                self.held_records += 1;
                self.held_bytes += entry.size();
                entry.shard = self.shard_of(&entry).await;
                self.queues.push(entry);
            }
            Command::Flush(reply) => self.flush = Some(reply),
        }
    }

    /// The shard `entry` goes to, from the stream's shard map (listed on first use and every
    /// [`SHARD_MAP_REFRESH`]; a failed listing leaves the record unmapped, paced per subtask).
    async fn shard_of(&mut self, entry: &Entry) -> Option<Arc<str>> {
        let stale = self.shard_maps.get(&entry.stream).is_none_or(|(at, _)| at.elapsed() >= SHARD_MAP_REFRESH);
        if stale {
            let map = match shard_map::load(&self.client, &entry.stream).await {
                Ok(map) => map,
                Err(error) => {
                    tracing::debug!(task = %self.task, stream = %entry.stream, %error, "could not list shards; pacing the stream as one");
                    ShardMap::default()
                }
            };
            self.shard_maps.insert(entry.stream.clone(), (Instant::now(), map));
        }
        let (_, map) = self.shard_maps.get(&entry.stream)?;
        if map.is_empty() {
            return None;
        }
        map.shard_of(shard_map::hash_key(&entry.partition_key, entry.explicit_hash_key.as_deref())).cloned()
    }

    fn answer_flush(&mut self) {
        if self.held_records == 0 {
            if let Some(reply) = self.flush.take() {
                let _ = reply.send(());
            }
        }
    }

    /// Records per batch now: the configured size, but never above the rate limit.
    fn batch_cap(&self) -> usize {
        self.config.max_batch_records.min(self.rate.limit())
    }

    /// Whether one more full batch may be sent now.
    fn can_send(&self) -> bool {
        self.in_flight.len() < self.config.max_in_flight_requests
            && (self.in_flight.is_empty() || self.in_flight_records + self.batch_cap() <= self.rate.limit())
    }

    /// Starts calls for due batches while the in-flight limits allow.
    fn dispatch(&mut self, now: Instant) {
        while self.can_send() {
            let limits = BatchLimits {
                max_records: self.batch_cap(),
                max_bytes: self.config.max_batch_bytes,
                linger: self.config.linger,
                flushing: self.flush.is_some(),
            };
            let rates = &self.shard_rates;
            let mut per_shard: HashMap<Arc<str>, usize> = HashMap::new();
            let mut keys: HashSet<String> = HashSet::new();
            let ordering = self.config.ordering;
            let mut admit = |entry: &Entry| {
                if !rates.admits(entry, now, &per_shard, &keys) {
                    return false;
                }
                if let Some(shard) = &entry.shard {
                    *per_shard.entry(shard.clone()).or_default() += 1;
                }
                if ordering {
                    keys.insert(entry.partition_key.clone());
                }
                true
            };
            let Some(batch) = self.queues.next_batch(now, &limits, &mut admit) else {
                return;
            };
            for entry in &batch.entries {
                self.shard_rates.sent(entry);
            }
            self.in_flight_records += batch.entries.len();
            tracing::trace!(task = %self.task, stream = %batch.stream, records = batch.entries.len(), bytes = batch.bytes, "PutRecords");
            self.in_flight.spawn(put_records(self.client.clone(), batch, self.rate.epoch()));
        }
    }

    /// When the loop must wake up without a completion or a command: a batch lingered long
    /// enough (only if it could be sent: a due batch whose shards are all held back waits for
    /// them instead), a retry's backoff passed, or a throttled shard opens again.
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let linger = if self.can_send() && self.flush.is_none() {
            self.queues.next_linger_deadline(self.config.linger).filter(|at| *at > now)
        } else {
            None
        };
        let retry = self.retry_wait.iter().map(|(at, _)| *at).min();
        let unblock = self.shard_rates.next_unblock(now);
        [linger, retry, unblock].into_iter().flatten().min()
    }

    fn release_retries(&mut self, now: Instant) {
        if self.retry_wait.iter().all(|(at, _)| *at > now) {
            return;
        }
        let (due, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.retry_wait).into_iter().partition(|(at, _)| *at <= now);
        self.retry_wait = waiting;
        for (_, entries) in due {
            self.queues.push_retries(entries);
        }
    }

    fn release(&mut self, records: usize, bytes: usize) {
        self.held_records -= records;
        self.held_bytes -= bytes;
        self.budget.release(records, bytes);
    }

    fn complete(&mut self, done: Result<Completion, JoinError>) -> Result<(), SinkError> {
        let completion = done.map_err(|e| SinkError::Fatal {
            operation: "PutRecords",
            stream: String::from("(unknown)"),
            code: "RequestTaskFailed".into(),
            message: e.to_string(),
        })?;
        let Completion { batch, epoch, outcome } = completion;
        self.in_flight_records -= batch.entries.len();
        self.telemetry.request();
        for entry in &batch.entries {
            self.shard_rates.returned(entry);
        }
        let stream = batch.stream.clone();
        let now = Instant::now();
        match outcome {
            Outcome::Answered(results) => {
                let (mut sent, mut sent_bytes, mut throttled) = (0usize, 0usize, 0u64);
                let mut failed = Vec::new();
                let mut stored_shards: HashSet<Arc<str>> = HashSet::new();
                let mut throttled_shards: HashSet<Arc<str>> = HashSet::new();
                let mut last_error = (String::new(), String::new());
                for (entry, result) in batch.entries.into_iter().zip(results) {
                    match result {
                        None => {
                            sent += 1;
                            sent_bytes += entry.size();
                            if let Some(shard) = &entry.shard {
                                stored_shards.insert(shard.clone());
                            }
                            self.shard_rates.done(&entry);
                        }
                        Some((code, message)) => {
                            let class = classify_code(&code);
                            match class {
                                AwsErrorKind::Throttled => {
                                    throttled += 1;
                                    if let Some(shard) = &entry.shard {
                                        throttled_shards.insert(shard.clone());
                                    }
                                }
                                AwsErrorKind::Fatal => return Err(self.fatal(&stream, code, message)),
                                AwsErrorKind::Transient | AwsErrorKind::ExpiredIterator => {}
                            }
                            last_error = (code, message);
                            failed.push((entry, class));
                        }
                    }
                }
                self.release(sent, sent_bytes);
                self.telemetry.sent(sent as u64, sent_bytes as u64);
                // Additive increase only for shards none of whose entries were throttled.
                for shard in stored_shards.difference(&throttled_shards) {
                    self.shard_rates.stored(shard);
                }
                for shard in &throttled_shards {
                    self.shard_rates.throttled(shard, now);
                }
                if failed.is_empty() {
                    self.on_success();
                    Ok(())
                } else {
                    if throttled > 0 {
                        self.telemetry.throttled(throttled);
                    }
                    tracing::debug!(task = %self.task, %stream, failed = failed.len(), code = %last_error.0, "PutRecords partially failed; retrying the failed entries");
                    // Throttled entries slow their shard down; other failures the subtask.
                    if failed.iter().any(|(e, class)| *class != AwsErrorKind::Throttled || e.shard.is_none()) {
                        self.on_congestion(epoch);
                    }
                    self.schedule_retry(&stream, failed, last_error)
                }
            }
            Outcome::Failed { class, code, message } => match class {
                AwsErrorKind::Fatal | AwsErrorKind::ExpiredIterator => Err(self.fatal(&stream, code, message)),
                AwsErrorKind::Throttled | AwsErrorKind::Transient => {
                    if class == AwsErrorKind::Throttled {
                        self.telemetry.throttled(1);
                    }
                    tracing::debug!(task = %self.task, %stream, %code, %class, "PutRecords failed; retrying the request");
                    self.on_congestion(epoch);
                    let failed = batch.entries.into_iter().map(|e| (e, class)).collect();
                    self.schedule_retry(&stream, failed, (code, message))
                }
            },
        }
    }

    fn on_success(&mut self) {
        let before = self.rate.limit();
        self.rate.on_success();
        if self.rate.limit() != before {
            self.telemetry.rate_changed(self.rate.limit(), false);
        }
    }

    fn on_congestion(&mut self, epoch: u64) {
        if self.rate.on_congestion(epoch) {
            tracing::debug!(task = %self.task, limit = self.rate.limit(), "lowered the in-flight record limit");
            self.telemetry.rate_changed(self.rate.limit(), true);
        }
    }

    fn fatal(&self, stream: &str, code: String, message: String) -> SinkError {
        if code == "ResourceNotFoundException" {
            return SinkError::StreamNotFound { stream: stream.to_string(), connection: self.connection.clone() };
        }
        SinkError::Fatal { operation: "PutRecords", stream: stream.to_string(), code, message }
    }

    /// Counts a failed attempt for each entry (throttling and other failures apart); those
    /// still allowed to retry wait for a full-jitter backoff, the others go to the error policy.
    fn schedule_retry(
        &mut self,
        stream: &str,
        entries: Vec<(Entry, AwsErrorKind)>,
        last_error: (String, String),
    ) -> Result<(), SinkError> {
        let now = Instant::now();
        let policy = self.config.error_policy;
        let (mut retry, mut exhausted) = (Vec::with_capacity(entries.len()), Vec::new());
        let mut throttled_for = Duration::ZERO;
        let mut exponent = 0;
        for (mut entry, class) in entries {
            let gave_up = if class == AwsErrorKind::Throttled {
                entry.throttles += 1;
                let since = *entry.throttled_since.get_or_insert(now);
                throttled_for = throttled_for.max(now - since);
                self.config.throttle_retry_timeout.is_some_and(|t| now - since >= t)
            } else {
                entry.attempts += 1;
                entry.attempts > self.config.max_retries
            };
            exponent = exponent.max((entry.attempts + entry.throttles).saturating_sub(1));
            if gave_up && policy != ErrorPolicy::RetryForever {
                exhausted.push(entry);
            } else {
                retry.push(entry);
            }
        }
        if !exhausted.is_empty() {
            let (code, message) = last_error;
            let attempts = exhausted.iter().map(|e| e.attempts + e.throttles).max().unwrap_or(0);
            match policy {
                ErrorPolicy::Fail | ErrorPolicy::RetryForever => {
                    return Err(SinkError::RetriesExhausted {
                        stream: stream.to_string(),
                        records: exhausted.len(),
                        attempts,
                        code,
                        message,
                    })
                }
                ErrorPolicy::DropAndCount => {
                    let bytes: usize = exhausted.iter().map(Entry::size).sum();
                    self.release(exhausted.len(), bytes);
                    for entry in &exhausted {
                        self.shard_rates.done(entry);
                    }
                    self.telemetry.dropped(exhausted.len() as u64);
                    tracing::warn!(
                        task = %self.task, %stream, records = exhausted.len(), attempts, %code, %message,
                        throttled_for = ?throttled_for,
                        "Kinesis sink dropped a batch of records that kept failing"
                    );
                }
            }
        }
        if !retry.is_empty() {
            self.telemetry.retried(retry.len() as u64);
            let delay = self.backoff.delay(exponent.min(MAX_THROTTLE_EXPONENT));
            self.retry_wait.push((now + delay, retry));
        }
        Ok(())
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => tokio::time::sleep(Duration::from_secs(3600)).await,
    }
}
