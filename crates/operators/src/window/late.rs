//! What happens to late records — those whose every window is past the watermark plus the allowed
//! lateness: dropped and counted (the default), or emitted on the same stream as a side output.

/// The policy for late records, as a type: it fixes the window operator's output type.
pub trait LatePolicy<T>: Send + Sync + 'static {
    /// The operator's output for window results of type `R`.
    type Output<R: Send + 'static>: Send + 'static;

    /// Wraps a window result.
    fn fired<R: Send + 'static>(result: R) -> Self::Output<R>;

    /// What a late record becomes, if anything.
    fn late<R: Send + 'static>(record: T) -> Option<Self::Output<R>>;
}

/// Late records are dropped and counted (a warning is logged for the first one of each subtask,
/// and the total when the subtask closes); the output is the window results alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropLate;

impl<T> LatePolicy<T> for DropLate {
    type Output<R: Send + 'static> = R;

    #[inline]
    fn fired<R: Send + 'static>(result: R) -> R {
        result
    }

    fn late<R: Send + 'static>(_record: T) -> Option<R> {
        None
    }
}

/// Late records are emitted too, as [`WindowOutput::Late`], next to the window results (a side
/// output on the same stream: split it with a `filter`/`flat_map` on the variant).
#[derive(Debug, Clone, Copy, Default)]
pub struct SideOutputLate;

impl<T: Send + 'static> LatePolicy<T> for SideOutputLate {
    type Output<R: Send + 'static> = WindowOutput<R, T>;

    #[inline]
    fn fired<R: Send + 'static>(result: R) -> WindowOutput<R, T> {
        WindowOutput::Fired(result)
    }

    fn late<R: Send + 'static>(record: T) -> Option<WindowOutput<R, T>> {
        Some(WindowOutput::Late(record))
    }
}

/// The output of a window operator whose late records go to a side output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WindowOutput<R, T> {
    /// A window result.
    Fired(R),
    /// A record that arrived after its windows were closed.
    Late(T),
}

impl<R, T> WindowOutput<R, T> {
    /// The window result, if this is one.
    pub fn fired(self) -> Option<R> {
        match self {
            WindowOutput::Fired(r) => Some(r),
            WindowOutput::Late(_) => None,
        }
    }

    /// The late record, if this is one.
    pub fn late(self) -> Option<T> {
        match self {
            WindowOutput::Late(t) => Some(t),
            WindowOutput::Fired(_) => None,
        }
    }
}
