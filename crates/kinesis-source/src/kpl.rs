//! De-aggregation of records written by the Kinesis Producer Library (KPL).
//!
//! An aggregated record is the magic bytes `F3 89 9A C2`, a protobuf `AggregatedRecord`, and the
//! MD5 digest of the protobuf bytes. Each sub-record becomes its own record with the aggregate's
//! sequence number and its index as sub-sequence number. A record with the magic bytes but a
//! wrong digest or an unreadable message is passed on whole, as KCL does.

use md5::{Digest, Md5};
use prost::Message;
use rill_kinesis_common::{hash_key_of_partition_key, parse_explicit_hash_key};

use crate::record::RawRecord;

/// The four bytes every KPL-aggregated record starts with.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// The KPL's `AggregatedRecord` protobuf message.
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    /// Partition keys, referenced by index.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// Explicit hash keys, referenced by index.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The sub-records.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<AggregatedEntry>,
}

/// One sub-record of an [`AggregatedRecord`] (the KPL's `Record` message).
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedEntry {
    /// Index into `partition_key_table`.
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    /// Index into `explicit_hash_key_table`.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// The payload.
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
    /// Tags (unused by the source).
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<AggregatedTag>,
}

/// A KPL tag.
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedTag {
    /// Tag key.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Tag value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// Encodes an aggregate as the KPL writes it: magic, message, MD5 of the message.
pub fn encode_aggregated(record: &AggregatedRecord) -> Vec<u8> {
    let body = record.encode_to_vec();
    let digest = Md5::digest(&body);
    let mut out = Vec::with_capacity(KPL_MAGIC.len() + body.len() + DIGEST_LEN);
    out.extend_from_slice(&KPL_MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&digest);
    out
}

/// The aggregate inside `data`, if `data` is a well-formed KPL aggregate.
pub fn decode_aggregated(data: &[u8]) -> Option<AggregatedRecord> {
    if data.len() < KPL_MAGIC.len() + DIGEST_LEN || data[..KPL_MAGIC.len()] != KPL_MAGIC {
        return None;
    }
    let body = &data[KPL_MAGIC.len()..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    let aggregate = AggregatedRecord::decode(body).ok()?;
    let keys = aggregate.partition_key_table.len() as u64;
    if aggregate.records.iter().any(|r| r.partition_key_index >= keys) {
        return None;
    }
    Some(aggregate)
}

/// The hash key a sub-record maps to: its explicit hash key if it has one, else the MD5 of its
/// partition key read as a big-endian 128-bit number (how Kinesis maps partition keys).
pub fn sub_record_hash_key(aggregate: &AggregatedRecord, entry: &AggregatedEntry) -> Option<u128> {
    if let Some(index) = entry.explicit_hash_key_index {
        return aggregate.explicit_hash_key_table.get(index as usize).and_then(|k| parse_explicit_hash_key(k));
    }
    let key = aggregate.partition_key_table.get(entry.partition_key_index as usize)?;
    Some(hash_key_of_partition_key(key))
}

/// Appends the records held by one Kinesis record to `out`: its sub-records if it is a KPL
/// aggregate, else itself. Sub-records at or before `skip_through` (a sub-sequence number
/// already emitted before a restore) are dropped, and so are sub-records whose hash key falls
/// outside the shard's `hash_range` (inclusive), as KCL and Flink do: after a reshard the KPL
/// re-sends them to the shard that owns their key, where they are read. Returns how many were
/// dropped for their hash key.
pub(crate) fn deaggregate_into(
    data: Vec<u8>,
    partition_key: String,
    sequence_number: String,
    arrival_ms: Option<i64>,
    skip_through: Option<u64>,
    hash_range: (u128, u128),
    out: &mut Vec<RawRecord>,
) -> usize {
    let Some(aggregate) = decode_aggregated(&data) else {
        if skip_through.is_none() {
            out.push(RawRecord { data, partition_key, sequence_number, sub_sequence: None, arrival_ms });
        }
        return 0;
    };
    let in_range: Vec<bool> = aggregate
        .records
        .iter()
        .map(|e| sub_record_hash_key(&aggregate, e).is_none_or(|h| h >= hash_range.0 && h <= hash_range.1))
        .collect();
    let AggregatedRecord { partition_key_table, records, .. } = aggregate;
    let mut dropped = 0;
    for (index, entry) in records.into_iter().enumerate() {
        let sub = index as u64;
        if skip_through.is_some_and(|s| sub <= s) {
            continue;
        }
        if !in_range[index] {
            dropped += 1;
            continue;
        }
        let key = partition_key_table.get(entry.partition_key_index as usize).cloned().unwrap_or_default();
        out.push(RawRecord {
            data: entry.data,
            partition_key: key,
            sequence_number: sequence_number.clone(),
            sub_sequence: Some(sub),
            arrival_ms,
        });
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aggregate(n: usize) -> Vec<u8> {
        encode_aggregated(&AggregatedRecord {
            partition_key_table: vec!["a".into(), "b".into()],
            explicit_hash_key_table: vec![],
            records: (0..n)
                .map(|i| AggregatedEntry {
                    partition_key_index: (i % 2) as u64,
                    explicit_hash_key_index: None,
                    data: format!("sub-{i}").into_bytes(),
                    tags: vec![],
                })
                .collect(),
        })
    }

    fn deaggregate(data: Vec<u8>, skip: Option<u64>) -> Vec<RawRecord> {
        let mut out = Vec::new();
        deaggregate_into(data, "outer".into(), "49".into(), Some(7), skip, (0, u128::MAX), &mut out);
        out
    }

    #[test]
    fn sub_records_outside_the_shards_hash_range_are_dropped() {
        let half = 1u128 << 127;
        let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
        let aggregate = encode_aggregated(&AggregatedRecord {
            partition_key_table: keys.clone(),
            explicit_hash_key_table: vec!["0".into()],
            records: (0..keys.len())
                .map(|i| AggregatedEntry {
                    partition_key_index: i as u64,
                    explicit_hash_key_index: (i == 0).then_some(0),
                    data: format!("sub-{i}").into_bytes(),
                    tags: vec![],
                })
                .collect(),
        });
        let mut lower = Vec::new();
        let dropped =
            deaggregate_into(aggregate.clone(), "o".into(), "1".into(), None, None, (0, half - 1), &mut lower);
        let mut upper = Vec::new();
        deaggregate_into(aggregate, "o".into(), "1".into(), None, None, (half, u128::MAX), &mut upper);
        assert_eq!(lower.len() + upper.len(), keys.len(), "each sub-record is read from exactly one half");
        assert_eq!(dropped, upper.len());
        assert!(!upper.is_empty() && lower.len() > 1);
        assert_eq!(lower[0].partition_key, "key-0", "the explicit hash key 0 puts key-0 in the lower half");
        assert!(upper.iter().all(|r| hash_key_of_partition_key(&r.partition_key) >= half));
        assert!(lower[1..].iter().all(|r| hash_key_of_partition_key(&r.partition_key) < half));
    }

    #[test]
    fn an_aggregate_yields_its_sub_records_with_sub_sequence_numbers() {
        let out = deaggregate(aggregate(3), None);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].data, b"sub-2");
        assert_eq!(out[1].partition_key, "b");
        assert_eq!(out[2].sub_sequence, Some(2));
        assert!(out.iter().all(|r| r.sequence_number == "49" && r.arrival_ms == Some(7)));
    }

    #[test]
    fn sub_records_already_emitted_are_skipped_on_resume() {
        let out = deaggregate(aggregate(4), Some(1));
        let subs: Vec<Option<u64>> = out.iter().map(|r| r.sub_sequence).collect();
        assert_eq!(subs, vec![Some(2), Some(3)]);
    }

    #[test]
    fn a_plain_record_passes_through_whole() {
        let out = deaggregate(b"plain".to_vec(), None);
        assert_eq!(
            out,
            vec![RawRecord {
                data: b"plain".to_vec(),
                partition_key: "outer".into(),
                sequence_number: "49".into(),
                sub_sequence: None,
                arrival_ms: Some(7),
            }]
        );
    }

    #[test]
    fn a_wrong_digest_or_a_bad_message_is_treated_as_a_plain_record() {
        let mut corrupt = aggregate(2);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert_eq!(deaggregate(corrupt, None)[0].sub_sequence, None);
        let mut garbage = KPL_MAGIC.to_vec();
        garbage.extend_from_slice(&[0xff; 8]);
        garbage.extend_from_slice(&Md5::digest([0xffu8; 8]));
        assert_eq!(deaggregate(garbage, None).len(), 1);
    }

    #[test]
    fn a_partition_key_index_out_of_range_is_not_an_aggregate() {
        let bad = encode_aggregated(&AggregatedRecord {
            partition_key_table: vec![],
            explicit_hash_key_table: vec![],
            records: vec![AggregatedEntry {
                partition_key_index: 3,
                explicit_hash_key_index: None,
                data: vec![],
                tags: vec![],
            }],
        });
        assert!(decode_aggregated(&bad).is_none());
    }
}
