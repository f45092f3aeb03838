//! One reader task per shard: GetShardIterator, then a GetRecords loop paced by [`Pacing`],
//! de-aggregating KPL records and handing batches to the subtask through a bounded queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use rill_kinesis_common::api_error;
use tokio::sync::mpsc;

use crate::config::ConsumerSettings;
use crate::kpl::deaggregate_into;
use crate::metrics::Stats;
use crate::pacing::Pacing;
use crate::record::RawRecord;
use crate::retry::{with_retries, CallError};
use crate::{KinesisSourceError, Result, ShardKey, ShardPosition, StartingPoint};

/// What a reader tells its subtask, in order per shard.
#[derive(Debug)]
pub(crate) enum ReaderEvent {
    /// Records of one GetRecords answer, in shard order.
    Records {
        /// The shard.
        shard: ShardKey,
        /// The records (de-aggregated).
        records: Vec<RawRecord>,
    },
    /// The shard is closed and every record of it was handed over.
    End {
        /// The shard.
        shard: ShardKey,
    },
    /// The reader gave up.
    Failed {
        /// The shard.
        shard: ShardKey,
        /// Why.
        error: KinesisSourceError,
    },
}

/// Everything a reader needs.
pub(crate) struct Reader {
    pub(crate) client: Client,
    pub(crate) shard: ShardKey,
    /// The shard's hash-key range (inclusive), for dropping KPL sub-records of other shards.
    pub(crate) hash_range: (u128, u128),
    pub(crate) start: ShardPosition,
    pub(crate) settings: Arc<ConsumerSettings>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) events: mpsc::Sender<ReaderEvent>,
    /// Set while the last GetRecords answers found nothing more to read (the shard's tip).
    pub(crate) caught_up: Arc<AtomicBool>,
}

/// Empty answers in a row taken as being at the tip when Kinesis reports no lag figure.
const EMPTY_ANSWERS_AT_TIP: u32 = 3;

/// Where to (re)start the iterator: the checkpointed start, or after the last handed-over record.
#[derive(Debug, Clone)]
enum Resume {
    At(StartingPoint),
    After(String),
    /// AT this aggregated record, skipping sub-records up to `sub`.
    InsideAggregate {
        sequence_number: String,
        sub: u64,
    },
}

impl Reader {
    /// Runs the reader until the shard ends, the subtask goes away, or it fails (reported as an event).
    pub(crate) async fn run(self) {
        if let Err(error) = self.read().await {
            // Reported once, by the job (the error names the shard).
            tracing::debug!(shard = %self.shard, %error, "shard reader failed");
            let _ = self.events.send(ReaderEvent::Failed { shard: self.shard.clone(), error }).await;
        }
    }

    fn target(&self) -> String {
        self.shard.to_string()
    }

    async fn iterator(&self, resume: &Resume) -> Result<Option<String>> {
        let target = self.target();
        let out = with_retries(
            "GetShardIterator",
            &target,
            &self.settings.get_iterator_retry,
            self.settings.throttle_retry_timeout,
            &self.stats,
            || {
                let mut request =
                    self.client.get_shard_iterator().stream_name(&self.shard.stream).shard_id(&self.shard.shard_id);
                request = match resume {
                    Resume::At(StartingPoint::TrimHorizon) => {
                        request.shard_iterator_type(ShardIteratorType::TrimHorizon)
                    }
                    Resume::At(StartingPoint::AtTimestamp { millis }) => request
                        .shard_iterator_type(ShardIteratorType::AtTimestamp)
                        .timestamp(DateTime::from_millis(*millis)),
                    Resume::After(seq) => request
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .starting_sequence_number(seq),
                    Resume::InsideAggregate { sequence_number, .. } => request
                        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                        .starting_sequence_number(sequence_number),
                };
                let stream = self.shard.stream.clone();
                async move { request.send().await.map_err(|e| api_error("GetShardIterator", Some(&stream), e)) }
            },
        )
        .await
        .map_err(|e| match e {
            CallError::Failed(e) => e,
            CallError::ExpiredIterator => {
                KinesisSourceError::State(format!("GetShardIterator on {target}: unexpected expired iterator"))
            }
        })?;
        Ok(out.shard_iterator().map(str::to_string))
    }

