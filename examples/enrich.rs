//! Fraud alerts enriched with the account's profile as it was when the alert was raised: a
//! temporal join of two streams (a `KeyedCoProcessFunction` with event-time timers), with
//! exactly-once output.
//!
//! `cargo run --release --example enrich -- --alerts N --profiles P --accounts A --parallelism P
//!  --dir DIR --checkpoint-interval-ms MS [--rate R] [--output DIR] [--verify]`
//!
//! The flags every job shares (`rill::cli::JobArgs`): `--parallelism`, `--dir`,
//! `--checkpoint-interval-ms`, `--checkpoint-location`, `--checkpoint-timeout-ms`,
//! `--tolerable-checkpoint-failures`, `--restore-from`, `--metrics-addr`, `--restart-strategy`,
//! `--inject-failure-every-ms`.
//!
//! Alert i (0..N) concerns account (i * 7919) mod A and is raised at event time i ms. Profile
//! update j (0..P) is the (j / A + 1)-th version of account j mod A's profile, valid from event
//! time j * N / P ms: both streams span the same event time. Each alert is written once both
//! streams' watermarks passed it, as `alert,account,time,version`: the version of the account's
//! profile valid at the alert's time (0 if it had none yet). `--verify` checks the committed
//! output against that truth, computed directly from N, P and A.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use rill::prelude::*;

#[derive(Parser, Debug)]
struct Args {
    /// The flags every job shares: parallelism, checkpoints, restore, restart strategy, metrics.
    #[command(flatten)]
    job: rill::cli::JobArgs,
    /// Alerts to generate.
    #[arg(long)]
    alerts: u64,
    /// Profile updates to generate, spread over the alerts' event time.
    #[arg(long)]
    profiles: u64,
    /// Distinct accounts.
    #[arg(long)]
    accounts: u64,
    /// At most this many alerts per second (profile updates in proportion).
    #[arg(long)]
    rate: Option<u64>,
    /// Where the enriched alerts are written: a local directory or `s3://bucket/prefix`.
    /// Default: `DIR/output`.
    #[arg(long)]
    output: Option<String>,
    /// Do not run: check the output committed in `DIR/output` against the truth, print
    /// `verified=ok ...`, and exit non-zero on any difference.
    #[arg(long)]
    verify: bool,
}

/// The event streams, as pure functions of their sequence numbers (replays agree).
#[derive(Clone, Copy)]
struct Events {
    alerts: u64,
    profiles: u64,
    accounts: u64,
}

impl Events {
    fn alert_account(&self, i: u64) -> u64 {
        (u128::from(i) * 7919 % u128::from(self.accounts)) as u64
    }

    fn alert_time(&self, i: u64) -> i64 {
        i as i64
    }

    fn profile_account(&self, j: u64) -> u64 {
        j % self.accounts
    }

    fn profile_version(&self, j: u64) -> u64 {
        j / self.accounts + 1
    }

    fn profile_time(&self, j: u64) -> i64 {
        (u128::from(j) * u128::from(self.alerts) / u128::from(self.profiles.max(1))) as i64
    }
}

/// The temporal join: alerts wait (keyed state) until both watermarks pass their time, then
/// take the profile version valid at that time. Profile versions older than the newest one the
/// watermark passed are dropped: no alert still to come can need them.
struct EnrichAlerts {
    events: Events,
    /// Alerts of the account waiting for the watermark: (alert, time).
    pending: ListState<u64, (u64, i64)>,
    /// Profile versions of the account still needed: (valid from, version), in arrival order.
    versions: ListState<u64, (i64, u64)>,
}

impl KeyedCoProcessFunction<u64, u64, u64, String> for EnrichAlerts {
    fn process1(
        &mut self,
        alert: u64,
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<String>,
    ) -> OperatorResult {
        let at = ctx.timestamp().unwrap_or_default();
        self.pending.add(ctx.state(), (alert, at))?;
        ctx.register_event_time_timer(at)?;
        Ok(())
    }

