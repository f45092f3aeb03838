//! The limits the proxy enforces: AWS's published values by default, each scalable.

use crate::LimitsError;

/// One MiB.
const MIB: u64 = 1024 * 1024;

/// The per-shard data limits and the scale of the control-plane limits.
///
/// [`Limits::default`] holds the values AWS publishes for a provisioned stream. Emulators are
/// slower than AWS, so tests usually scale the per-shard values down (e.g. 200 KiB/s of reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Bytes of record data GetRecords may return per shard per second (AWS: 2 MiB).
    pub read_bytes_per_shard: u64,
    /// GetRecords calls per shard per second, all consumers together (AWS: 5).
    pub reads_per_shard: u32,
    /// Bytes (data plus partition key) PutRecord(s) may write per shard per second (AWS: 1 MiB).
    pub write_bytes_per_shard: u64,
    /// Records PutRecord(s) may write per shard per second (AWS: 1,000).
    pub write_records_per_shard: u32,
    /// Factor applied to every control-plane rate (ListShards, DescribeStream, ...; AWS: 1.0).
    pub control_plane_scale: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_bytes_per_shard: 2 * MIB,
            reads_per_shard: 5,
            write_bytes_per_shard: MIB,
            write_records_per_shard: 1000,
            control_plane_scale: 1.0,
        }
    }
}

/// GetShardIterator calls per shard per second (AWS: 5; not scalable).
pub(crate) const GET_SHARD_ITERATOR_PER_SHARD: f64 = 5.0;

impl Limits {
    /// Checks that every value is positive (and the scale finite).
    pub(crate) fn validate(&self) -> Result<(), LimitsError> {
        let invalid = |name: &'static str, value: String| Err(LimitsError::InvalidLimit { name, value });
        if self.read_bytes_per_shard == 0 {
            return invalid("read_bytes_per_shard", "0".into());
        }
        if self.reads_per_shard == 0 {
            return invalid("reads_per_shard", "0".into());
        }
        if self.write_bytes_per_shard == 0 {
            return invalid("write_bytes_per_shard", "0".into());
        }
        if self.write_records_per_shard == 0 {
            return invalid("write_records_per_shard", "0".into());
        }
        if !(self.control_plane_scale.is_finite() && self.control_plane_scale > 0.0) {
            return invalid("control_plane_scale", self.control_plane_scale.to_string());
        }
        Ok(())
    }
}

/// What a control-plane limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole account (the proxy serves one).
    Account,
    /// Each stream.
    Stream,
    /// Each (consumer, shard) pair.
    ConsumerShard,
}

/// A control-plane operation's limit at scale 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ControlLimit {
    /// Calls per second.
    pub(crate) rate: f64,
    /// Calls that may come at once.
    pub(crate) burst: f64,
    /// What the limit is counted per.
    pub(crate) scope: Scope,
}

/// AWS's published limit of a control-plane operation, or `None` if the proxy does not limit it.
pub(crate) fn control_limit(operation: &str) -> Option<ControlLimit> {
    let per_second = |rate: f64, scope| Some(ControlLimit { rate, burst: rate, scope });
    match operation {
        "ListShards" => per_second(1000.0, Scope::Stream),
        "DescribeStreamSummary" => per_second(20.0, Scope::Account),
        "DescribeStream" => per_second(10.0, Scope::Account),
        "ListStreams" => per_second(5.0, Scope::Account),
        "RegisterStreamConsumer" => per_second(5.0, Scope::Account),
        "DeregisterStreamConsumer" => per_second(5.0, Scope::Account),
        "DescribeStreamConsumer" => per_second(20.0, Scope::Account),
        "ListStreamConsumers" => per_second(5.0, Scope::Stream),
        "SubscribeToShard" => Some(ControlLimit { rate: 0.2, burst: 1.0, scope: Scope::ConsumerShard }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_published_aws_limits() {
        let limits = Limits::default();
        assert_eq!(limits.read_bytes_per_shard, 2 * 1024 * 1024);
        assert_eq!(limits.reads_per_shard, 5);
        assert_eq!(limits.write_bytes_per_shard, 1024 * 1024);
        assert_eq!(limits.write_records_per_shard, 1000);
        assert_eq!(limits.control_plane_scale, 1.0);
        assert!(limits.validate().is_ok());
    }

    #[test]
    fn a_zero_limit_is_rejected_by_name() {
        let limits = Limits { reads_per_shard: 0, ..Limits::default() };
        let err = limits.validate().expect_err("zero reads per shard accepted");
        assert!(err.to_string().contains("reads_per_shard"), "{err}");
        let limits = Limits { control_plane_scale: f64::NAN, ..Limits::default() };
        assert!(limits.validate().is_err());
    }

    #[test]
    fn subscribe_to_shard_allows_one_call_per_five_seconds_per_consumer_and_shard() {
        let limit = control_limit("SubscribeToShard").expect("limited");
        assert_eq!((limit.rate, limit.burst, limit.scope), (0.2, 1.0, Scope::ConsumerShard));
        assert_eq!(control_limit("ListShards").map(|l| l.scope), Some(Scope::Stream));
        assert_eq!(control_limit("CreateStream"), None);
    }
}
