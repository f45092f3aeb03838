//! A keyed process function takes its records' key groups from the batch the exchange routed to
//! it (`OperatorContext::key_groups`) instead of hashing each key again: the counts are the same as when
//! it hashes the keys itself, one record or a whole batch at a time, and the state it writes
//! under the given key groups is the state a restore at another parallelism finds.

use rill_operators::{KeyedProcess, KeyedProcessOperator, RunningCount, StateRegistry};
use rill_runtime::{KeySelector, OperatorHarness, OperatorResult};
use rill_state::key_group_of;

type Harness<F> = OperatorHarness<u64, (u64, u64), KeyedProcessOperator<u64, u64, F>>;

const MAX_PARALLELISM: u16 = 128;

fn open(state: &mut StateRegistry<'_, u64>) -> OperatorResult<RunningCount<u64>> {
    RunningCount::open(state)
}

/// How the function is opened in each subtask.
type Open = fn(&mut StateRegistry<'_, u64>) -> OperatorResult<RunningCount<u64>>;

fn factory() -> KeyedProcess<u64, u64, Open> {
    KeyedProcess::new(KeySelector::new(|n: &u64| n % 7919, MAX_PARALLELISM), open)
}

fn records() -> Vec<u64> {
    (0..20_000).map(|n| n * 31 % 99_991).collect()
}

fn key_groups(batch: &[u64]) -> Vec<u16> {
    batch.iter().map(|n| key_group_of(&(n % 7919), MAX_PARALLELISM)).collect()
}

#[test]
fn counts_are_the_same_with_key_groups_given_by_the_exchange_as_with_keys_hashed_by_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let mut one_by_one: Harness<_> = OperatorHarness::keyed(factory(), dir.path()).unwrap();
    for n in records() {
        one_by_one.process(n).unwrap();
    }
    let expected = one_by_one.take_output();
    assert_eq!(expected.len(), records().len());

    let mut hashed: Harness<_> = OperatorHarness::keyed(factory(), dir.path()).unwrap();
    let mut given: Harness<_> = OperatorHarness::keyed(factory(), dir.path()).unwrap();
    for chunk in records().chunks(1024) {
        hashed.process_all(chunk.to_vec()).unwrap();
        given.process_keyed(chunk.to_vec(), &key_groups(chunk)).unwrap();
    }
    assert_eq!(hashed.take_output(), expected);
    assert_eq!(given.take_output(), expected);
}

#[test]
fn state_written_under_given_key_groups_is_found_by_a_restore_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let records = records();
    let (first, second) = records.split_at(records.len() / 2);
    let mut h: Harness<_> = OperatorHarness::keyed(factory(), dir.path()).unwrap();
    for chunk in first.chunks(1024) {
        h.process_keyed(chunk.to_vec(), &key_groups(chunk)).unwrap();
    }
    h.take_output();
    let snapshot = h.snapshot(1).unwrap();

    // Two subtasks take over the key groups; each record goes to the owner of its key group.
    let mut counts = std::collections::BTreeMap::new();
    for subtask in 0..2 {
        let mut r: Harness<_> =
            OperatorHarness::restore_keyed(factory(), dir.path(), std::slice::from_ref(&snapshot), subtask, 2).unwrap();
        let mine: Vec<u64> = second
            .iter()
            .copied()
            .filter(|n| {
                rill_state::subtask_for_key_group(key_group_of(&(n % 7919), MAX_PARALLELISM), MAX_PARALLELISM, 2)
                    == subtask
            })
            .collect();
        for chunk in mine.chunks(1024) {
            r.process_keyed(chunk.to_vec(), &key_groups(chunk)).unwrap();
        }
        for (key, count) in r.take_output() {
            counts.insert(key, count);
        }
    }
    for (key, count) in counts {
        let seen = records.iter().filter(|n| *n % 7919 == key).count() as u64;
        assert_eq!(count, seen, "key {key}: counted across the restore");
    }
}
