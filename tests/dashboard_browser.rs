//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `scripts/setup.sh`; another binary through `RILL_CHROMIUM`) loads the page of a running
//! `kinesis_count` job reading a 2-shard kinesalite stream, runs its script, and the rendered DOM
//! shows the job graph's vertices, a completed checkpoint, each shard's lag and the keyed vertex's
//! state memory. A screenshot is saved as `dashboard.png` in Cargo's test scratch directory (the
//! README's picture comes from it).
//!
//! Needs kinesalite (`scripts/emulators.sh start all`, `eval "$(scripts/emulators.sh env)"`).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rill_kinesis_common::test_utils::{create_stream, put_records, unique_stream_name, Emulator};
use support::{free_addr, sigterm, wait_for_json};

const PATIENCE: Duration = Duration::from_secs(90);

fn chromium() -> String {
    std::env::var("RILL_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Runs headless Chromium on `url` with `args` after its script had 3 s of (virtual) time.
fn headless(url: &str, profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=3000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (scripts/setup.sh installs Debian's chromium): {e}", chromium()))
}

/// The opening tags of elements with `class="NAME"` in serialized HTML.
fn tags_with_class<'a>(html: &'a str, class: &str) -> Vec<&'a str> {
    let needle = format!(r#"class="{class}""#);
    html.match_indices(&needle)
        .map(|(i, _)| {
            let start = html[..i].rfind('<').unwrap_or(0);
            let end = i + html[i..].find('>').unwrap_or(0);
            &html[start..=end]
        })
        .collect()
}

#[test]
fn the_dashboard_of_a_running_kinesis_job_shows_its_graph_checkpoints_shard_lag_and_state_memory() -> anyhow::Result<()>
{
    let endpoint = Emulator::Kinesalite.endpoint()?;
    let stream = unique_stream_name("dashboard");
    let records: Vec<(String, Vec<u8>)> =
        (0..2_000).map(|i| (format!("k{}", i % 17), format!("r{i}").into_bytes())).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = Emulator::Kinesalite.connection()?.client().await?;
        create_stream(&client, &stream, 2).await?;
        put_records(&client, &stream, &records).await?;
        anyhow::Ok(())
    })?;

    let dir = tempfile::tempdir()?;
    let addr = free_addr();
    let mut child = Command::new(support::example("kinesis_count"))
        .args(["--endpoint", &endpoint, "--region", "us-east-1", "--stream", &stream, "--parallelism", "2"])
        .args(["--checkpoint-interval-ms", "500", "--initial-position", "TRIM_HORIZON", "--idle-exit-ms", "120000"])
        .arg("--dir")
        .arg(dir.path())
        .args(["--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let shards = wait_for_json(&addr, "/api/shards", PATIENCE, |s| {
        s.as_array().is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["millis_behind_latest"].is_i64()))
    });
    // A checkpoint completed, and the keyed subtasks' state memory (sampled at checkpoints) is in.
    let job = wait_for_json(&addr, "/api/job", PATIENCE, |j| {
        j["checkpoints_completed"].as_u64() >= Some(1)
            && j["vertices"].as_array().is_some_and(|vs| {
                vs.iter()
                    .flat_map(|v| v["subtasks"].as_array().into_iter().flatten())
                    .any(|s| s["state_cache_bytes"].as_u64() > Some(0))
            })
    });

    let profile = tempfile::tempdir()?;
    let url = format!("http://{addr}/");
    let dom = headless(&url, profile.path(), &["--dump-dom"]);
    let html = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(html.contains(r#"data-loaded="true""#), "the page's script did not render the API's answers:\n{html}");
    let vertices = tags_with_class(&html, "vertex");
    assert_eq!(vertices.len(), job["vertices"].as_array().unwrap().len(), "{html}");
    assert!(vertices.iter().any(|v| v.contains(r#"data-id="kinesis""#)), "{vertices:?}");
    let keyed = vertices
        .iter()
        .filter_map(|v| v.split(r#"data-state-bytes=""#).nth(1))
        .filter_map(|rest| rest.split('"').next());
    assert!(
        keyed.filter_map(|b| b.parse::<u64>().ok()).any(|b| b > 0),
        "no vertex shows its keyed state's memory: {vertices:?}"
    );
    let checkpoints = tags_with_class(&html, "checkpoint");
    assert!(checkpoints.iter().any(|c| c.contains(r#"data-status="completed""#)), "{checkpoints:?}");
    let rows = tags_with_class(&html, "shard");
    for shard in shards.as_array().unwrap() {
        let id = shard["shard"].as_str().unwrap();
        let row = rows.iter().find(|r| r.contains(&format!(r#"data-shard="{id}""#)));
        let lag = row.and_then(|r| r.split(r#"data-lag=""#).nth(1)).and_then(|rest| rest.split('"').next());
        assert!(lag.is_some_and(|l| l.parse::<i64>().is_ok()), "no lag shown for {id}: {rows:?}");
    }

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let shot =
        headless(&url, profile.path(), &["--window-size=1200,900", &format!("--screenshot={}", screenshot.display())]);
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    assert!(std::fs::metadata(&screenshot)?.len() > 10_000, "screenshot too small");

    sigterm(&child);
    let status = child.wait()?;
    assert!(status.success(), "kinesis_count did not stop cleanly: {status:?}");
    Ok(())
}
