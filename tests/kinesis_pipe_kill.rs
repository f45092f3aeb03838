//! Acceptance (issue 4): the `kinesis_pipe` example, run against both emulators, copies every
//! record of IN to OUT at least once across repeated kill -9 and restarts, and exactly once in a
//! run without crashes.
//!
//! Needs the emulators (`scripts/emulators.sh start all`, `eval "$(scripts/emulators.sh env)"`);
//! a missing `RILL_KINESALITE_ENDPOINT` / `RILL_KINESIS_LOCAL_ENDPOINT` fails the test. The
//! example binary is built by `cargo test --release`. Each run's stdout/stderr (`RUST_LOG=info`
//! unless `RUST_LOG` is set) is kept in a directory named in the failure message.

mod support;

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use rand::{Rng, SeedableRng};
use rill_kinesis_common::test_utils::{
    create_stream, delete_stream, put_records, read_all, unique_stream_name, Emulator, StoredRecord,
};

/// Kill -9s in the crash test, at least (more happen if IN is still being filled).
const MIN_KILLS: usize = 6;
const CHECKPOINT_INTERVAL_MS: u64 = 200;
const IDLE_EXIT_MS: u64 = 1500;
const PARALLELISM: usize = 2;
/// A clean run must finish within this (`IDLE_EXIT_MS` after its input is drained).
const CLEAN_RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A (partition key, data) record.
type Rec = (String, Vec<u8>);

/// How much to put through each emulator (kinesis-local is slow and single-threaded).
struct Volume {
    in_shards: i32,
    out_shards: i32,
    /// Written before the first run.
    prefill: usize,
    /// Written in batches while the pipe is being killed and restarted.
    fed: usize,
    batch: usize,
    batch_pause: Duration,
}

