//! Stateless record-at-a-time operators: map, filter, flat_map. Each is `Clone`: its factory is
//! `ClonePerSubtask` (each subtask runs a clone).

use rill_runtime::{Collector, Operator, OperatorContext, OperatorResult};

/// Applies a function to every record.
#[derive(Clone)]
pub struct Map<F>(pub F);

impl<I, O, F> Operator<I, O> for Map<F>
where
    F: Fn(I) -> O + Send + 'static,
{
    #[inline]
    fn process(&mut self, record: I, _ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult {
        out.emit((self.0)(record));
        Ok(())
    }
}

/// Keeps the records a predicate accepts.
#[derive(Clone)]
pub struct Filter<F>(pub F);

impl<T, F> Operator<T, T> for Filter<F>
where
    F: Fn(&T) -> bool + Send + 'static,
{
    #[inline]
    fn process(&mut self, record: T, _ctx: &mut OperatorContext<'_>, out: &mut Collector<T>) -> OperatorResult {
        if (self.0)(&record) {
            out.emit(record);
        }
        Ok(())
    }
}

/// Turns every record into zero or more records.
#[derive(Clone)]
pub struct FlatMap<F>(pub F);

impl<I, O, It, F> Operator<I, O> for FlatMap<F>
where
    F: Fn(I) -> It + Send + 'static,
    It: IntoIterator<Item = O>,
{
    fn process(&mut self, record: I, _ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult {
        for o in (self.0)(record) {
            out.emit(o);
        }
        Ok(())
    }
}
