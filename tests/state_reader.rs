//! Reading a job's keyed state from its checkpoint with the job's own types: the `dump_counts`
//! example on a stopped `keyed_count` gives, for every key, the count its committed output last
//! reached.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use support::{committed_lines, counts_by_key, free_addr, sigterm, wait_for_json, KeyedCount};

#[test]
fn the_dump_of_a_stopped_jobs_checkpoint_gives_each_keys_last_committed_count() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let job = KeyedCount {
        records: 5_000_000,
        keys: 97,
        parallelism: 3,
        interval_ms: 300,
        rate: Some(200_000),
        extra: vec!["--metrics-addr".into(), addr.clone()],
    };
    let child = job.spawn(dir.path());
    wait_for_json(&addr, "/api/job", Duration::from_secs(60), |j| j["checkpoints_completed"].as_u64() >= Some(2));
    sigterm(&child);
    assert!(child.wait_with_output().unwrap().status.success());

    let dump = Command::new(support::example("dump_counts")).arg("--dir").arg(dir.path()).output().unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dumped: BTreeMap<u64, u64> = String::from_utf8_lossy(&dump.stdout)
        .lines()
        .map(|l| {
            let (k, c) = l.split_once('\t').expect("key<TAB>count");
            (k.parse().unwrap(), c.parse().unwrap())
        })
        .collect();
    let committed: BTreeMap<u64, u64> =
        counts_by_key(&committed_lines(dir.path())).into_iter().map(|(k, counts)| (k, counts.len() as u64)).collect();
    assert_eq!(dumped.len(), 97);
    assert_eq!(dumped, committed);
}

#[test]
fn reading_the_state_with_the_wrong_types_names_the_state() {
    let dir = tempfile::tempdir().unwrap();
    KeyedCount { records: 1_000, keys: 5, parallelism: 1, interval_ms: 0, rate: None, extra: vec![] }.run(dir.path());
    let reader = rill::state::CheckpointReader::open(dir.path().join("checkpoints"), None).unwrap();
    let error = reader.values::<String, u64>("counts/count").unwrap_err();
    assert!(error.to_string().contains("'counts/count'"), "{error}");
    assert!(reader.values::<u64, u64>("counts/count").unwrap().len() == 5);
}
