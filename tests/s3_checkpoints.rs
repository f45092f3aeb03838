//! Acceptance (issue 13): checkpoints on S3 outlive the machine. `keyed_count` keeps its
//! checkpoints and its output in a bucket of moto's S3 server and is killed with SIGKILL again
//! and again, each run on "another machine" (a new, empty local directory); the last run, at
//! another parallelism, restores from S3 and the committed output objects count every record
//! exactly once. Faults injected in front of S3 fail checkpoints, never the job.
//!
//! Needs moto's server (`scripts/test.sh` starts it; a missing `RILL_S3_ENDPOINT` fails). In
//! the fault test the output goes to a local directory, so that only checkpoint uploads meet
//! the faults.

mod support;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::s3::{bucket, download_output, endpoint, object_keys, s3_env, s3_env_at};
use support::s3_faults::{Fault, S3FaultProxy};
use support::{assert_exactly_once, kill_after, summary_field, KeyedCount};

/// At 150,000 records/s, about 8 s of input: four runs killed within 1.5 s each leave some.
const RECORDS: u64 = 1_200_000;

fn job(parallelism: usize, location: &str, output: &std::path::Path) -> KeyedCount {
    job_to(parallelism, location, &output.join("output").display().to_string())
}

fn job_to(parallelism: usize, location: &str, output: &str) -> KeyedCount {
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
            output.into(),
        ],
    }
}

