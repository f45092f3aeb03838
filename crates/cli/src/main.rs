//! `rill`: the command-line tool of rill jobs (`cargo install --path crates/cli`).
//!
//! ```text
//! rill checkpoints list DIR          every checkpoint: id, completion time, size, status
//! rill checkpoints show DIR [ID]     one checkpoint (default: the newest complete one):
//!                                    vertices, subtasks, key groups, state sizes, operator
//!                                    state per operator, each Kinesis shard's position
//! rill checkpoints verify DIR [ID]   checksums and missing files; exit code 0 or 1
//! ```
//!
//! `DIR` is a job's checkpoint directory (the one holding `chk-N`, e.g. `--dir`/checkpoints of
//! the examples). Reading goes through `rill-state` (the same store and checks a restore uses);
//! the tool never writes. Depends on `clap`, `humantime`, `anyhow`, `bincode` and
//! `rill-kinesis-source` (to read its shard positions).

mod checkpoints;
mod positions;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "rill", about = "Inspect and verify the checkpoints of rill jobs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Checkpoints of a job.
    #[command(subcommand)]
    Checkpoints(Checkpoints),
}

#[derive(Subcommand, Debug)]
enum Checkpoints {
    /// Every checkpoint: id, completion time, size, status.
    List {
        /// The job's checkpoint directory.
        dir: PathBuf,
    },
    /// One checkpoint in detail (default: the newest complete one).
    Show {
        /// The job's checkpoint directory.
        dir: PathBuf,
        /// Checkpoint id.
        id: Option<u64>,
    },
    /// Checks every file against the manifest's sizes and checksums (default: every
    /// checkpoint that has a manifest); exit code 1 if one does not match.
    Verify {
        /// The job's checkpoint directory.
        dir: PathBuf,
        /// Checkpoint id.
        id: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Checkpoints(command) = cli.command;
    let result = match command {
        Checkpoints::List { dir } => checkpoints::list(&dir),
        Checkpoints::Show { dir, id } => checkpoints::show(&dir, id),
        Checkpoints::Verify { dir, id } => checkpoints::verify(&dir, id),
    };
    match result {
        Ok(report) => {
            print!("{}", report.text);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("rill: {e:#}");
            ExitCode::from(2)
        }
    }
}
