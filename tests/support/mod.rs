//! Helpers for the acceptance tests: run the `keyed_count` example as a child process, kill it,
//! and read its committed output.

#![allow(dead_code)]

pub(crate) mod s3;
pub(crate) mod s3_faults;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Lets a spawned job run for `delay`, then kills it with SIGKILL (no destructor, no flush, no
/// final checkpoint). Returns whether it had finished on its own first.
pub(crate) fn kill_after(mut child: Child, delay: std::time::Duration) -> bool {
    std::thread::sleep(delay);
    let finished = child.try_wait().expect("try_wait").is_some();
    if !finished {
        child.kill().expect("kill -9");
    }
    child.wait().expect("wait");
    finished
}

/// The example binary that `cargo test` builds next to the test binaries.
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built: run the tests with `cargo test --release` (examples are built then)",
        path.display()
    );
    path
}

pub(crate) struct KeyedCount {
    pub records: u64,
    pub keys: u64,
    pub parallelism: usize,
    pub interval_ms: u64,
    pub rate: Option<u64>,
    /// Extra command-line arguments.
    pub extra: Vec<String>,
}

impl KeyedCount {
    pub(crate) fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(example("keyed_count"));
        cmd.args(["--records", &self.records.to_string()])
            .args(["--keys", &self.keys.to_string()])
            .args(["--parallelism", &self.parallelism.to_string()])
            .args(["--checkpoint-interval-ms", &self.interval_ms.to_string()])
            .arg("--dir")
            .arg(dir);
        if let Some(rate) = self.rate {
            cmd.args(["--rate", &rate.to_string()]);
        }
        cmd.args(&self.extra);
        cmd
    }

    pub(crate) fn spawn(&self, dir: &Path) -> Child {
        self.command(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn keyed_count")
    }

    /// Runs to completion and returns the summary line.
    pub(crate) fn run(&self, dir: &Path) -> Output {
        let out = self.command(dir).output().expect("run keyed_count");
        assert!(
            out.status.success(),
            "keyed_count failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Value of `name=` in the summary line.
pub(crate) fn summary_field(out: &Output, name: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default().to_string();
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

/// All committed lines of `dir/output/part-*`, sorted.
pub(crate) fn committed_lines(dir: &Path) -> Vec<String> {
    committed_lines_in(&dir.join("output"))
}

/// All committed lines of `out/part-*`, sorted.
pub(crate) fn committed_lines_in(out: &Path) -> Vec<String> {
    let mut lines = rill::committed_lines(out).expect("output dir");
    lines.sort();
    lines
}

/// Checks that for each key the committed counts are exactly 1..=n_key, each once.
pub(crate) fn assert_exactly_once(dir: &Path, records: u64, keys: u64) {
    assert_counts_exactly_once(&dir.join("output"), records, keys)
}

/// Checks that for each key the counts committed to `out` are exactly 1..=n_key, each once.
pub(crate) fn assert_counts_exactly_once(out: &Path, records: u64, keys: u64) {
    let mut counts: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in committed_lines_in(out) {
        let (k, c) = line.split_once('\t').unwrap_or_else(|| panic!("bad line {line:?}"));
        counts.entry(k.parse().unwrap()).or_default().push(c.parse().unwrap());
    }
    for key in 0..keys {
        let expected = records / keys + u64::from(key < records % keys);
        let mut got = counts.remove(&key).unwrap_or_default();
        got.sort_unstable();
        let want: Vec<u64> = (1..=expected).collect();
        if got != want {
            let dups = got.windows(2).filter(|w| w[0] == w[1]).count();
            panic!("key {key}: expected counts 1..={expected}, got {} values ({dups} duplicates)", got.len());
        }
    }
    assert!(counts.is_empty(), "unexpected keys {:?}", counts.keys().collect::<Vec<_>>());
}

/// Checks that for each named key the counts committed to `out` (`key<TAB>count` lines) are
/// exactly 1..=n, each once, with n from `expected`.
pub(crate) fn assert_counts_exactly_once_by_name(out: &Path, expected: &std::collections::HashMap<String, u64>) {
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in committed_lines_in(out) {
        let (k, c) = line.split_once('\t').unwrap_or_else(|| panic!("bad line {line:?}"));
        counts.entry(k.to_string()).or_default().push(c.parse().unwrap());
    }
    for (key, n) in expected {
        let mut got = counts.remove(key).unwrap_or_default();
        got.sort_unstable();
        let dups = got.windows(2).filter(|w| w[0] == w[1]).count();
        assert_eq!(got, (1..=*n).collect::<Vec<_>>(), "key {key}: counts 1..={n} each once ({dups} duplicates)");
    }
    assert!(counts.is_empty(), "unexpected keys {:?}", counts.keys().collect::<Vec<_>>());
}

/// No hidden in-progress or pending files are left once a job has finished.
pub(crate) fn assert_no_hidden_files(dir: &Path) {
    for entry in std::fs::read_dir(dir.join("output")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!(name.starts_with(".inprogress-") || name.starts_with(".pending-")), "left behind: {name}");
    }
}

/// The `window_count` example's command line (issue 5).
pub(crate) struct WindowCount {
    pub records: u64,
    pub keys: u64,
    pub parallelism: usize,
    pub interval_ms: u64,
    pub window_ms: u64,
    pub out_of_orderness_ms: u64,
    pub rate: Option<u64>,
    /// Also feed the keyed stream to a running count (`--running-counts`).
    pub running_counts: bool,
    /// Extra command-line arguments.
    pub extra: Vec<String>,
}

impl WindowCount {
    pub(crate) fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(example("window_count"));
        cmd.args(["--records", &self.records.to_string()])
            .args(["--keys", &self.keys.to_string()])
            .args(["--parallelism", &self.parallelism.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(["--checkpoint-interval-ms", &self.interval_ms.to_string()])
            .args(["--window-ms", &self.window_ms.to_string()])
            .args(["--out-of-orderness-ms", &self.out_of_orderness_ms.to_string()]);
        if let Some(rate) = self.rate {
            cmd.args(["--rate", &rate.to_string()]);
        }
        if self.running_counts {
            cmd.arg("--running-counts");
        }
        cmd.args(&self.extra);
        cmd
    }

    pub(crate) fn spawn(&self, dir: &Path) -> Child {
        self.command(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn window_count")
    }

    /// Runs to completion and returns the summary line.
    pub(crate) fn run(&self, dir: &Path) -> Output {
        let out = self.command(dir).output().expect("run window_count");
        assert!(
            out.status.success(),
            "window_count failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The event time of record `i`, as the issue defines it: max(0, i - (i * 7919) mod O).
    pub(crate) fn event_time(&self, i: u64) -> u64 {
        let o = self.out_of_orderness_ms;
        if o == 0 {
            return i;
        }
        i.saturating_sub(((u128::from(i) * 7919) % u128::from(o)) as u64)
    }

    /// The true `key<TAB>window_start<TAB>count` lines, sorted.
    pub(crate) fn expected_lines(&self) -> Vec<String> {
        let mut counts: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for i in 0..self.records {
            let t = self.event_time(i);
            *counts.entry((i % self.keys, t - t % self.window_ms)).or_default() += 1;
        }
        let mut lines: Vec<String> = counts.into_iter().map(|((k, w), c)| format!("{k}\t{w}\t{c}")).collect();
        lines.sort();
        lines
    }
}

/// A local address with a port that was free a moment ago (for `--metrics-addr`).
pub(crate) fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").to_string()
}

/// GET `http://addr/path` as JSON, or `None` while the job's server is not up (yet, or any more).
pub(crate) fn get_json(addr: &str, path: &str) -> Option<serde_json::Value> {
    reqwest::blocking::get(format!("http://{addr}{path}")).ok()?.json().ok()
}

/// GET `http://addr/path` as text.
pub(crate) fn get_text(addr: &str, path: &str) -> String {
    reqwest::blocking::get(format!("http://{addr}{path}")).and_then(|r| r.text()).expect("GET")
}

/// Polls `path` until `ready` holds for its JSON (panics after `timeout`); returns that JSON.
pub(crate) fn wait_for_json(
    addr: &str,
    path: &str,
    timeout: std::time::Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = None;
    while std::time::Instant::now() < deadline {
        if let Some(json) = get_json(addr, path) {
            if ready(&json) {
                return json;
            }
            last = Some(json);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{path} never got ready within {timeout:?}; last answer: {last:?}");
}

/// Asks the job on `addr` for a savepoint (`POST /api/savepoints`); its checkpoint id.
pub(crate) fn take_savepoint(addr: &str) -> u64 {
    let answer: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("http://{addr}/api/savepoints"))
        .header("Content-Type", "application/json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["savepoint"].as_u64().unwrap_or_else(|| panic!("no savepoint id: {answer}"))
}

/// Sends SIGTERM (what Kubernetes and `kill` send) to a child process.
pub(crate) fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

/// Each key's committed counts: for a prefix of the input counted exactly once, `1..=n` each.
pub(crate) fn counts_by_key(lines: &[String]) -> BTreeMap<u64, Vec<u64>> {
    let mut by_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in lines {
        let (key, count) = line.split_once('\t').expect("key<TAB>count");
        by_key.entry(key.parse().expect("key")).or_default().push(count.parse().expect("count"));
    }
    for counts in by_key.values_mut() {
        counts.sort_unstable();
    }
    by_key
}
