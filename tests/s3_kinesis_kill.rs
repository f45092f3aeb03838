//! Acceptance (issue 13): the Kinesis count with its checkpoints on S3 (moto) survives losing
//! its machine. `kinesis_count` reads a 2-shard kinesalite stream at a paced rate, is killed with
//! SIGKILL twice at random moments, each run on a new empty local directory, and a last run on yet another one
//! restores from S3 and finishes: the output objects on S3 count every record exactly once.
//!
//! Needs kinesalite and moto's server (`scripts/test.sh` starts both; a missing
//! `RILL_KINESALITE_ENDPOINT` or `RILL_S3_ENDPOINT` fails).

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rill_kinesis_common::test_utils::{create_stream, put_records, unique_stream_name, Emulator};
use support::s3::{bucket, download_output, s3_env};
use support::{assert_counts_exactly_once_by_name, kill_after, summary_field};

const RECORDS: usize = 30_000;
const KEYS: usize = 30;

fn kinesis_count(endpoint: &str, stream: &str, machine: &Path, location: &str, output: &str) -> Command {
    let mut cmd = Command::new(support::example("kinesis_count"));
    cmd.args(["--endpoint", endpoint, "--region", "us-east-1", "--stream", stream, "--parallelism", "2"])
        .args(["--checkpoint-interval-ms", "200", "--initial-position", "TRIM_HORIZON", "--idle-exit-ms", "3000"])
        // About 100 bytes a record: some 2,000 records/s per shard, so the input lasts ~7 s.
        .args(["--read-bytes-per-shard", "200000"])
        .arg("--dir")
        .arg(machine)
        .args(["--checkpoint-location", location, "--output", output]);
    s3_env(&mut cmd);
    cmd
}

#[test]
fn a_kinesis_count_killed_on_two_machines_finishes_on_a_third_from_s3_exactly_once() {
    let endpoint = Emulator::Kinesalite.endpoint().expect("RILL_KINESALITE_ENDPOINT is required for this test");
    let stream = unique_stream_name("s3-kill");
    let records: Vec<(String, Vec<u8>)> = (0..RECORDS)
        .map(|i| {
            let key = format!("k{}", i % KEYS);
            let mut data = format!("{key}:{i}:").into_bytes();
            data.resize(100, b'.');
            (key, data)
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let client = Emulator::Kinesalite.connection_builder()?.build()?.client().await?;
        create_stream(&client, &stream, 2).await?;
        put_records(&client, &stream, &records).await
    })
    .unwrap();
    let bucket = bucket("kinesis-kill");
    let location = format!("s3://{bucket}/kinesis-count");
    let output = format!("s3://{bucket}/output");

    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..2 {
        let delay_ms = rng.random_range(1500..3000);
        let machine = tempfile::tempdir().unwrap();
        let child = kinesis_count(&endpoint, &stream, machine.path(), &location, &output)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(!kill_after(child, Duration::from_millis(delay_ms)), "the run finished before it was killed");
    }
    let machine = tempfile::tempdir().unwrap();
    let out = kinesis_count(&endpoint, &stream, machine.path(), &location, &output).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(summary_field(&out, "restored_from"), "none", "the last run resumes from S3");
    let mut expected: HashMap<String, u64> = HashMap::new();
    for (key, _) in &records {
        *expected.entry(key.clone()).or_default() += 1;
    }
    let downloaded = tempfile::tempdir().unwrap();
    download_output(&bucket, "output/", downloaded.path());
    assert_counts_exactly_once_by_name(&downloaded.path().join("output"), &expected);
}
