//! The `clicks` example (JSON in from Kinesis; one keyed stream feeding per-user windows out to
//! Kinesis and a running total per user out to the file sink), killed with SIGKILL twice at other
//! parallelisms and finished: every user's totals are committed exactly once, and the window
//! counts in the output stream are the true ones (at least once: a window fired again after a
//! crash carries the same count).
//!
//! Needs kinesalite (`scripts/test.sh` starts it; a missing `RILL_KINESALITE_ENDPOINT` fails).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rill_kinesis_common::test_utils::{create_stream, put_records, read_all, unique_stream_name, Emulator};
use support::{assert_counts_exactly_once_by_name, committed_lines_in, example, summary_field};

const USERS: usize = 19;
const CLICKS: usize = 20_000;
const WINDOW_MS: i64 = 1_000;
const BASE_MS: i64 = 1_700_000_000_000;

/// Click `i`: user `i % USERS`, event time 2 ms apart, out of order by less than 300 ms.
fn click(i: usize) -> (String, i64) {
    let at = BASE_MS + 2 * i as i64 - ((i * 7919) % 300) as i64;
    (format!("user-{:02}", i % USERS), at)
}

fn clicks_command(endpoint: &str, input: &str, output: &str, dir: &Path, parallelism: usize) -> Command {
    let mut cmd = Command::new(example("clicks"));
    cmd.args(["--endpoint", endpoint, "--source-stream", input, "--sink-stream", output])
        .arg("--dir")
        .arg(dir)
        .args(["--window-ms", &WINDOW_MS.to_string(), "--out-of-orderness-ms", "400"])
        .args(["--parallelism", &parallelism.to_string(), "--checkpoint-interval-ms", "200"])
        .args(["--idle-exit-ms", "2000"]);
    cmd
}

/// Runs until `lines` totals are committed, then kills the process with SIGKILL.
fn kill_once_committed(mut cmd: Command, dir: &Path, lines: usize) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn clicks");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let committed = dir.join("totals").exists().then(|| committed_lines_in(&dir.join("totals")).len());
        if committed.unwrap_or(0) >= lines {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "clicks finished before the kill");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().unwrap();
}

#[test]
fn the_clicks_job_killed_twice_keeps_totals_exactly_once_and_windows_true() {
    let emulator = Emulator::Kinesalite;
    let endpoint = emulator.endpoint().expect("RILL_KINESALITE_ENDPOINT is required for this test");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(emulator.client()).unwrap();
    let (input, output) = (unique_stream_name("clicks-in"), unique_stream_name("clicks-out"));
    rt.block_on(create_stream(&client, &input, 4)).unwrap();
    rt.block_on(create_stream(&client, &output, 2)).unwrap();
    let records: Vec<(String, Vec<u8>)> = (0..CLICKS)
        .map(|i| {
            let (user, at) = click(i);
            let json = format!(r#"{{"user":"{user}","page":"/p/{}","at_ms":{at}}}"#, i % 7);
            (user, json.into_bytes())
        })
        .collect();
    rt.block_on(put_records(&client, &input, &records)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    kill_once_committed(clicks_command(&endpoint, &input, &output, dir.path(), 2), dir.path(), CLICKS / 5);
    kill_once_committed(clicks_command(&endpoint, &input, &output, dir.path(), 3), dir.path(), CLICKS / 2);
    let out = clicks_command(&endpoint, &input, &output, dir.path(), 1).output().unwrap();
    assert!(out.status.success(), "final run failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(summary_field(&out, "restored_from"), "none", "the final run resumes from a checkpoint");

    let per_user = (0..CLICKS).fold(HashMap::<String, u64>::new(), |mut m, i| {
        *m.entry(click(i).0).or_default() += 1;
        m
    });
    assert_counts_exactly_once_by_name(&dir.path().join("totals"), &per_user);

    let mut truth: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for i in 0..CLICKS {
        let (user, at) = click(i);
        *truth.entry((user, at - at.rem_euclid(WINDOW_MS))).or_default() += 1;
    }
    let mut seen: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for r in rt.block_on(read_all(&client, &output)).unwrap() {
        let w: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
        let key = (w["user"].as_str().unwrap().to_string(), w["window_start"].as_i64().unwrap());
        let clicks = w["clicks"].as_u64().unwrap();
        assert_eq!(r.partition_key, key.0, "partitioned by user");
        if let Some(before) = seen.insert(key.clone(), clicks) {
            assert_eq!(before, clicks, "window {key:?} written again with another count");
        }
    }
    assert_eq!(seen, truth, "every window of every user, with its true count");
}