fn volume(emulator: Emulator) -> Volume {
    match emulator {
        Emulator::Kinesalite => Volume {
            in_shards: 4,
            out_shards: 2,
            prefill: 1000,
            fed: 3000,
            batch: 100,
            batch_pause: Duration::from_millis(100),
        },
        Emulator::KinesisLocal => Volume {
            in_shards: 3,
            out_shards: 2,
            prefill: 60,
            fed: 240,
            batch: 10,
            batch_pause: Duration::from_millis(100),
        },
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

fn endpoint(emulator: Emulator) -> String {
    emulator.endpoint().unwrap_or_else(|e| panic!("{} is required for this test: {e}", emulator.name()))
}

async fn client(emulator: Emulator) -> Client {
    endpoint(emulator);
    emulator.client().await.unwrap_or_else(|e| panic!("{}: no client: {e}", emulator.name()))
}

/// Records `from..to` of a test: unique data (tag and index, with a filler of varying length)
/// and partition keys both shared (spread over the shards) and unique.
fn records(tag: &str, from: usize, to: usize) -> Vec<Rec> {
    (from..to)
        .map(|i| {
            let key = if i % 7 == 0 { format!("unique-{tag}-{i}") } else { format!("pk-{:02}", i % 61) };
            let filler = "x".repeat((i * 37) % 200);
            (key, format!("{tag}|rec-{i:06}|{filler}").into_bytes())
        })
        .collect()
}

/// One test's streams and directories.
struct Pipe {
    emulator: Emulator,
    endpoint: String,
    input: String,
    output: String,
    /// Kept on failure (named in the message), removed on success.
    root: PathBuf,
    runs: usize,
}

impl Pipe {
    async fn create(emulator: Emulator, client: &Client, volume: &Volume, name: &str) -> Pipe {
        let endpoint = endpoint(emulator);
        let input = unique_stream_name(&format!("pipe-{name}-in"));
        let output = unique_stream_name(&format!("pipe-{name}-out"));
        for (stream, shards) in [(&input, volume.in_shards), (&output, volume.out_shards)] {
            create_stream(client, stream, shards)
                .await
                .unwrap_or_else(|e| panic!("{}: creating {stream}: {e}", emulator.name()));
        }
        let root = tempfile::Builder::new().prefix(&format!("rill-pipe-{name}-")).tempdir().expect("tempdir").keep();
        std::fs::create_dir_all(root.join("logs")).expect("logs dir");
        Pipe { emulator, endpoint, input, output, root, runs: 0 }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(support::example("kinesis_pipe"));
        cmd.args(["--endpoint", &self.endpoint, "--region", "us-east-1"])
            .args(["--source-stream", &self.input, "--sink-stream", &self.output])
            .args(["--parallelism", &PARALLELISM.to_string()])
            .arg("--dir")
            .arg(self.root.join("job"))
            .args(["--checkpoint-interval-ms", &CHECKPOINT_INTERVAL_MS.to_string()])
            .args(["--idle-exit-ms", &IDLE_EXIT_MS.to_string()])
            .env("AWS_ACCESS_KEY_ID", "rill-test-access-key")
            .env("AWS_SECRET_ACCESS_KEY", "rill-test-secret-key")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string()));
        cmd
    }

    fn log(&self, run: usize, stream: &str) -> PathBuf {
        self.root.join("logs").join(format!("run-{run:02}.{stream}"))
    }

    /// Starts the next run, its output going to `logs/run-NN.{out,err}`.
    fn spawn(&mut self) -> (usize, Child) {
        self.runs += 1;
        let run = self.runs;
        let out = File::create(self.log(run, "out")).expect("stdout log");
        let err = File::create(self.log(run, "err")).expect("stderr log");
        let child =
            self.command().stdout(Stdio::from(out)).stderr(Stdio::from(err)).spawn().expect("spawn kinesis_pipe");
        (run, child)
    }

    /// The last lines of a run's stderr, for failure messages.
    fn stderr_tail(&self, run: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log(run, "err")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn context(&self) -> String {
        format!(
            "{}: IN={} OUT={}, logs and checkpoints in {}",
            self.emulator.name(),
            self.input,
            self.output,
            self.root.display()
        )
    }

    /// Runs to completion (exit after `IDLE_EXIT_MS` without input); returns the summary line.
    fn run_to_completion(&mut self) -> String {
        let (run, mut child) = self.spawn();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > CLEAN_RUN_TIMEOUT {
                child.kill().expect("kill");
                child.wait().expect("wait");
                panic!(
                    "clean run {run} did not finish within {CLEAN_RUN_TIMEOUT:?} (hang)\n{}\nstderr tail:\n{}",
                    self.context(),
                    self.stderr_tail(run, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.assert_success(run, status);
        let stdout = std::fs::read_to_string(self.log(run, "out")).unwrap_or_default();
        stdout.lines().last().unwrap_or_default().to_string()
    }

    fn assert_success(&self, run: usize, status: ExitStatus) {
        assert!(
            status.success(),
            "run {run} exited with {status}\n{}\nstderr tail:\n{}",
            self.context(),
            self.stderr_tail(run, 40)
        );
    }

    async fn cleanup(self, client: &Client) {
        for stream in [&self.input, &self.output] {
            let _ = delete_stream(client, stream).await;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Value of `name=` in a summary line.
fn field<'a>(summary: &'a str, name: &str) -> &'a str {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name}= in summary line {summary:?}"))
}

/// How OUT compares with what was written to IN.
struct Comparison {
    written: usize,
    out: usize,
    /// Written to IN, absent from OUT.
    missing: Vec<Rec>,
    /// In OUT, never written to IN.
    unexpected: Vec<Rec>,
    /// Extra copies in OUT.
    duplicates: usize,
}

async fn compare(client: &Client, pipe: &Pipe, written: &[Rec]) -> Comparison {
    let out = read_all(client, &pipe.output).await.unwrap_or_else(|e| panic!("{}: reading OUT: {e}", pipe.context()));
    let mut got: HashMap<Rec, usize> = HashMap::new();
    for r in &out {
        *got.entry((r.partition_key.clone(), r.data.clone())).or_default() += 1;
    }
    let mut missing = Vec::new();
    let mut duplicates = 0;
    for rec in written {
        match got.remove(rec) {
            Some(n) => duplicates += n - 1,
            None => missing.push(rec.clone()),
        }
    }
    let unexpected = got.into_keys().collect();
    Comparison { written: written.len(), out: out.len(), missing, unexpected, duplicates }
}

fn show(rec: &Rec) -> String {
    let data = String::from_utf8_lossy(&rec.1);
    let short: String = data.chars().take(40).collect();
    format!("key={} data={short}", rec.0)
}

/// Where the missing records sit in IN (shard and sequence number), for the failure message.
async fn locate_missing(client: &Client, pipe: &Pipe, missing: &[Rec]) -> String {
    let stored: Vec<StoredRecord> = read_all(client, &pipe.input).await.unwrap_or_default();
    let mut by_shard: HashMap<&str, Vec<&StoredRecord>> = HashMap::new();
    for r in &stored {
        if missing.iter().any(|(k, d)| *k == r.partition_key && *d == r.data) {
            by_shard.entry(r.shard_id.as_str()).or_default().push(r);
        }
    }
    let mut lines: Vec<String> = by_shard
        .iter()
        .map(|(shard, recs)| {
            format!(
                "  {shard}: {} missing, sequence numbers {} .. {}",
                recs.len(),
                recs.first().map_or("", |r| r.sequence_number.as_str()),
                recs.last().map_or("", |r| r.sequence_number.as_str())
            )
        })
        .collect();
    lines.sort();
    let first: Vec<String> = missing.iter().take(10).map(|r| format!("  {}", show(r))).collect();
    format!("missing by IN shard:\n{}\nfirst missing:\n{}", lines.join("\n"), first.join("\n"))
}

/// Writes IN in batches in the background, while the pipe is being killed and restarted.
fn feed(emulator: Emulator, stream: String, batches: Vec<Vec<Rec>>, pause: Duration) -> JoinHandle<()> {
    std::thread::spawn(move || {
        runtime().block_on(async {
            let client = client(emulator).await;
            for batch in batches {
                put_records(&client, &stream, &batch)
                    .await
                    .unwrap_or_else(|e| panic!("{}: filling {stream}: {e}", emulator.name()));
                tokio::time::sleep(pause).await;
            }
        });
    })
}

fn at_least_once_across_kills(emulator: Emulator) {
    let started = Instant::now();
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rt = runtime();
    let client = rt.block_on(client(emulator));
    let volume = volume(emulator);
    let mut pipe = rt.block_on(Pipe::create(emulator, &client, &volume, "kill"));
    eprintln!("{}: seed {seed}", pipe.context());

    let tag = pipe.input.clone();
    let total = volume.prefill + volume.fed;
    let written = records(&tag, 0, total);
    rt.block_on(put_records(&client, &pipe.input, &written[..volume.prefill]))
        .unwrap_or_else(|e| panic!("{}: filling IN: {e}", pipe.context()));
    let batches: Vec<Vec<Rec>> = written[volume.prefill..].chunks(volume.batch).map(<[Rec]>::to_vec).collect();
    let feeder = feed(emulator, pipe.input.clone(), batches, volume.batch_pause);

    // Kill -9 at random moments (before the first checkpoint, mid-batch, mid-checkpoint, while
    // idle): at least `MIN_KILLS`, and until IN is completely written.
    let mut kills = 0;
    while kills < MIN_KILLS || !feeder.is_finished() {
        assert!(pipe.runs < 60, "{}: too many runs without enough kills", pipe.context());
        let (run, mut child) = pipe.spawn();
        std::thread::sleep(Duration::from_millis(rng.random_range(50..1500)));
        match child.try_wait().expect("try_wait") {
            // Finished on its own (idle): fine if successful.
            Some(status) => pipe.assert_success(run, status),
            None => {
                // SIGKILL: no destructor, no flush, no final checkpoint.
                child.kill().expect("kill -9");
                child.wait().expect("wait");
                kills += 1;
            }
        }
    }
    if let Err(panic) = feeder.join() {
        std::panic::resume_unwind(panic);
    }

    let summary = pipe.run_to_completion();
    assert_ne!(
        field(&summary, "restored_from"),
        "none",
        "the final run must resume from a checkpoint\n{}",
        pipe.context()
    );
    let cmp = rt.block_on(compare(&client, &pipe, &written));
    eprintln!(
        "{}: {} kills in {} runs; IN={} OUT={} duplicates={} missing={} unexpected={}; final run: {summary}; {:.1?}",
        emulator.name(),
        kills,
        pipe.runs,
        cmp.written,
        cmp.out,
        cmp.duplicates,
        cmp.missing.len(),
        cmp.unexpected.len(),
        started.elapsed()
    );
    if !cmp.missing.is_empty() {
        let located = rt.block_on(locate_missing(&client, &pipe, &cmp.missing));
        panic!(
            "at-least-once violated: {} of {} IN records are not in OUT after {kills} kills (seed {seed})\n{}\n{located}",
            cmp.missing.len(),
            cmp.written,
            pipe.context()
        );
    }
    assert!(
        cmp.unexpected.is_empty(),
        "OUT holds {} records never written to IN, e.g. {}\n{}",
        cmp.unexpected.len(),
        show(&cmp.unexpected[0]),
        pipe.context()
    );
    rt.block_on(pipe.cleanup(&client));
}

fn exactly_once_without_crash(emulator: Emulator) {
    let started = Instant::now();
    let rt = runtime();
    let client = rt.block_on(client(emulator));
    let volume = volume(emulator);
    let mut pipe = rt.block_on(Pipe::create(emulator, &client, &volume, "clean"));
    let written = records(&pipe.input.clone(), 0, volume.prefill + volume.fed);
    rt.block_on(put_records(&client, &pipe.input, &written))
        .unwrap_or_else(|e| panic!("{}: filling IN: {e}", pipe.context()));

    let summary = pipe.run_to_completion();
    let cmp = rt.block_on(compare(&client, &pipe, &written));
    eprintln!(
        "{}: IN={} OUT={} duplicates={} missing={} unexpected={}; run: {summary}; {:.1?}",
        emulator.name(),
        cmp.written,
        cmp.out,
        cmp.duplicates,
        cmp.missing.len(),
        cmp.unexpected.len(),
        started.elapsed()
    );
    assert_eq!(field(&summary, "restored_from"), "none", "a first run has nothing to restore\n{}", pipe.context());
    if !cmp.missing.is_empty() {
        let located = rt.block_on(locate_missing(&client, &pipe, &cmp.missing));
        panic!(
            "{} of {} IN records are not in OUT after a run without crash\n{}\n{located}",
            cmp.missing.len(),
            cmp.written,
            pipe.context()
        );
    }
    assert!(
        cmp.duplicates == 0 && cmp.unexpected.is_empty(),
        "not exactly once without crash: {} duplicates, {} records never written to IN\n{}",
        cmp.duplicates,
        cmp.unexpected.len(),
        pipe.context()
    );
    assert_eq!(field(&summary, "records"), written.len().to_string(), "records= of the summary\n{}", pipe.context());
    rt.block_on(pipe.cleanup(&client));
}

#[test]
fn pipe_is_at_least_once_across_kill9_on_kinesalite() {
    at_least_once_across_kills(Emulator::Kinesalite);
}

#[test]
fn pipe_is_at_least_once_across_kill9_on_kinesis_local() {
    at_least_once_across_kills(Emulator::KinesisLocal);
}

#[test]
fn pipe_is_exactly_once_without_crash_on_kinesalite() {
    exactly_once_without_crash(Emulator::Kinesalite);
}

#[test]
fn pipe_is_exactly_once_without_crash_on_kinesis_local() {
    exactly_once_without_crash(Emulator::KinesisLocal);
}
