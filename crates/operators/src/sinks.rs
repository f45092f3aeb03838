//! Simple sinks: print to stdout, collect into memory (for tests), discard.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rill_runtime::{Collector, OpenContext, Operator, OperatorContext, OperatorFactory, OperatorResult};

/// Prints every record's `Display` form on its own line. Not transactional.
#[derive(Debug, Clone, Default)]
pub struct PrintSink;

impl<T: std::fmt::Display + Send + 'static> Operator<T, ()> for PrintSink {
    fn process(&mut self, record: T, _ctx: &mut OperatorContext<'_>, _out: &mut Collector<()>) -> OperatorResult {
        let _ = writeln!(std::io::stdout().lock(), "{record}");
        Ok(())
    }
}

/// Collects records into a shared vector (tests). Records replayed after a restart appear again.
#[derive(Debug, Clone)]
pub struct CollectSink<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> CollectSink<T> {
    /// A sink and the handle to read what it collected.
    pub fn new() -> (Self, Arc<Mutex<Vec<T>>>) {
        let items = Arc::new(Mutex::new(Vec::new()));
        (CollectSink { items: items.clone() }, items)
    }
}

impl<T: Send + 'static> Operator<T, ()> for CollectSink<T> {
    fn process(&mut self, record: T, _ctx: &mut OperatorContext<'_>, _out: &mut Collector<()>) -> OperatorResult {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).push(record);
        Ok(())
    }
}

/// Discards every record (throughput measurements).
#[derive(Debug, Clone, Default)]
pub struct DiscardSink;

impl<T: Send + 'static> Operator<T, ()> for DiscardSink {
    #[inline]
    fn process(&mut self, _record: T, _ctx: &mut OperatorContext<'_>, _out: &mut Collector<()>) -> OperatorResult {
        Ok(())
    }
}

impl<T: std::fmt::Display + Send + 'static> OperatorFactory<T, ()> for PrintSink {
    type Operator = Self;

    fn open(&self, _ctx: &mut OpenContext<'_>) -> OperatorResult<Self> {
        Ok(PrintSink)
    }
}

impl<T: Send + 'static> OperatorFactory<T, ()> for CollectSink<T> {
    type Operator = Self;

    fn open(&self, _ctx: &mut OpenContext<'_>) -> OperatorResult<Self> {
        Ok(CollectSink { items: self.items.clone() })
    }
}

impl<T: Send + 'static> OperatorFactory<T, ()> for DiscardSink {
    type Operator = Self;

    fn open(&self, _ctx: &mut OpenContext<'_>) -> OperatorResult<Self> {
        Ok(DiscardSink)
    }
}
