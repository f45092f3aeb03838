//! Turning Kinesis records into job records ([`KinesisDeserializer`]) and giving them event
//! timestamps ([`TimestampAssigner`]).

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::KinesisRecord;

/// Why a record could not be deserialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeserializeError(String);

impl DeserializeError {
    /// An error with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        DeserializeError(message.to_string())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeserializeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeserializeError {}

/// Makes a job record of type `T` from a Kinesis record. Called on the subtask's thread.
///
/// A closure `Fn(&KinesisRecord) -> Result<T, DeserializeError>` is a deserializer too.
pub trait KinesisDeserializer<T>: Send + Sync + 'static {
    /// The record for `record`, or why there is none.
    fn deserialize(&self, record: &KinesisRecord<'_>) -> Result<T, DeserializeError>;
}

impl<T, F> KinesisDeserializer<T> for F
where
    F: Fn(&KinesisRecord<'_>) -> Result<T, DeserializeError> + Send + Sync + 'static,
{
    fn deserialize(&self, record: &KinesisRecord<'_>) -> Result<T, DeserializeError> {
        self(record)
    }
}

/// The payload bytes, as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesDeserializer;

impl KinesisDeserializer<Vec<u8>> for BytesDeserializer {
    fn deserialize(&self, record: &KinesisRecord<'_>) -> Result<Vec<u8>, DeserializeError> {
        Ok(record.data.to_vec())
    }
}

/// The payload as UTF-8 text; invalid UTF-8 is a deserialization error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8Deserializer;

impl KinesisDeserializer<String> for Utf8Deserializer {
    fn deserialize(&self, record: &KinesisRecord<'_>) -> Result<String, DeserializeError> {
        String::from_utf8(record.data.to_vec()).map_err(|e| DeserializeError::new(format!("not UTF-8: {e}")))
    }
}

/// The payload as JSON, through serde.
pub struct JsonDeserializer<T>(PhantomData<fn() -> T>);

impl<T> JsonDeserializer<T> {
    /// A JSON deserializer for `T`.
    pub fn new() -> Self {
        JsonDeserializer(PhantomData)
    }
}

impl<T> Default for JsonDeserializer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for JsonDeserializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonDeserializer")
    }
}

impl<T: DeserializeOwned + 'static> KinesisDeserializer<T> for JsonDeserializer<T> {
    fn deserialize(&self, record: &KinesisRecord<'_>) -> Result<T, DeserializeError> {
        serde_json::from_slice(record.data).map_err(|e| DeserializeError::new(format!("invalid JSON: {e}")))
    }
}

/// Gives a record its event timestamp (milliseconds since the Unix epoch). Without one, the
/// source uses the approximate arrival timestamp. Returning `None` leaves the watermark as is.
///
/// A closure `Fn(&T, &KinesisRecord) -> Option<i64>` is an assigner too.
pub trait TimestampAssigner<T>: Send + Sync + 'static {
    /// The event time of `value`, read from `record`.
    fn timestamp(&self, value: &T, record: &KinesisRecord<'_>) -> Option<i64>;
}

impl<T, F> TimestampAssigner<T> for F
where
    F: Fn(&T, &KinesisRecord<'_>) -> Option<i64> + Send + Sync + 'static,
{
    fn timestamp(&self, value: &T, record: &KinesisRecord<'_>) -> Option<i64> {
        self(value, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &[u8]) -> KinesisRecord<'_> {
        KinesisRecord {
            data,
            partition_key: "k",
            sequence_number: "1",
            sub_sequence_number: None,
            approximate_arrival_timestamp_ms: Some(5),
            stream: "s",
            shard_id: "shardId-0",
        }
    }

    #[test]
    fn bytes_utf8_and_json_deserializers_read_the_payload() {
        assert_eq!(BytesDeserializer.deserialize(&record(b"\x01\x02")).unwrap(), vec![1, 2]);
        assert_eq!(Utf8Deserializer.deserialize(&record(b"hi")).unwrap(), "hi");
        let json: JsonDeserializer<std::collections::BTreeMap<String, u32>> = JsonDeserializer::new();
        assert_eq!(json.deserialize(&record(br#"{"a":1}"#)).unwrap()["a"], 1);
    }

    #[test]
    fn invalid_utf8_and_json_are_errors() {
        assert!(Utf8Deserializer.deserialize(&record(b"\xff")).is_err());
        let json: JsonDeserializer<u32> = JsonDeserializer::new();
        assert!(json.deserialize(&record(b"{")).unwrap_err().message().contains("JSON"));
    }

    #[test]
    fn closures_deserialize_and_assign_timestamps() {
        let key = |r: &KinesisRecord<'_>| Ok::<_, DeserializeError>(r.partition_key.to_string());
        assert_eq!(key.deserialize(&record(b"")).unwrap(), "k");
        let ts = |_: &String, r: &KinesisRecord<'_>| r.approximate_arrival_timestamp_ms.map(|t| t * 2);
        assert_eq!(ts.timestamp(&String::new(), &record(b"")), Some(10));
    }
}
