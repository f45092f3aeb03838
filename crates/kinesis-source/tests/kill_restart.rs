//! Crash tests with the `kinesis_count` example binary: it is killed with SIGKILL at least five
//! times while reading a multi-shard stream that keeps receiving records (and, in one test,
//! while shards are split and merged, right between a parent's end and its children's start),
//! then run to completion. Every key's committed counts must be exactly 1..n, once each.
//!
//! Build the binary first: `cargo build --release --example kinesis_count`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::*;
use rill_kinesis_common::test_utils::Emulator;

fn example_binary() -> anyhow::Result<PathBuf> {
    let from_env =
        std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("release/examples/kinesis_count"));
    let from_exe = std::env::current_exe()?.parent().and_then(Path::parent).map(|d| d.join("examples/kinesis_count"));
    for candidate in from_env.into_iter().chain(from_exe) {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "the kinesis_count example binary is missing: build it with `cargo build --release --example kinesis_count`"
    )
}

fn spawn_example(
    emulator: Emulator,
    stream: &str,
    dir: &Path,
    parallelism: usize,
    checkpoint_ms: u64,
    idle_ms: u64,
) -> anyhow::Result<Child> {
    Command::new(example_binary()?)
        .args(["--endpoint", &emulator.endpoint()?, "--region", "us-east-1", "--stream", stream])
        .args(["--parallelism", &parallelism.to_string(), "--dir", &dir.to_string_lossy()])
        .args(["--checkpoint-interval-ms", &checkpoint_ms.to_string(), "--initial-position", "TRIM_HORIZON"])
        .args(["--idle-exit-ms", &idle_ms.to_string()])
        .env("AWS_ACCESS_KEY_ID", "rill-test")
        .env("AWS_SECRET_ACCESS_KEY", "rill-test-secret")
        .env("RUST_LOG", "rill_kinesis_source=info,warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn kinesis_count")
}

/// Forwards the child's stderr lines to a channel (and keeps the tail for failure messages).
fn watch_stderr(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

fn kill(child: &mut Child) -> anyhow::Result<()> {
    child.kill().context("SIGKILL")?;
    child.wait()?;
    Ok(())
}

/// Runs the example to its idle exit and returns its last stdout line.
fn run_to_completion(emulator: Emulator, stream: &str, dir: &Path, parallelism: usize) -> anyhow::Result<String> {
    let mut child = spawn_example(emulator, stream, dir, parallelism, 300, 4000)?;
    let stderr = watch_stderr(&mut child);
    let output = child.wait_with_output()?;
    let log: Vec<String> = stderr.try_iter().collect();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    anyhow::ensure!(output.status.success(), "final run failed: {:?}\n{}", output.status, log.join("\n"));
    let last = stdout.lines().last().unwrap_or_default().to_string();
    anyhow::ensure!(last.starts_with("records=") && last.contains(" restored_from="), "unexpected last line '{last}'");
    Ok(last)
}

/// The committed `key \t count` lines must be exactly 1..n once per key.
fn assert_counts(dir: &Path, expected: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    let lines = committed_lines(&dir.join("output"))?;
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in &lines {
        let (k, c) = line.split_once('\t').with_context(|| format!("bad line '{line}'"))?;
        per_key.entry(k.to_string()).or_default().push(c.parse()?);
    }
    for (key, n) in expected {
        let mut got = per_key.remove(key).unwrap_or_default();
        got.sort_unstable();
        let want: Vec<u64> = (1..=*n).collect();
        if got != want {
            let dup = got.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
            let missing = want.iter().find(|c| got.binary_search(c).is_err());
            anyhow::bail!("key {key}: {} counts for {n} records (duplicate {dup:?}, missing {missing:?})", got.len());
        }
    }
    anyhow::ensure!(per_key.is_empty(), "unexpected keys {:?}", per_key.keys().collect::<Vec<_>>());
    Ok(())
}

fn survives_repeated_kill_9_while_reading(
    emulator: Emulator,
    shards: i32,
    kills: usize,
    per_tick: usize,
) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-kill", shards))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(16, per_tick * 10)))?;
    let dir = tempfile::tempdir()?;
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next_delay = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        Duration::from_millis(1200 + rng_state % 1500)
    };
    for round in 0..kills {
        // Alternate parallelism: restores also redistribute shards.
        let parallelism = [2, 3, 1][round % 3];
        let mut child = spawn_example(emulator, &stream, dir.path(), parallelism, 250, 60_000)?;
        let _stderr = watch_stderr(&mut child);
        let until = Instant::now() + next_delay();
        while Instant::now() < until {
            rt.block_on(put(&client, &stream, &writer.batch(16, per_tick)))?;
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::ensure!(child.try_wait()?.is_none(), "round {round}: the example exited before being killed");
        kill(&mut child)?;
    }
    let last = run_to_completion(emulator, &stream, dir.path(), 2)?;
    assert!(!last.contains(" restored_from=none "), "the last run must restore a checkpoint: {last}");
    assert_counts(dir.path(), &writer.counts)
}

