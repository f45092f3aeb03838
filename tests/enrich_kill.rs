//! Acceptance (issue 27): a job with two inputs, the `enrich` example (alerts joined with the
//! account profile valid at their event time), killed with SIGKILL at random moments at
//! parallelism 2 and finished at parallelism 3, commits exactly the enriched alerts a straight
//! run commits: every alert once, with the right profile version (checked by `--verify`
//! against the truth computed from the generators).

mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::{assert_no_hidden_files, example, kill_after, summary_field};

struct Enrich {
    alerts: u64,
    parallelism: usize,
    rate: Option<u64>,
}

impl Enrich {
    fn command(&self, dir: &std::path::Path) -> Command {
        let mut cmd = Command::new(example("enrich"));
        cmd.args(["--alerts", &self.alerts.to_string(), "--profiles", &(self.alerts / 10).to_string()])
            .args(["--accounts", "1000", "--parallelism", &self.parallelism.to_string()])
            .args(["--checkpoint-interval-ms", "100"])
            .arg("--dir")
            .arg(dir);
        if let Some(rate) = self.rate {
            cmd.args(["--rate", &rate.to_string()]);
        }
        cmd
    }

    fn run(&self, dir: &std::path::Path) -> Output {
        let out = self.command(dir).output().unwrap();
        assert!(out.status.success(), "enrich failed: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn verify(&self, dir: &std::path::Path) {
        let out = self.command(dir).arg("--verify").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("verified=ok alerts={}", self.alerts)), "{stdout}");
    }
}

#[test]
fn a_straight_run_enriches_every_alert_with_the_profile_valid_at_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let job = Enrich { alerts: 200_000, parallelism: 2, rate: None };
    job.run(dir.path());
    job.verify(dir.path());
}

#[test]
fn killed_and_rescaled_runs_enrich_every_alert_exactly_once_as_a_straight_run_does() {
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    // Three runs of at most 1.2 s at 100,000 alerts/s consume at most 360,000 of 500,000 alerts.
    let mut job = Enrich { alerts: 500_000, parallelism: 2, rate: Some(100_000) };
    for _ in 0..3 {
        let child = job.command(dir.path()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let finished = kill_after(child, Duration::from_millis(rng.random_range(400..1200)));
        assert!(!finished, "the job finished before being killed; lower the rate");
    }
    job.parallelism = 3;
    job.rate = None;
    let out = job.run(dir.path());
    assert_ne!(summary_field(&out, "restored_from"), "none", "the last run resumes from a checkpoint");
    job.verify(dir.path());
    assert_no_hidden_files(dir.path());
}