    fn process2(
        &mut self,
        profile: u64,
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<String>,
    ) -> OperatorResult {
        let from = ctx.timestamp().unwrap_or_default();
        self.versions.add(ctx.state(), (from, self.events.profile_version(profile)))?;
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp_ms: i64,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<String>,
    ) -> OperatorResult {
        let account = *ctx.key();
        let versions = self.versions.get(ctx.state())?;
        let valid_at = |t: i64| versions.iter().filter(|(from, _)| *from <= t).max().map_or(0, |(_, v)| *v);
        let (due, waiting): (Vec<_>, Vec<_>) =
            self.pending.get(ctx.state())?.into_iter().partition(|(_, at)| *at <= timestamp_ms);
        for (alert, at) in due {
            out.emit(format!("{alert},{account},{at},{}", valid_at(at)));
        }
        self.pending.set(ctx.state(), waiting)?;
        let newest_passed = versions.iter().filter(|(from, _)| *from <= timestamp_ms).max().copied();
        let still_needed: Vec<(i64, u64)> =
            versions.into_iter().filter(|v| v.0 > timestamp_ms || Some(*v) == newest_passed).collect();
        self.versions.set(ctx.state(), still_needed)?;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    rill::init_logging();
    let args = Args::parse();
    anyhow::ensure!(args.accounts > 0, "--accounts must be at least 1");
    let events = Events { alerts: args.alerts, profiles: args.profiles, accounts: args.accounts };
    if args.verify {
        return verify(&args, events);
    }
    let env = args.job.builder().tick_interval(std::time::Duration::from_millis(5)).build()?;
    let mut alert_source = GeneratorSource::new(0..args.alerts).ordered();
    let mut profile_source = GeneratorSource::new(0..args.profiles).ordered();
    if let Some(rate) = args.rate {
        alert_source = alert_source.rate_per_second(rate);
        profile_source = profile_source.rate_per_second((rate * args.profiles / args.alerts.max(1)).max(1));
    }
    let every = std::time::Duration::from_millis(5);
    let alerts =
        args.job.inject_failures(env.source("alerts", alert_source).uid("alerts")).assign_timestamps_and_watermarks(
            WatermarkStrategy::ascending(move |i: &u64| events.alert_time(*i)).with_emit_interval(every),
        );
    let profiles = env.source("profiles", profile_source).uid("profiles").assign_timestamps_and_watermarks(
        WatermarkStrategy::ascending(move |j: &u64| events.profile_time(*j)).with_emit_interval(every),
    );
    let enriched = alerts
        .connect(profiles)
        .key_by(move |i: &u64| events.alert_account(*i), move |j: &u64| events.profile_account(*j))
        .process_with_timestamps(
            move |i: &u64| events.alert_time(*i),
            move |j: &u64| events.profile_time(*j),
            move |state: &mut StateRegistry<'_, u64>| {
                Ok(EnrichAlerts { events, pending: state.list("pending")?, versions: state.list("versions")? })
            },
        )
        .uid("enrich");
    rill::OutputLocation::parse(args.output.as_deref(), args.job.dir.join("output"))?.sink(enriched).uid("output");
    let result = rill::execute_with_progress(env, "enrich").context("enrich job failed")?;
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    println!(
        "alerts={} profiles={} accounts={} parallelism={} elapsed_ms={} events_per_sec={:.0} checkpoints={} restored_from={} restarts={} stopped={}",
        args.alerts,
        args.profiles,
        args.accounts,
        args.job.parallelism,
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        result.checkpoints,
        result.restored_from.map_or("none".to_string(), |id| id.to_string()),
        result.restarts,
        result.stopped,
    );
    Ok(())
}

/// Checks that every alert is committed exactly once, with the profile version valid at its time.
fn verify(args: &Args, events: Events) -> anyhow::Result<()> {
    let mut latest = vec![0u64; args.accounts as usize];
    let mut expected = Vec::with_capacity(args.alerts as usize);
    let mut j = 0;
    for i in 0..args.alerts {
        let at = events.alert_time(i);
        while j < args.profiles && events.profile_time(j) <= at {
            latest[events.profile_account(j) as usize] = events.profile_version(j);
            j += 1;
        }
        let account = events.alert_account(i);
        expected.push(format!("{i},{account},{at},{}", latest[account as usize]));
    }
    let output = args.output.as_deref().map_or_else(|| args.job.dir.join("output"), PathBuf::from);
    let mut committed = rill::committed_lines(&output).with_context(|| format!("reading {}", output.display()))?;
    let alert_of = |line: &String| line.split(',').next().and_then(|a| a.parse::<u64>().ok()).unwrap_or(u64::MAX);
    committed.sort_by_key(alert_of);
    for (i, want) in expected.iter().enumerate() {
        match committed.get(i) {
            Some(got) if got == want => {}
            Some(got) => {
                anyhow::bail!("alert {i}: committed {got:?}, expected {want:?} (duplicates or gaps before it?)")
            }
            None => anyhow::bail!("{} alerts committed, {} expected", committed.len(), expected.len()),
        }
    }
    anyhow::ensure!(
        committed.len() == expected.len(),
        "{} lines committed for {} alerts: some committed twice",
        committed.len(),
        expected.len()
    );
    println!("verified=ok alerts={} accounts={}", expected.len(), args.accounts);
    Ok(())
}
