//! A Kinesis record as handed to deserializers and timestamp assigners, and its owned form.

/// One Kinesis record (or one sub-record of a KPL aggregate) with everything known about it.
#[derive(Debug, Clone, Copy)]
pub struct KinesisRecord<'a> {
    /// The payload (of the sub-record, for an aggregate).
    pub data: &'a [u8],
    /// The partition key (of the sub-record, for an aggregate).
    pub partition_key: &'a str,
    /// The Kinesis sequence number (shared by all sub-records of an aggregate).
    pub sequence_number: &'a str,
    /// The position inside a KPL aggregate; `None` for a plain record.
    pub sub_sequence_number: Option<u64>,
    /// When Kinesis accepted the record, in milliseconds since the Unix epoch.
    pub approximate_arrival_timestamp_ms: Option<i64>,
    /// The stream name.
    pub stream: &'a str,
    /// The shard id.
    pub shard_id: &'a str,
}

/// A record read by a shard reader, waiting to be emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRecord {
    pub(crate) data: Vec<u8>,
    pub(crate) partition_key: String,
    pub(crate) sequence_number: String,
    pub(crate) sub_sequence: Option<u64>,
    pub(crate) arrival_ms: Option<i64>,
}

impl RawRecord {
    pub(crate) fn view<'a>(&'a self, stream: &'a str, shard_id: &'a str) -> KinesisRecord<'a> {
        KinesisRecord {
            data: &self.data,
            partition_key: &self.partition_key,
            sequence_number: &self.sequence_number,
            sub_sequence_number: self.sub_sequence,
            approximate_arrival_timestamp_ms: self.arrival_ms,
            stream,
            shard_id,
        }
    }
}