#[test]
fn killed_runs_on_new_machines_resume_from_s3_and_commit_to_s3_every_record_exactly_once() {
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bucket = bucket("killed");
    let location = format!("s3://{bucket}/jobs/count");
    let output = format!("s3://{bucket}/output/counts");
    let mut kills = 0;
    for _ in 0..4 {
        let machine = tempfile::tempdir().unwrap();
        let mut cmd = job_to(2, &location, &output).command(machine.path());
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
    let mut cmd = job_to(3, &location, &output).command(machine.path());
    let out = s3_env(&mut cmd).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(summary_field(&out, "restored_from"), "none", "the last run resumes from a checkpoint on S3");
    assert_ne!(summary_field(&out, "uploaded_bytes"), "0");
    let downloaded = tempfile::tempdir().unwrap();
    download_output(&bucket, "output/counts/", downloaded.path());
    assert_exactly_once(downloaded.path(), RECORDS, 97);
    let left = object_keys(&bucket, "output/counts/_in-progress/");
    assert!(left.is_empty(), "every upload of the killed runs was completed or aborted: {left:?}");
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
    assert!(stderr.contains(&format!("endpoint {}, region us-east-1", endpoint())), "names where it went: {stderr}");
}

#[test]
fn s3_faults_during_uploads_fail_checkpoints_not_the_job_and_the_output_stays_exactly_once() {
    let bucket = bucket("faults");
    let location = format!("s3://{bucket}/job");
    let proxy = S3FaultProxy::start(&endpoint());
    let shared = tempfile::tempdir().unwrap();
    let machine = tempfile::tempdir().unwrap();
    let mut job = job(2, &location, shared.path());
    job.interval_ms = 200;
    // The object store client retries a 503 ten times, each after at least 100 ms: a slowed
    // upload gives up after a second or more. A timeout below that makes every checkpoint caught
    // in the slow-down expire (at 1500 ms, one whose retries ended in 1.44 s was declined instead).
    job.extra.extend(["--checkpoint-timeout-ms", "800", "--tolerable-checkpoint-failures", "1000"].map(String::from));
    let mut cmd = job.command(machine.path());
    s3_env_at(&mut cmd, &proxy.endpoint).env("RUST_LOG", "warn");
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // S3 slows down (503, retried by the client until the checkpoint times out), recovers, then
    // refuses uploads (403, not retried: the checkpoint is declined), and recovers again.
    for (fault, ms) in [(Fault::None, 1500), (Fault::SlowDown, 2500), (Fault::None, 1000), (Fault::Deny, 1000)] {
        proxy.set(fault);
        std::thread::sleep(Duration::from_millis(ms));
    }
    proxy.set(Fault::None);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    let abandoned: Vec<&str> = stderr.lines().filter(|l| l.contains("abandoned")).collect();
    eprintln!(
        "{} faults injected; {} checkpoints abandoned:\n{}",
        proxy.injected(),
        abandoned.len(),
        abandoned.join("\n")
    );
    assert!(proxy.injected() > 0, "faults were injected");
    assert_eq!(summary_field(&out, "restarts"), "0", "the job never failed over: {stderr}");
    assert!(stderr.contains("expired"), "a checkpoint slowed down by S3 expired: {stderr}");
    assert!(
        stderr.contains("declined") && stderr.contains("AccessDenied"),
        "a refused upload declined a checkpoint: {stderr}"
    );
    assert_exactly_once(shared.path(), RECORDS, 97);
    // Another machine restores the final checkpoint, uploaded after the faults.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = job.command(elsewhere.path());
    let again = s3_env(&mut cmd).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_ne!(summary_field(&again, "restored_from"), "none");
    assert_exactly_once(shared.path(), RECORDS, 97);
}

#[test]
fn an_s3_outage_while_restoring_is_retried_under_the_restart_strategy_not_fatal() {
    let bucket = bucket("restore-outage");
    let location = format!("s3://{bucket}/job");
    let proxy = S3FaultProxy::start(&endpoint());
    let shared = tempfile::tempdir().unwrap();
    let machine = tempfile::tempdir().unwrap();
    let mut job = job(2, &location, shared.path());
    job.extra.extend(["--restart-strategy", "fixed-delay:100:100"].map(String::from));
    // S3 refuses everything from the start: listing the checkpoints to restore fails.
    proxy.set(Fault::DenyAll);
    let mut cmd = job.command(machine.path());
    s3_env_at(&mut cmd, &proxy.endpoint).env("RUST_LOG", "warn");
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let refused = proxy.injected();
    proxy.set(Fault::None);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(refused > 0, "S3 refused requests while the job started");
    assert!(out.status.success(), "the job outlived the outage: {stderr}");
    assert!(summary_field(&out, "restarts").parse::<u64>().unwrap() > 0, "the restore failures were restarts");
    assert!(stderr.contains("AccessDenied"), "each failed restore was reported: {stderr}");
    assert_exactly_once(shared.path(), RECORDS, 97);
}

/// The SST files a manifest names: file name, size and CRC-32, with the object holding it.
fn sst_objects(manifest: &str) -> Vec<((String, u64, u64), String)> {
    let body: serde_json::Value = serde_json::from_str(manifest.split_once('\n').unwrap().1).unwrap();
    let mut out = Vec::new();
    for vertex in body["vertices"].as_array().unwrap() {
        for subtask in vertex["subtasks"].as_array().unwrap() {
            for file in subtask["files"].as_array().unwrap() {
                let path = file["path"].as_str().unwrap();
                if path.ends_with(".sst") {
                    let name = path.rsplit('/').next().unwrap().to_string();
                    let key = (name, file["size"].as_u64().unwrap(), file["crc32"].as_u64().unwrap());
                    out.push((key, file["object"].as_str().unwrap().to_string()));
                }
            }
        }
    }
    out
}

/// The bucket's `job/` prefix, read as the jobs read it (moto refuses anonymous reads).
fn job_location(bucket: &str) -> rill::storage::RemoteLocation {
    // The test's own process reaches S3 as the jobs do (constant values, set once).
    std::env::set_var("AWS_ENDPOINT_URL_S3", endpoint());
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");
    rill::storage::RemoteLocation::s3(&format!("s3://{bucket}/job")).unwrap()
}

/// Every manifest in the location (an abort marker in a manifest's slot is none), by id.
fn manifests(job: &rill::storage::RemoteLocation) -> std::collections::BTreeMap<u64, String> {
    let keys = job.list("").unwrap().into_iter().filter(|k| k.ends_with("/_manifest"));
    let read = |key: String| -> Option<(u64, String)> {
        let id = key.trim_start_matches("retired/").strip_prefix("chk-")?[..10].parse().ok()?;
        let text = String::from_utf8(job.read(&key).ok()??).ok()?;
        text.starts_with("rill-manifest").then_some((id, text))
    };
    keys.filter_map(read).collect()
}

#[test]
fn a_restart_after_kill_9_names_unchanged_files_again_and_sweeps_what_no_checkpoint_names() {
    let bucket = bucket("incremental");
    let location = format!("s3://{bucket}/job");
    // A million keys: a state of about 10 MB.
    let job = KeyedCount {
        records: 3_000_000,
        keys: 1_000_000,
        parallelism: 2,
        interval_ms: 500,
        rate: Some(500_000),
        extra: ["--emit", "none", "--checkpoint-location", &location].map(String::from).to_vec(),
    };
    let machine = tempfile::tempdir().unwrap();
    let mut cmd = job.command(machine.path());
    let mut first =
        s3_env(&mut cmd).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !object_keys(&bucket, "job/chk-0000000003/").iter().any(|k| k.ends_with("/_manifest")) {
        assert!(std::time::Instant::now() < deadline, "no third checkpoint within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let job_objects = job_location(&bucket);
    let (restored, restored_manifest) = manifests(&job_objects).pop_last().expect("a complete checkpoint");
    // What a killed run's upload leaves: an object no manifest names.
    let planted = format!("{}/{bucket}/job/shared/killed-run-v1-0/000042.sst", endpoint());
    assert!(reqwest::blocking::Client::new().put(&planted).body("sst").send().unwrap().status().is_success());

    // The restart, on another machine, at a tenth of the pace: its first checkpoint comes soon.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = KeyedCount { rate: Some(100_000), records: 1_600_000, ..job }.command(elsewhere.path());
    let second = s3_env(&mut cmd)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (next, next_manifest) = loop {
        if let Some((id, manifest)) = manifests(&job_objects).pop_last().filter(|(id, _)| *id > restored) {
            break (id, manifest);
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint after the restart within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(summary_field(&out, "restored_from"), restored.to_string());

    // Every SST file the restart's first checkpoint shares with the restored one (same name, size
    // and CRC: RocksDB kept it) is named by its old object, not uploaded again.
    let old: std::collections::HashMap<_, _> = sst_objects(&restored_manifest).into_iter().collect();
    let new = sst_objects(&next_manifest);
    let shared: Vec<_> = new.iter().filter(|(key, _)| old.contains_key(key)).collect();
    for (key, object) in &shared {
        assert_eq!(object, &old[key], "{key:?} was uploaded again");
    }
    let line = stderr.lines().find(|l| l.contains("checkpoint complete")).expect("a checkpoint completed");
    eprintln!(
        "checkpoint {next} after restoring {restored}: {} of {} SST files unchanged and named again; {line}",
        shared.len(),
        new.len()
    );

    let manifests: String = manifests(&job_objects).into_values().collect();
    let shared_objects = object_keys(&bucket, "job/shared/");
    assert!(!shared_objects.iter().any(|k| k.contains("killed-run")), "the planted orphan was swept");
    for object in shared_objects {
        let name = object.trim_start_matches("job/");
        assert!(
            manifests.contains(&format!("\"{name}\"")),
            "{name} is named by no manifest: it should have been swept"
        );
    }
}

#[test]
fn restoring_an_older_savepoint_moves_later_object_output_aside_and_the_output_stays_exactly_once() {
    let bucket = bucket("rollback");
    let location = format!("s3://{bucket}/job");
    let output = format!("s3://{bucket}/output/counts");
    let addr = support::free_addr();
    let mut job = job_to(2, &location, &output);
    job.extra.extend(["--metrics-addr".to_string(), addr.clone()]);
    let machine = tempfile::tempdir().unwrap();
    let mut cmd = job.command(machine.path());
    let child =
        s3_env(&mut cmd).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    support::wait_for_json(&addr, "/api/job", Duration::from_secs(60), |j| {
        j["checkpoints_completed"].as_u64() >= Some(2)
    });
    let savepoint = support::take_savepoint(&addr);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The finished job's savepoint, restored: what was committed after it is produced again.
    let again = job_to(3, &location, &output);
    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = again.command(elsewhere.path());
    cmd.args(["--restore-from", &savepoint.to_string()]);
    let out = s3_env(&mut cmd).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary_field(&out, "restored_from"), savepoint.to_string());
    let downloaded = tempfile::tempdir().unwrap();
    download_output(&bucket, "output/counts/", downloaded.path());
    assert_exactly_once(downloaded.path(), RECORDS, 97);
    assert!(!object_keys(&bucket, "output/counts/_rolled-back/").is_empty(), "later output was moved aside");
}

#[test]
fn a_second_job_writing_to_the_same_output_location_is_refused_and_the_first_stays_exactly_once() {
    let bucket = bucket("owner");
    let output = format!("s3://{bucket}/output/counts");
    let addr = support::free_addr();
    let mut first = job_to(2, &format!("s3://{bucket}/first"), &output);
    first.extra.extend(["--metrics-addr".to_string(), addr.clone()]);
    let machine = tempfile::tempdir().unwrap();
    let mut cmd = first.command(machine.path());
    let child =
        s3_env(&mut cmd).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    support::wait_for_json(&addr, "/api/job", Duration::from_secs(60), |j| {
        j["checkpoints_completed"].as_u64() >= Some(1)
    });

    // Another job, with its own checkpoints, given the same output by mistake.
    let second = job_to(2, &format!("s3://{bucket}/second"), &output);
    let other_machine = tempfile::tempdir().unwrap();
    let mut cmd = second.command(other_machine.path());
    let refused = s3_env(&mut cmd).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the second job ran: {stderr}");
    assert!(stderr.contains("is the output of another job"), "{stderr}");
    assert!(stderr.contains(&format!("{output}/_owner")), "the error says what to delete: {stderr}");

    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let downloaded = tempfile::tempdir().unwrap();
    download_output(&bucket, "output/counts/", downloaded.path());
    assert_exactly_once(downloaded.path(), RECORDS, 97);
}