    async fn read(&self) -> Result<()> {
        let mut resume = match &self.start {
            ShardPosition::NotStarted(point) => Resume::At(*point),
            ShardPosition::After { sequence_number, sub_sequence: None } => Resume::After(sequence_number.clone()),
            ShardPosition::After { sequence_number, sub_sequence: Some(sub) } => {
                Resume::InsideAggregate { sequence_number: sequence_number.clone(), sub: *sub }
            }
            ShardPosition::Finished => {
                let _ = self.events.send(ReaderEvent::End { shard: self.shard.clone() }).await;
                return Ok(());
            }
        };
        let target = self.target();
        let mut iterator = self.iterator(&resume).await?;
        let mut empty_answers = 0u32;
        let mut pacing = Pacing::new(&self.settings);
        tracing::debug!(shard = %self.shard, ?resume, "shard reader started");
        loop {
            let Some(current) = iterator.take() else {
                self.caught_up.store(true, Ordering::Relaxed);
                tracing::info!(shard = %self.shard, "shard read to its end");
                let _ = self.events.send(ReaderEvent::End { shard: self.shard.clone() }).await;
                return Ok(());
            };
            let started = Instant::now();
            let limit = pacing.limit();
            let answer = with_retries(
                "GetRecords",
                &target,
                &self.settings.get_records_retry,
                self.settings.throttle_retry_timeout,
                &self.stats,
                || {
                    self.stats.get_records_call(&self.shard);
                    let request = self.client.get_records().shard_iterator(&current).limit(limit);
                    let stream = self.shard.stream.clone();
                    async move { request.send().await.map_err(|e| api_error("GetRecords", Some(&stream), e)) }
                },
            )
            .await;
            let out = match answer {
                Ok(out) => out,
                Err(CallError::ExpiredIterator) => {
                    self.stats.expired_iterator(&self.shard);
                    tracing::info!(shard = %self.shard, ?resume, "shard iterator expired; renewing after the last record handed over");
                    iterator = self.iterator(&resume).await?;
                    continue;
                }
                Err(CallError::Failed(e)) => return Err(e),
            };
            if let Some(behind) = out.millis_behind_latest() {
                self.stats.millis_behind(&self.shard, behind);
            }
            if out.records().is_empty() {
                empty_answers += 1;
                let at_tip = out.millis_behind_latest().is_none_or(|m| m == 0) || empty_answers >= EMPTY_ANSWERS_AT_TIP;
                self.caught_up.store(at_tip, Ordering::Relaxed);
            } else {
                empty_answers = 0;
                self.caught_up.store(false, Ordering::Relaxed);
            }
            let next = out.next_shard_iterator().map(str::to_string);
            let answer_bytes: u64 = out.records().iter().map(|r| r.data().as_ref().len() as u64).sum();
            let wait = pacing.after_call(out.records().len(), answer_bytes, started.elapsed());
            let mut records = Vec::with_capacity(out.records().len());
            for r in out.records {
                let arrival = r.approximate_arrival_timestamp.and_then(|t| t.to_millis().ok());
                let skip = match &resume {
                    Resume::InsideAggregate { sequence_number, sub } if *sequence_number == r.sequence_number => {
                        Some(*sub)
                    }
                    _ => None,
                };
                resume = Resume::After(r.sequence_number.clone());
                let dropped = deaggregate_into(
                    r.data.into_inner(),
                    r.partition_key.unwrap_or_default(),
                    r.sequence_number,
                    arrival,
                    skip,
                    self.hash_range,
                    &mut records,
                );
                if dropped > 0 {
                    tracing::debug!(shard = %self.shard, dropped, "dropped KPL sub-records outside the shard's hash range");
                    self.stats.foreign_sub_records(dropped as u64);
                }
            }
            if !records.is_empty()
                && self.events.send(ReaderEvent::Records { shard: self.shard.clone(), records }).await.is_err()
            {
                return Ok(());
            }
            iterator = next;
            if iterator.is_some() && !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }
}
