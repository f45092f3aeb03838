//! Dumps the running counts that `keyed_count` keeps in its keyed state, as `key<TAB>count`
//! sorted by key, read from a complete checkpoint with the job's own types
//! ([`rill::state::CheckpointReader`]); the job may be running, stopped or finished.
//!
//! ```text
//! cargo run --release --example dump_counts -- --dir /tmp/kc [--checkpoint ID]
//! ```

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Command line.
#[derive(Parser, Debug)]
struct Args {
    /// The `--dir` of the `keyed_count` job (its checkpoints are under `DIR/checkpoints`).
    #[arg(long)]
    dir: PathBuf,
    /// Read this checkpoint instead of the latest complete one.
    #[arg(long)]
    checkpoint: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let reader = rill::state::CheckpointReader::open(args.dir.join("checkpoints"), args.checkpoint)
        .context("opening the checkpoint")?;
    // keyed_count's `process(RunningCount::open)` has uid `process`; its state is `count`.
    let mut counts: Vec<(u64, u64)> = reader.values("counts/count").context("reading the counts")?;
    counts.sort_unstable();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (key, count) in &counts {
        writeln!(out, "{key}\t{count}")?;
    }
    out.flush()?;
    eprintln!("checkpoint={} keys={}", reader.checkpoint(), counts.len());
    Ok(())
}
