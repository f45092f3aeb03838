//! Operator chains: the operators of one vertex run back to back in one thread, passing batches
//! by value. Each link is an [`Emitter`]; the tail is an exchange to other subtasks, or nothing.

use crate::operator::{Collector, Context, Operator, TaskState};
use crate::{Barrier, Result, Watermark};

/// One link of a chain: receives the previous link's output.
pub(crate) trait Emitter<T>: Send {
    fn open(&mut self, st: &mut TaskState) -> Result<()>;
    fn push(&mut self, batch: Vec<T>, st: &mut TaskState) -> Result<()>;
    fn watermark(&mut self, watermark: Watermark, st: &mut TaskState) -> Result<()>;
    /// The input went idle.
    fn idle(&mut self, st: &mut TaskState) -> Result<()>;
    /// Processing time advanced to `now_ms`.
    fn tick(&mut self, now_ms: i64, st: &mut TaskState) -> Result<()>;
    /// Lets every operator snapshot (and emit what it must before the barrier).
    fn prepare_barrier(&mut self, barrier: Barrier, st: &mut TaskState) -> Result<()>;
    /// Sends the barrier on to the next subtasks.
    fn forward_barrier(&mut self, barrier: Barrier, st: &mut TaskState) -> Result<()>;
    fn commit(&mut self, epoch: u64, st: &mut TaskState) -> Result<()>;
    fn end_of_input(&mut self, st: &mut TaskState) -> Result<()>;
    /// Sends partially filled output batches (before the subtask waits for input).
    fn flush(&mut self) -> Result<()>;
    fn close(&mut self, st: &mut TaskState) -> Result<()>;
}

/// An operator followed by the rest of its chain.
pub(crate) struct OperatorNode<I, O, Op> {
    op: Op,
    uid: String,
    next: Box<dyn Emitter<O>>,
    out: Collector<O>,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<I, O, Op> OperatorNode<I, O, Op> {
    pub(crate) fn new(op: Op, uid: String, next: Box<dyn Emitter<O>>) -> Self {
        OperatorNode { op, uid, next, out: Collector::default(), _input: std::marker::PhantomData }
    }
}

impl<I, O, Op> OperatorNode<I, O, Op>
where
    O: Send + 'static,
{
    fn drain(&mut self, st: &mut TaskState) -> Result<()> {
        if !self.out.records.is_empty() {
            let batch = std::mem::take(&mut self.out.records);
            self.next.push(batch, st)?;
        }
        if let Some(wm) = self.out.watermark.take() {
            self.next.watermark(wm, st)?;
        }
        if std::mem::take(&mut self.out.idle) {
            self.next.idle(st)?;
        }
        Ok(())
    }
}

impl<I, O, Op> Emitter<I> for OperatorNode<I, O, Op>
where
    I: Send + 'static,
    O: Send + 'static,
    Op: Operator<I, O>,
{
    fn open(&mut self, st: &mut TaskState) -> Result<()> {
        self.op.on_open(&mut Context::new(st, &self.uid))?;
        self.next.open(st)
    }

    fn push(&mut self, batch: Vec<I>, st: &mut TaskState) -> Result<()> {
        self.op.process_batch(batch, &mut Context::new(st, &self.uid), &mut self.out)?;
        self.drain(st)
    }

    fn watermark(&mut self, watermark: Watermark, st: &mut TaskState) -> Result<()> {
        self.op.on_watermark(watermark, &mut Context::new(st, &self.uid), &mut self.out)?;
        self.drain(st)
    }

    fn idle(&mut self, st: &mut TaskState) -> Result<()> {
        self.op.on_idle(&mut Context::new(st, &self.uid), &mut self.out)?;
        self.drain(st)
    }

    fn tick(&mut self, now_ms: i64, st: &mut TaskState) -> Result<()> {
        self.op.on_processing_time(now_ms, &mut Context::new(st, &self.uid), &mut self.out)?;
        self.drain(st)?;
        self.next.tick(now_ms, st)
    }

    fn prepare_barrier(&mut self, barrier: Barrier, st: &mut TaskState) -> Result<()> {
        self.op.on_barrier(barrier, &mut Context::new(st, &self.uid), &mut self.out)?;
        self.drain(st)?;
        self.next.prepare_barrier(barrier, st)
    }

    fn forward_barrier(&mut self, barrier: Barrier, st: &mut TaskState) -> Result<()> {
        self.next.forward_barrier(barrier, st)
    }

    fn commit(&mut self, epoch: u64, st: &mut TaskState) -> Result<()> {
        self.op.on_commit(epoch, &mut Context::new(st, &self.uid))?;
        self.next.commit(epoch, st)
    }

    fn end_of_input(&mut self, st: &mut TaskState) -> Result<()> {
        self.op.on_end_of_input(&mut Context::new(st, &self.uid), &mut self.out)?;
        self.drain(st)?;
        self.next.end_of_input(st)
    }

    fn flush(&mut self) -> Result<()> {
        self.next.flush()
    }

    fn close(&mut self, st: &mut TaskState) -> Result<()> {
        let mine = self.op.on_close(&mut Context::new(st, &self.uid));
        let rest = self.next.close(st);
        mine.and(rest)
    }
}

/// The end of a chain that has no further output (after a sink).
pub(crate) struct NullEmitter;

impl<T: Send> Emitter<T> for NullEmitter {
    fn open(&mut self, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn push(&mut self, _: Vec<T>, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn watermark(&mut self, _: Watermark, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn idle(&mut self, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn tick(&mut self, _: i64, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn prepare_barrier(&mut self, _: Barrier, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn forward_barrier(&mut self, _: Barrier, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn commit(&mut self, _: u64, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn end_of_input(&mut self, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn close(&mut self, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
}
