//! What user code implements for a record-at-a-time operator: the running [`Operator`] (one
//! required method, default hooks) and the [`OperatorFactory`] that opens it in each subtask.
//!
//! The factory is the description a job holds (`Send + Sync`, shared by every subtask); the
//! runtime calls [`OperatorFactory::open`] once per subtask, after state is restored, and runs
//! what it returns. State handles are plain fields of the running operator, which exists only
//! once it is opened.

use crate::context::{Collector, OpenContext, OperatorContext};
use crate::{Barrier, OperatorResult, Watermark};

/// A running stream operator of one subtask. Only [`Operator::process`] is required.
///
/// The runtime calls hooks on one thread per subtask, with inputs already aligned: an operator
/// never sees records of checkpoint n+1 before the barrier of checkpoint n. Errors are wrapped by
/// the runtime with the operator's uid and subtask.
pub trait Operator<I, O>: Send + 'static {
    /// Handles one record.
    fn process(&mut self, record: I, ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult;

    /// Handles a batch of records. The default calls [`Operator::process`] for each; operators that
    /// pass records on unchanged may move the whole batch (see [`Collector::emit_all`]).
    #[inline]
    fn process_batch(
        &mut self,
        batch: Vec<I>,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        for record in batch {
            self.process(record, ctx, out)?;
        }
        Ok(())
    }

    /// Event time advanced. The default forwards the watermark.
    fn on_watermark(
        &mut self,
        watermark: Watermark,
        _ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        out.emit_watermark(watermark);
        Ok(())
    }

    /// Every input is idle (see [`Collector::mark_idle`]). The default passes the idleness on.
    fn on_idle(&mut self, _ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult {
        out.mark_idle();
        Ok(())
    }

    /// Processing time advanced to `now_ms` (milliseconds since the Unix epoch). Called
    /// periodically, every [`crate::JobConfig::tick_interval`], until end of input: fire
    /// processing-time timers and emit periodic watermarks here.
    fn on_processing_time(
        &mut self,
        _now_ms: i64,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut Collector<O>,
    ) -> OperatorResult {
        Ok(())
    }

    /// A checkpoint barrier arrived (aligned): snapshot operator state here
    /// ([`crate::UnionState::snapshot`]). Keyed state is snapshotted by the runtime right after.
    fn on_barrier(
        &mut self,
        _barrier: Barrier,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut Collector<O>,
    ) -> OperatorResult {
        Ok(())
    }

    /// Checkpoint `epoch` is complete and durable (second phase of two-phase commit).
    fn on_commit(&mut self, _epoch: u64, _ctx: &mut OperatorContext<'_>) -> OperatorResult {
        Ok(())
    }

    /// All inputs ended: emit whatever is still held back. Runs before the final checkpoint.
    fn on_end_of_input(&mut self, _ctx: &mut OperatorContext<'_>, _out: &mut Collector<O>) -> OperatorResult {
        Ok(())
    }

    /// The subtask is shutting down (after the final commit, or on failure).
    fn on_close(&mut self, _ctx: &mut OperatorContext<'_>) -> OperatorResult {
        Ok(())
    }
}

/// The description of an operator: opened once per subtask into the running [`Operator`].
///
/// A closure `|ctx: &mut OpenContext<'_>| Ok(MyOperator { .. })` is a factory; so is
/// [`ClonePerSubtask`] around an operator that is `Clone`.
pub trait OperatorFactory<I, O>: Send + Sync + 'static {
    /// The running operator.
    type Operator: Operator<I, O>;

    /// Opens the operator of one subtask: register keyed state, open its union state
    /// ([`OpenContext::union_state`]) with what was restored.
    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Operator>;
}

impl<I, O, Op, F> OperatorFactory<I, O> for F
where
    Op: Operator<I, O>,
    F: Fn(&mut OpenContext<'_>) -> OperatorResult<Op> + Send + Sync + 'static,
{
    type Operator = Op;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Op> {
        self(ctx)
    }
}

/// The trivial factory of an operator that needs nothing at open: each subtask runs a clone.
///
/// ```
/// use rill_runtime::{ClonePerSubtask, Collector, OperatorContext, Operator, OperatorResult};
/// #[derive(Clone)]
/// struct Double;
/// impl Operator<u64, u64> for Double {
///     fn process(&mut self, r: u64, _: &mut OperatorContext<'_>, out: &mut Collector<u64>) -> OperatorResult {
///         out.emit(r * 2);
///         Ok(())
///     }
/// }
/// let factory = ClonePerSubtask(Double);
/// # let _ = factory;
/// ```
#[derive(Debug, Clone)]
pub struct ClonePerSubtask<Op>(pub Op);

impl<I, O, Op> OperatorFactory<I, O> for ClonePerSubtask<Op>
where
    Op: Operator<I, O> + Clone + Sync,
{
    type Operator = Op;

    fn open(&self, _ctx: &mut OpenContext<'_>) -> OperatorResult<Op> {
        Ok(self.0.clone())
    }
}
