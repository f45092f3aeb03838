//! Helpers for tests against the local Kinesis emulators (feature `test-utils`).
//!
//! - [`Emulator`]: the endpoint of kinesalite or kinesis-local from `RILL_KINESALITE_ENDPOINT` /
//!   `RILL_KINESIS_LOCAL_ENDPOINT` (set by `eval "$(scripts/emulators.sh env)"`). A missing
//!   variable is an error ([`crate::Error::EmulatorNotConfigured`]) so a test fails loudly
//!   instead of passing without an emulator.
//! - Streams: [`unique_stream_name`], [`create_stream`] (waits until ACTIVE), [`put_records`],
//!   [`read_all`], [`list_shard_ids`], [`delete_stream`].
//! - Faults: [`FaultInjector`] wraps the SDK's HTTP client and, per operation, answers with an
//!   error (throttling, expired iterator, any code), delays calls, or fails chosen `PutRecords`
//!   entries, without the failed entries ever reaching the emulator.
//!
//! ```no_run
//! use rill_kinesis_common::test_utils::{create_stream, read_all, unique_stream_name, Emulator, Fault, FaultInjector};
//!
//! # async fn demo() -> rill_kinesis_common::Result<()> {
//! let faults = FaultInjector::new();
//! faults.inject("PutRecords", Fault::throttled(), 2); // the next two PutRecords calls
//! let connection = faults.install(Emulator::Kinesalite.connection_builder()?).build()?;
//! let client = connection.client().await?;
//! let stream = unique_stream_name("demo");
//! create_stream(&client, &stream, 2).await?;
//! let records = read_all(&client, &stream).await?;
//! # let _ = records; Ok(()) }
//! ```

mod emulator;
mod faults;
mod streams;

pub use emulator::Emulator;
pub use faults::{Fault, FaultInjector};
pub use streams::{
    create_stream, delete_stream, list_shard_ids, put_records, read_all, unique_stream_name, wait_until_active,
    StoredRecord,
};
