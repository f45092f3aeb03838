//! Graceful stop on SIGTERM and SIGINT: one listener thread per process (signal-hook) forwards
//! the first signal to every running job as a stop request; a second signal, or a signal while
//! no job runs, ends the process as the signal would by default.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use crossbeam_channel::Sender;
use rill_observe::JobCommand;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::{Result, RuntimeError};

#[derive(Default)]
struct Registry {
    /// Each job's command channel, and whether a signal stops it with drain.
    jobs: BTreeMap<u64, (Sender<JobCommand>, bool)>,
    next: u64,
    /// A stop was already forwarded: the next signal ends the process.
    signalled: bool,
}

static REGISTRY: OnceLock<std::result::Result<Mutex<Registry>, String>> = OnceLock::new();

fn registry() -> Result<&'static Mutex<Registry>> {
    REGISTRY
        .get_or_init(|| {
            let mut signals =
                Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("cannot handle SIGTERM and SIGINT: {e}"))?;
            std::thread::Builder::new()
                .name("rill-signals".into())
                .spawn(move || {
                    for signal in signals.forever() {
                        on_signal(signal);
                    }
                })
                .map_err(|e| format!("cannot start the signal thread: {e}"))?;
            Ok(Mutex::new(Registry::default()))
        })
        .as_ref()
        .map_err(|e| RuntimeError::Config(e.clone()))
}

fn on_signal(signal: i32) {
    let Ok(registry) = registry() else { return };
    let mut registry = registry.lock().unwrap_or_else(|p| p.into_inner());
    if registry.jobs.is_empty() || registry.signalled {
        drop(registry);
        eprintln!("signal {signal} again: exiting now, without a final checkpoint");
        let _ = signal_hook::low_level::emulate_default_handler(signal);
        std::process::exit(128 + signal);
    }
    registry.signalled = true;
    tracing::warn!(signal, "signal received: stopping gracefully (again to exit at once)");
    for (sender, drain) in registry.jobs.values() {
        let _ = sender.send(JobCommand::Stop { savepoint: false, drain: *drain, reply: None });
    }
}

/// While held, SIGTERM and SIGINT stop the job that `sender` steers.
pub(crate) struct SignalGuard {
    id: u64,
}

/// Forwards SIGTERM and SIGINT to a job as stop requests until the guard is dropped.
pub(crate) fn stop_on_signals(sender: Sender<JobCommand>, drain: bool) -> Result<SignalGuard> {
    let mut registry = registry()?.lock().unwrap_or_else(|p| p.into_inner());
    let id = registry.next;
    registry.next += 1;
    registry.jobs.insert(id, (sender, drain));
    Ok(SignalGuard { id })
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        if let Ok(registry) = registry() {
            let mut registry = registry.lock().unwrap_or_else(|p| p.into_inner());
            registry.jobs.remove(&self.id);
            if registry.jobs.is_empty() {
                registry.signalled = false;
            }
        }
    }
}
