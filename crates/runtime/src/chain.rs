//! Operator chains: the operators of one vertex run back to back in one thread, passing batches
//! by value. Each link is an [`Emitter`]; the tail is an exchange to other subtasks, a fan-out to
//! several consumers ([`Tee`]), or nothing.

use std::sync::Arc;

use crate::context::{Collector, OpenContext, OperatorContext, TaskState};
use crate::operator_watermark;
use crate::{Barrier, Operator, OperatorFactory, OperatorResult, Result, RuntimeError, Watermark};

/// Opens (in the subtask's thread, once its state is restored) the chain that consumes `T`.
pub(crate) type Opener<T> = Box<dyn FnOnce(&mut TaskState) -> Result<Box<dyn Emitter<T>>> + Send>;

/// One link of a chain: receives the previous link's output. What flows in the stream (records,
/// watermarks, idleness, barriers, end of input) every link must handle; the rest defaults to
/// nothing, what the end of a chain does.
pub(crate) trait Emitter<T>: Send {
    /// Records, with their key groups when they arrived on a keyed channel (for the chain's first
    /// operators only: see [`OperatorContext::key_groups`]).
    fn push(&mut self, batch: Vec<T>, key_groups: Option<&[u16]>, st: &mut TaskState) -> Result<()>;
    fn watermark(&mut self, watermark: Watermark, st: &mut TaskState) -> Result<()>;
    /// The input went idle.
    fn idle(&mut self, st: &mut TaskState) -> Result<()>;
    /// Sends the barrier on to the next subtasks.
    fn forward_barrier(&mut self, barrier: Barrier, st: &mut TaskState) -> Result<()>;
    /// The input ended.
    fn end_of_input(&mut self, st: &mut TaskState) -> Result<()>;

    /// Processing time advanced to `now_ms`.
    fn tick(&mut self, _now_ms: i64, _st: &mut TaskState) -> Result<()> {
        Ok(())
    }
    /// Lets every operator snapshot (and emit what it must before the barrier).
    fn prepare_barrier(&mut self, _barrier: Barrier, _st: &mut TaskState) -> Result<()> {
        Ok(())
    }
    /// Checkpoint `epoch` is complete.
    fn commit(&mut self, _epoch: u64, _st: &mut TaskState) -> Result<()> {
        Ok(())
    }
    /// Sends partially filled output batches (before the subtask waits for input).
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// The subtask shuts down.
    fn close(&mut self, _st: &mut TaskState) -> Result<()> {
        Ok(())
    }
}

/// Hands on what was emitted into `out` (by an operator or a source): its records as one batch,
/// then its watermark, then its idleness.
pub(crate) fn pass_on<T>(out: &mut Collector<T>, next: &mut dyn Emitter<T>, st: &mut TaskState) -> Result<()> {
    if !out.records.is_empty() {
        let batch = out.take_batch();
        next.push(batch, None, st)?;
    }
    if let Some(wm) = out.watermark.take() {
        next.watermark(wm, st)?;
    }
    if std::mem::take(&mut out.idle) {
        next.idle(st)?;
    }
    Ok(())
}

