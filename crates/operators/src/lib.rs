//! Operators for rill jobs: stateless ones (map, filter, flat_map), keyed ones with state in
//! RocksDB (`process`, `reduce`), the deterministic [`GeneratorSource`], and sinks, among them the
//! exactly-once [`FileSink`].
//!
//! The methods come as extension traits on the runtime's streams: bring [`StreamExt`] and
//! [`KeyedStreamExt`] into scope (the `rill` facade's prelude does).
//!
//! Depends on `rill-runtime` (operator traits, streams) and `rill-state` (keyed state handles).
#![warn(missing_docs)]

mod basic;
mod ext;
mod file_sink;
mod generator;
mod keyed;
mod sinks;

pub use basic::{Filter, FlatMap, Map};
pub use ext::{KeyedStreamExt, StreamExt};
pub use file_sink::{Encoder, FileSink, ROLLED_BACK_DIR};
pub use generator::GeneratorSource;
pub use keyed::{KeyedContext, KeyedProcess, KeyedProcessFunction, Reduce, StateRegistry};
pub use sinks::{CollectSink, DiscardSink, PrintSink};
