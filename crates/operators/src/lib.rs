//! Operators for rill jobs: stateless ones (map, filter, flat_map), keyed ones with state in
//! RocksDB (`process` with checkpointed event- and processing-time timers, `reduce`, state with a
//! time to live: [`StateTtlConfig`]), functions
//! of two inputs joined with `connect` ([`KeyedCoProcessFunction`], [`CoProcessFunction`],
//! [`KeyedBroadcastProcessFunction`] with [`BroadcastState`]), the interval join
//! ([`IntervalJoinExt`]) and window joins and co-groups ([`WindowJoinExt`]), event time
//! ([`WatermarkStrategy`] and tumbling, sliding and session windows, see [`WindowedStream`]), the
//! deterministic [`GeneratorSource`], and sinks, among them the exactly-once [`FileSink`] (local
//! directories) and [`ObjectStoreSink`] (`s3://`, on multipart uploads).
//!
//! The methods come as extension traits on the runtime's streams: bring [`StreamExt`],
//! [`KeyedStreamExt`] and, for two inputs, [`ConnectedKeyedStreamsExt`], [`ConnectedStreamsExt`]
//! [`BroadcastConnectedStreamsExt`], [`IntervalJoinExt`] and [`WindowJoinExt`] into scope (the `rill` facade's prelude does).
//!
//! Depends on `rill-runtime` (operator traits, streams) and `rill-state` (keyed state handles).

mod basic;
mod broadcast;
mod co_process;
mod ext;
mod file_sink;
mod generator;
mod inject_failures;
mod interval_join;
mod keyed;
mod object_sink;
mod object_writer;
mod running_count;
mod sinks;
mod timers;
mod ttl;
mod watermark_assigner;
mod watermark_strategy;
mod window;
mod window_join;

pub use basic::{Filter, FlatMap, Map};
pub use broadcast::{
    BroadcastConnectedStreamsExt, BroadcastState, KeyedBroadcastProcess, KeyedBroadcastProcessFunction,
    KeyedBroadcastProcessOperator, WithBroadcast,
};
pub use co_process::{
    CoProcessFunction, CoProcessOperator, ConnectedKeyedStreamsExt, ConnectedStreamsExt, KeyedCoProcessFunction,
};
pub use ext::{KeyedStreamExt, StreamExt};
pub use file_sink::{
    committed_lines, committed_part_files, Encoder, FileSink, FileSinkError, FileSinkWriter, PendingFile,
    ROLLED_BACK_DIR,
};
pub use generator::{GeneratorSource, GeneratorSourceReader, GeneratorSplit};
pub use inject_failures::InjectFailures;
pub use interval_join::{BoundedIntervalJoin, IntervalJoin, IntervalJoinExt, JoinTimes, ProcessJoinFunction};
pub use keyed::{KeyedContext, KeyedProcess, KeyedProcessFunction, KeyedProcessOperator, Reduce, StateRegistry};
pub use object_sink::{ObjectStoreSink, OpenUpload, SealedUpload, UploadBatch};
pub use object_writer::ObjectStoreSinkWriter;
pub use running_count::RunningCount;
pub use sinks::{CollectSink, DiscardSink, PrintSink};
pub use timers::TimeDomain;
pub use ttl::{StateTtlConfig, TtlListState, TtlMapState, TtlUpdate, TtlValueState};
pub use watermark_assigner::{TimestampsAndWatermarks, TimestampsAndWatermarksOperator};
pub use watermark_strategy::{
    BoundedOutOfOrderness, TimestampFn, WatermarkGenerator, WatermarkOutput, WatermarkStrategy,
};
pub use window::{
    AggregateFunction, Count, DropLate, EventTimeSessionWindows, LatePolicy, ProcessWindowFunction, SideOutputLate,
    SlidingEventTimeWindows, TimeWindow, TumblingEventTimeWindows, WindowAssigner, WindowOutput, Windowed,
    WindowedStream,
};
pub use window_join::{CoGroup, Join, WindowJoin, WindowJoinExt, WindowJoinKeyed, WindowJoinWhere, WindowedJoin};