/// An operator followed by the rest of its chain.
pub(crate) struct OperatorNode<I, O, Op> {
    op: Op,
    uid: Arc<str>,
    /// The highest watermark the operator has seen (checkpointed, restored at open).
    watermark: Option<Watermark>,
    next: Box<dyn Emitter<O>>,
    out: Collector<O>,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<I, O, Op> OperatorNode<I, O, Op>
where
    O: Send + 'static,
{
    /// Opens `factory`'s operator in this subtask, in front of `next`.
    pub(crate) fn open<F>(factory: &F, uid: Arc<str>, next: Box<dyn Emitter<O>>, st: &mut TaskState) -> Result<Self>
    where
        I: Send + 'static,
        Op: Operator<I, O>,
        F: OperatorFactory<I, O, Operator = Op>,
    {
        let op = factory
            .open(&mut OpenContext::new(st, &uid))
            .map_err(|e| RuntimeError::in_operator(&uid, st.info.name(), e))?;
        let mut node = OperatorNode {
            op,
            uid,
            watermark: None,
            next,
            out: Collector::default(),
            _input: std::marker::PhantomData,
        };
        // The operator resumes at the watermark it had at the restored barrier.
        if let Some(w) = operator_watermark::restored(st, &node.uid) {
            Emitter::<I>::watermark(&mut node, w, st)?;
        }
        Ok(node)
    }

    /// Calls one hook of the operator with a fresh context, wrapping its error.
    #[inline]
    fn hook<R>(
        &mut self,
        st: &mut TaskState,
        f: impl FnOnce(&mut Op, &mut OperatorContext<'_>, &mut Collector<O>) -> OperatorResult<R>,
    ) -> Result<R> {
        let result = f(&mut self.op, &mut OperatorContext::new(st, &self.uid, self.watermark), &mut self.out);
        result.map_err(|e| RuntimeError::in_operator(&self.uid, st.info.name(), e))
    }

    fn drain(&mut self, st: &mut TaskState) -> Result<()> {
        pass_on(&mut self.out, self.next.as_mut(), st)
    }
}

impl<I, O, Op> Emitter<I> for OperatorNode<I, O, Op>
where
    I: Send + 'static,
    O: Send + 'static,
    Op: Operator<I, O>,
{
    #[inline]
    fn push(&mut self, batch: Vec<I>, key_groups: Option<&[u16]>, st: &mut TaskState) -> Result<()> {
        let mut ctx = OperatorContext::for_keyed_batch(st, &self.uid, self.watermark, key_groups, batch.len());
        let result = self.op.process_batch(batch, &mut ctx, &mut self.out);
        result.map_err(|e| RuntimeError::in_operator(&self.uid, st.info.name(), e))?;
        self.drain(st)
    }

    fn watermark(&mut self, watermark: Watermark, st: &mut TaskState) -> Result<()> {
        if self.watermark.is_some_and(|w| watermark <= w) {
            return Ok(()); // never backwards (after a restore, sources start from scratch)
        }
        self.watermark = Some(watermark);
        self.hook(st, |op, ctx, out| op.on_watermark(watermark, ctx, out))?;
        self.drain(st)
    }

    fn idle(&mut self, st: &mut TaskState) -> Result<()> {
        self.hook(st, |op, ctx, out| op.on_idle(ctx, out))?;
        self.drain(st)
    }

    fn tick(&mut self, now_ms: i64, st: &mut TaskState) -> Result<()> {
        self.hook(st, |op, ctx, out| op.on_processing_time(now_ms, ctx, out))?;
        self.drain(st)?;
        self.next.tick(now_ms, st)
    }

    fn prepare_barrier(&mut self, barrier: Barrier, st: &mut TaskState) -> Result<()> {
        operator_watermark::save(st, &self.uid, self.watermark);
        self.hook(st, |op, ctx, out| op.on_barrier(barrier, ctx, out))?;
        self.drain(st)?;
        self.next.prepare_barrier(barrier, st)
    }

    fn forward_barrier(&mut self, barrier: Barrier, st: &mut TaskState) -> Result<()> {
        self.next.forward_barrier(barrier, st)
    }

    fn commit(&mut self, epoch: u64, st: &mut TaskState) -> Result<()> {
        self.hook(st, |op, ctx, _| op.on_commit(epoch, ctx))?;
        self.next.commit(epoch, st)
    }

    fn end_of_input(&mut self, st: &mut TaskState) -> Result<()> {
        self.hook(st, |op, ctx, out| op.on_end_of_input(ctx, out))?;
        self.drain(st)?;
        self.next.end_of_input(st)
    }

    fn flush(&mut self) -> Result<()> {
        self.next.flush()
    }

    fn close(&mut self, st: &mut TaskState) -> Result<()> {
        let mine = self.hook(st, |op, ctx, _| op.on_close(ctx));
        let rest = self.next.close(st);
        mine.and(rest)
    }
}

/// A stream used by several consumers: each gets every record (copies for all but the last),
/// and every watermark, idleness, barrier and end of input.
pub(crate) struct Tee<T> {
    pub(crate) branches: Vec<Box<dyn Emitter<T>>>,
    pub(crate) copy: fn(&T) -> T,
}

impl<T: Send> Tee<T> {
    fn each(&mut self, mut f: impl FnMut(&mut Box<dyn Emitter<T>>) -> Result<()>) -> Result<()> {
        self.branches.iter_mut().try_for_each(&mut f)
    }
}

impl<T: Send> Emitter<T> for Tee<T> {
    fn push(&mut self, batch: Vec<T>, key_groups: Option<&[u16]>, st: &mut TaskState) -> Result<()> {
        let copy = self.copy;
        if let Some((last, rest)) = self.branches.split_last_mut() {
            for branch in rest {
                branch.push(batch.iter().map(copy).collect(), key_groups, st)?;
            }
            last.push(batch, key_groups, st)?;
        }
        Ok(())
    }
    fn watermark(&mut self, watermark: Watermark, st: &mut TaskState) -> Result<()> {
        self.each(|b| b.watermark(watermark, st))
    }
    fn idle(&mut self, st: &mut TaskState) -> Result<()> {
        self.each(|b| b.idle(st))
    }
    fn tick(&mut self, now_ms: i64, st: &mut TaskState) -> Result<()> {
        self.each(|b| b.tick(now_ms, st))
    }
    fn prepare_barrier(&mut self, barrier: Barrier, st: &mut TaskState) -> Result<()> {
        self.each(|b| b.prepare_barrier(barrier, st))
    }
    fn forward_barrier(&mut self, barrier: Barrier, st: &mut TaskState) -> Result<()> {
        self.each(|b| b.forward_barrier(barrier, st))
    }
    fn commit(&mut self, epoch: u64, st: &mut TaskState) -> Result<()> {
        self.each(|b| b.commit(epoch, st))
    }
    fn end_of_input(&mut self, st: &mut TaskState) -> Result<()> {
        self.each(|b| b.end_of_input(st))
    }
    fn flush(&mut self) -> Result<()> {
        self.each(|b| b.flush())
    }
    fn close(&mut self, st: &mut TaskState) -> Result<()> {
        let mut first_error = Ok(());
        for branch in &mut self.branches {
            let r = branch.close(st);
            if first_error.is_ok() {
                first_error = r;
            }
        }
        first_error
    }
}

/// The end of a chain that has no further output (after a sink, or a stream nobody consumes).
pub(crate) struct NullEmitter;

impl<T: Send> Emitter<T> for NullEmitter {
    fn push(&mut self, _: Vec<T>, _: Option<&[u16]>, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn watermark(&mut self, _: Watermark, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn idle(&mut self, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn forward_barrier(&mut self, _: Barrier, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn end_of_input(&mut self, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
}