#[test]
fn kinesalite_counts_stay_exactly_once_across_six_kill_9_restarts() -> anyhow::Result<()> {
    survives_repeated_kill_9_while_reading(Emulator::Kinesalite, 4, 6, 300)
}

#[test]
fn kinesis_local_counts_stay_exactly_once_across_five_kill_9_restarts() -> anyhow::Result<()> {
    survives_repeated_kill_9_while_reading(Emulator::KinesisLocal, 3, 5, 20)
}

/// Splits and merges while the example runs; each time a parent shard is read to its end the
/// process is killed at once, before the children start (they wait for a completed checkpoint).
fn survives_kills_between_parent_end_and_child_start(emulator: Emulator, per_tick: usize) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-kill-reshard", 2))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(12, per_tick * 5)))?;
    let dir = tempfile::tempdir()?;
    let mut kills = 0;
    for step in 0..4 {
        let mut child = spawn_example(emulator, &stream, dir.path(), 2, 1500, 60_000)?;
        let stderr = watch_stderr(&mut child);
        // Let it read a little, then reshard while writing.
        for _ in 0..5 {
            rt.block_on(put(&client, &stream, &writer.batch(12, per_tick)))?;
            std::thread::sleep(Duration::from_millis(100));
        }
        rt.block_on(reshard_step(&client, &stream, step))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut killed = false;
        while Instant::now() < deadline {
            rt.block_on(put(&client, &stream, &writer.batch(12, per_tick)))?;
            if stderr.try_iter().any(|l| l.contains("shard read to its end")) {
                kill(&mut child)?;
                killed = true;
                kills += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !killed {
            kill(&mut child)?;
        }
    }
    anyhow::ensure!(kills >= 3, "only {kills} kills happened right after a parent's end");
    run_to_completion(emulator, &stream, dir.path(), 3)?;
    assert_counts(dir.path(), &writer.counts)
}

/// Step 0 and 2 split the widest open shard; steps 1 and 3 merge two adjacent open shards.
async fn reshard_step(client: &aws_sdk_kinesis::Client, stream: &str, step: usize) -> anyhow::Result<()> {
    if step.is_multiple_of(2) {
        split_widest(client, stream).await
    } else {
        merge_adjacent(client, stream).await
    }
}

#[test]
fn kinesalite_kills_between_parent_end_and_child_start_lose_and_repeat_nothing() -> anyhow::Result<()> {
    survives_kills_between_parent_end_and_child_start(Emulator::Kinesalite, 40)
}

#[test]
fn kinesis_local_kills_between_parent_end_and_child_start_lose_and_repeat_nothing() -> anyhow::Result<()> {
    survives_kills_between_parent_end_and_child_start(Emulator::KinesisLocal, 8)
}
