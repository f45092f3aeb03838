//! A panic in a task is reported once: by the job, as [`crate::RuntimeError::Panic`] with its
//! message and where it happened, not also by the default panic hook on stderr (which printed it,
//! with a backtrace, before the job reported it again).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is running a task (its panics are caught and reported by the job).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    /// Where this thread's last panic happened (`file:line:column`).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs, once per process, a panic hook that records where a task panicked instead of
/// printing it; panics of every other thread go to the hook that was there before.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(Cell::get) {
                LOCATION.with(|l| *l.borrow_mut() = info.location().map(|at| at.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs the task `f`. A panic is caught and returned as its message and where it happened.
pub(crate) fn catch_task_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    IN_TASK.with(|t| t.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    IN_TASK.with(|t| t.set(false));
    outcome.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        match LOCATION.with(|l| l.borrow_mut().take()) {
            Some(at) => format!("{message} (at {at})"),
            None => message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_panic_comes_back_with_its_message_and_location() {
        let err = catch_task_panic(|| -> u32 { panic!("the sky fell") }).unwrap_err();
        assert!(err.starts_with("the sky fell (at "), "{err}");
        assert!(err.contains("panics.rs:"), "names the file and line: {err}");
        assert_eq!(catch_task_panic(|| 7), Ok(7));
    }
}
