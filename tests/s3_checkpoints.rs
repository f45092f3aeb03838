//! Acceptance (issue 13): checkpoints on S3 outlive the machine. `keyed_count` keeps its
//! checkpoints in a bucket of moto's S3 server and is killed with SIGKILL again and again, each
//! run on "another machine" (a new, empty local directory); the last run, at another
//! parallelism, restores from S3 and the committed output counts every record exactly once.
//!
//! Needs moto's server (`scripts/test.sh` starts it; a missing `RILL_S3_ENDPOINT` fails). The
//! output goes to a directory that outlives the runs, standing in for shared storage.

mod support;

use std::process::Command;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::{assert_exactly_once, assert_no_hidden_files, kill_after, summary_field, KeyedCount};

fn endpoint() -> String {
    std::env::var("RILL_S3_ENDPOINT").expect("RILL_S3_ENDPOINT is required for this test (scripts/test.sh sets it)")
}

/// A new bucket on the S3 server, named after the test.
fn bucket(name: &str) -> String {
    let bucket = format!("{name}-{:08x}", rand::rng().random::<u32>());
    let response = reqwest::blocking::Client::new().put(format!("{}/{bucket}", endpoint())).send().unwrap();
    assert!(response.status().is_success(), "create bucket {bucket}: {}", response.status());
    bucket
}

/// The names of the objects under `prefix` in `bucket` (S3 ListObjectsV2).
fn object_keys(bucket: &str, prefix: &str) -> Vec<String> {
    let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", endpoint());
    let body = reqwest::blocking::get(url).unwrap().text().unwrap();
    body.split("<Key>").skip(1).filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string())).collect()
}

/// The S3 settings a job reads, as the AWS SDKs read them.
fn s3_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ENDPOINT_URL_S3", endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
}

/// At 150,000 records/s, about 8 s of input: four runs killed within 1.5 s each leave some.
const RECORDS: u64 = 1_200_000;

fn job(parallelism: usize, location: &str, output: &std::path::Path) -> KeyedCount {
    KeyedCount {
        records: RECORDS,
        keys: 97,
        parallelism,
        interval_ms: 100,
        rate: Some(150_000),
        extra: vec![
            "--cache-entries".into(),
            "20".into(),
            "--checkpoint-location".into(),
            location.into(),
            "--output".into(),
            output.join("output").display().to_string(),
        ],
    }
}

#[test]
fn killed_runs_on_new_machines_resume_from_s3_and_count_every_record_exactly_once() {
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bucket = bucket("killed");
    let location = format!("s3://{bucket}/jobs/count");
    let shared = tempfile::tempdir().unwrap();
    let mut kills = 0;
    for _ in 0..4 {
        let machine = tempfile::tempdir().unwrap();
        let mut cmd = job(2, &location, shared.path()).command(machine.path());
        let child = s3_env(&mut cmd).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        if !kill_after(child.spawn().unwrap(), Duration::from_millis(rng.random_range(500..1500))) {
            kills += 1;
        }
    }
    assert!(kills >= 3, "only {kills} of 4 runs were killed before they finished");
    assert!(
        object_keys(&bucket, "jobs/count/shared/").iter().any(|k| k.ends_with(".sst")),
        "SST files are uploaded under shared/"
    );
    let machine = tempfile::tempdir().unwrap();
    let mut cmd = job(3, &location, shared.path()).command(machine.path());
    let out = s3_env(&mut cmd).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(summary_field(&out, "restored_from"), "none", "the last run resumes from a checkpoint on S3");
    assert_ne!(summary_field(&out, "uploaded_bytes"), "0");
    assert_exactly_once(shared.path(), RECORDS, 97);
    assert_no_hidden_files(shared.path());
}

#[test]
fn a_bad_s3_location_fails_at_start_naming_it() {
    let machine = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let mut cmd = job(1, "s3:///no-bucket", shared.path()).command(machine.path());
    let out = s3_env(&mut cmd).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("s3:///no-bucket") && stderr.contains("no bucket"), "{stderr}");
}

#[test]
fn a_missing_bucket_fails_the_job_with_the_object_store_error_not_data_loss() {
    let machine = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let mut cmd = job(1, "s3://rill-no-such-bucket/x", shared.path()).command(machine.path());
    cmd.args(["--restart-strategy", "none"]);
    let out = s3_env(&mut cmd).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rill-no-such-bucket"), "{stderr}");
}
