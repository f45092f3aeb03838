//! Acceptance (issue 26): two runs of one job on one S3 checkpoint location, as in a rolling
//! update that starts the new pod before it stops the old one. The newer run claims the
//! location; the older one is fenced off at its next checkpoint and commits nothing more; the
//! output objects count every record exactly once and every checkpoint left in the bucket is
//! either complete and intact or incomplete, never corrupt.
//!
//! Needs moto's server (`scripts/test.sh` starts it; a missing `RILL_S3_ENDPOINT` fails).

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill::state::decisions::{check_checkpoint, CheckpointCheck};
use rill::state::{CheckpointStore, FsCheckpointStore, RemoteCheckpointStore};
use rill::storage::RemoteLocation;
use support::s3::{bucket, download_output, endpoint, object_keys, s3_env};
use support::{assert_exactly_once, summary_field, KeyedCount};

/// At 150,000 records/s, about 8 s of input: the older run is still running when the newer starts.
const RECORDS: u64 = 1_200_000;

fn job(parallelism: usize, location: &str, output: &str) -> KeyedCount {
    KeyedCount {
        records: RECORDS,
        keys: 97,
        parallelism,
        interval_ms: 100,
        rate: Some(150_000),
        extra: ["--checkpoint-location", location, "--output", output].map(String::from).to_vec(),
    }
}

/// Waits until a complete checkpoint of the older run is in the bucket.
fn wait_for_a_manifest(bucket: &str, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !object_keys(bucket, prefix).iter().any(|k| k.ends_with("/_manifest")) {
        assert!(Instant::now() < deadline, "no checkpoint completed within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_run_on_the_same_s3_location_fences_the_first_and_the_output_stays_exactly_once() {
    let bucket = bucket("fenced");
    let location = format!("s3://{bucket}/jobs/count");
    let output = format!("s3://{bucket}/output/counts");
    let (old_machine, new_machine) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old_log = old_machine.path().join("stderr.log");
    let mut cmd = job(2, &location, &output).command(old_machine.path());
    let mut old =
        s3_env(&mut cmd).stdout(Stdio::null()).stderr(std::fs::File::create(&old_log).unwrap()).spawn().unwrap();
    wait_for_a_manifest(&bucket, "jobs/count/chk-");

    let started = Instant::now();
    let mut cmd = job(3, &location, &output).command(new_machine.path());
    let new = s3_env(&mut cmd).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let old_status = loop {
        if let Some(status) = old.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            old.kill().unwrap();
            panic!("the older run was not stopped within 60 s of the newer run's start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let old_stderr = std::fs::read_to_string(&old_log).unwrap();
    eprintln!("the older run exited {:.1} s after the newer one started", started.elapsed().as_secs_f64());
    eprintln!("its error: {}", old_stderr.lines().find(|l| l.contains("fenced")).unwrap_or(""));
    assert!(!old_status.success(), "the older run must not finish: {old_stderr}");
    assert!(old_stderr.contains("fenced"), "the older run says it was fenced: {old_stderr}");

    let out = new.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(summary_field(&out, "restored_from"), "none", "the newer run resumes the older one's checkpoint");
    let downloaded = tempfile::tempdir().unwrap();
    download_output(&bucket, "output/counts/", downloaded.path());
    assert_exactly_once(downloaded.path(), RECORDS, 97);
    every_checkpoint_in_the_bucket_is_complete_and_intact_or_incomplete(&location);
}

fn every_checkpoint_in_the_bucket_is_complete_and_intact_or_incomplete(location: &str) {
    // The test's own process reads the bucket as the jobs do (constant values, set once).
    std::env::set_var("AWS_ENDPOINT_URL_S3", endpoint());
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");
    let local = tempfile::tempdir().unwrap();
    let remote = Arc::new(RemoteLocation::s3(location).unwrap());
    let store = RemoteCheckpointStore::new(FsCheckpointStore::new(local.path()).unwrap(), remote);
    let ids = store.list().unwrap();
    assert!(!ids.is_empty());
    let mut complete = 0;
    for id in ids {
        match check_checkpoint(&store, id).unwrap() {
            CheckpointCheck::Complete(_) => complete += 1,
            CheckpointCheck::Incomplete => {}
            CheckpointCheck::Corrupt(reason) => panic!("checkpoint {id} is corrupt: {reason}"),
        }
    }
    assert!(complete > 0, "the newer run's checkpoints are complete");
}
