//! A keyed process function keyed by a batch key selector (`KeyedProcessFactory::batched`, what
//! `KeyedStream::process` uses): the same results as a per-record selector, and a selector that
//! does not give one key per record fails the operator instead of pairing records with wrong keys.

use std::sync::Arc;

use rill_operators::{KeyedProcess, KeyedProcessFactory, RunningCount, StateRegistry};
use rill_runtime::{BatchKeys, OperatorHarness, OperatorResult};

type Harness<F> = OperatorHarness<u64, (u64, u64), KeyedProcess<u64, u64, F>>;

fn open(state: &mut StateRegistry<'_, u64>) -> OperatorResult<RunningCount> {
    RunningCount::open(state)
}

/// Counts `records` per key `n % 7`, in batches of `batch` records, with a batch key selector.
fn counted_in_batches(records: &[u64], batch: usize) -> Vec<(u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let keys: BatchKeys<u64, u64> =
        Arc::new(|batch: &[u64], keys: &mut Vec<u64>| keys.extend(batch.iter().map(|n| n % 7)));
    let mut h: Harness<_> = OperatorHarness::keyed(KeyedProcessFactory::batched(keys, open), dir.path()).unwrap();
    for chunk in records.chunks(batch) {
        h.process_all(chunk.to_vec()).unwrap();
    }
    h.take_output()
}

#[test]
fn a_batch_key_selector_counts_as_a_per_record_one_does() {
    let records: Vec<u64> = (0..5000).map(|n| n * 31 % 997).collect();
    let dir = tempfile::tempdir().unwrap();
    let per_record = KeyedProcessFactory::new(Arc::new(|n: &u64| n % 7), open);
    let mut h: Harness<_> = OperatorHarness::keyed(per_record, dir.path()).unwrap();
    for n in &records {
        h.process(*n).unwrap();
    }
    let expected = h.take_output();
    assert_eq!(expected.len(), records.len());
    assert_eq!(counted_in_batches(&records, 1024), expected);
    assert_eq!(counted_in_batches(&records, 1), expected);
}

#[test]
fn a_batch_key_selector_that_skips_a_record_fails_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let short: BatchKeys<u64, u64> = Arc::new(|batch: &[u64], keys: &mut Vec<u64>| keys.extend(batch.iter().skip(1)));
    let mut h: Harness<_> = OperatorHarness::keyed(KeyedProcessFactory::batched(short, open), dir.path()).unwrap();
    let error = h.process_all(vec![1, 2, 3]).unwrap_err().to_string();
    assert!(error.contains("gave 2 keys for a batch of 3 records"), "{error}");
    assert!(h.take_output().is_empty(), "no record was counted under another record's key");
}
