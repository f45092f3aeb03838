//! A corrupted latest checkpoint is detected by checksum and the previous one is restored, with
//! a warning naming it; the output stays exactly-once.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{assert_exactly_once, kill_after, summary_field, KeyedCount};

fn complete_checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("_manifest").exists())
        .collect();
    out.sort();
    out
}

/// A `keyed_count` run (300,000 records, 13 keys) killed after at least `min` complete
/// checkpoints: its directory, the job, and the complete checkpoints, oldest first.
fn killed_run_with_checkpoints(min: usize) -> (tempfile::TempDir, KeyedCount, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let job =
        KeyedCount { records: 300_000, keys: 13, parallelism: 2, interval_ms: 100, rate: Some(150_000), extra: vec![] };
    assert!(!kill_after(job.spawn(dir.path()), Duration::from_millis(1200)), "the job finished before the kill");
    let complete = complete_checkpoints(dir.path());
    assert!(complete.len() >= min, "need {min} complete checkpoints, have {complete:?}");
    (dir, job, complete)
}

/// The id of a checkpoint directory `chk-<id>`.
fn checkpoint_id(dir: &Path) -> u64 {
    dir.file_name().unwrap().to_string_lossy()[4..].parse().unwrap()
}

fn flip_first_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn corrupted_latest_checkpoint_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let job =
        KeyedCount { records: 400_000, keys: 31, parallelism: 2, interval_ms: 100, rate: Some(150_000), extra: vec![] };
    assert!(!kill_after(job.spawn(dir.path()), Duration::from_millis(1200)), "the job finished before the kill");

    let complete = complete_checkpoints(dir.path());
    assert!(complete.len() >= 2, "need two complete checkpoints, have {complete:?}");
    let latest = complete.last().unwrap();
    let previous = &complete[complete.len() - 2];
    let source_state = std::fs::read_dir(latest)
        .unwrap()
        .map(|e| e.unwrap().path().join("operator.bin"))
        .find(|p| p.exists() && p.to_string_lossy().contains("generator"))
        .expect("generator operator state in the latest checkpoint");
    flip_first_byte(&source_state);

    let out = job.run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let latest_id = checkpoint_id(latest);
    let previous_id = checkpoint_id(previous);
    assert!(stderr.contains(&format!("skipping corrupt checkpoint {latest_id}")), "stderr: {stderr}");
    assert_eq!(summary_field(&out, "restored_from"), previous_id.to_string());
    assert_exactly_once(dir.path(), job.records, job.keys);
}

#[test]
fn all_checkpoints_corrupt_is_a_clear_error_and_keeps_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let job =
        KeyedCount { records: 200_000, keys: 7, parallelism: 1, interval_ms: 100, rate: Some(100_000), extra: vec![] };
    assert!(!kill_after(job.spawn(dir.path()), Duration::from_millis(800)), "the job finished before the kill");
    for chk in complete_checkpoints(dir.path()) {
        flip_first_byte(&chk.join("_manifest"));
    }
    let before = support::committed_lines(dir.path());
    let out = job.command(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no usable checkpoint"), "stderr: {stderr}");
    assert_eq!(support::committed_lines(dir.path()), before, "committed output must be untouched");
}

#[test]
fn explicit_restore_of_an_older_checkpoint_rolls_back_newer_output_and_stays_exactly_once() {
    let (dir, job, complete) = killed_run_with_checkpoints(2);
    let older = checkpoint_id(&complete[0]);

    let mut again = KeyedCount { extra: vec!["--restore-from".into(), older.to_string()], ..job };
    again.rate = None;
    let out = again.run(dir.path());
    assert_eq!(summary_field(&out, "restored_from"), older.to_string());
    assert!(
        dir.path().join("output").join(rill::operators::ROLLED_BACK_DIR).exists(),
        "newer output must be kept aside"
    );
    assert_exactly_once(dir.path(), job.records, job.keys);
}

#[test]
fn a_crash_right_after_restoring_an_older_checkpoint_does_not_bring_the_newer_ones_back() {
    let (dir, job, complete) = killed_run_with_checkpoints(3);
    let older = checkpoint_id(&complete[0]);

    // Restore the oldest and die before the restored run completes a checkpoint of its own.
    let restore = KeyedCount {
        records: job.records,
        keys: job.keys,
        parallelism: 2,
        interval_ms: 60_000,
        rate: job.rate,
        extra: vec!["--restore-from".into(), older.to_string()],
    };
    assert!(!kill_after(restore.spawn(dir.path()), Duration::from_millis(700)), "the restored run finished");
    let left: Vec<_> = complete_checkpoints(dir.path());
    assert_eq!(left.len(), 1, "only the restored checkpoint stays restorable: {left:?}");
    assert!(dir.path().join("checkpoints").join(rill::state::RETIRED_DIR).exists(), "newer ones kept aside");

    // A plain re-run restores the older checkpoint again, and the output is exactly-once.
    let out = KeyedCount { rate: None, ..job }.run(dir.path());
    assert_eq!(summary_field(&out, "restored_from"), older.to_string());
    assert_exactly_once(dir.path(), 300_000, 13);
}

#[test]
fn a_checkpoint_whose_manifest_cannot_be_read_is_never_deleted() {
    let (dir, job, complete) = killed_run_with_checkpoints(2);
    let older = checkpoint_id(&complete[0]);
    // The newest manifest cannot be read (an I/O error, not "absent"): a symbolic link to itself.
    let newest = complete.last().unwrap().clone();
    let manifest = newest.join("_manifest");
    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink("_manifest", &manifest).unwrap();

    let again = KeyedCount { extra: vec!["--restore-from".into(), older.to_string()], rate: None, ..job };
    let out = again.run(dir.path());
    assert_eq!(summary_field(&out, "restored_from"), older.to_string());
    let name = newest.file_name().unwrap();
    let kept = newest.exists() || dir.path().join("checkpoints").join(rill::state::RETIRED_DIR).join(name).exists();
    assert!(kept, "the unreadable checkpoint {} was deleted", name.to_string_lossy());
    assert_exactly_once(dir.path(), job.records, job.keys);
}
