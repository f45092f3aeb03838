//! Two inputs into one operator (Flink's `ConnectedStreams`): `a.connect(b)`, then keyed by one
//! key on both sides (`key_by(ka, kb)`) for a keyed two-input operator, or as they are.
//!
//! The operator's vertex has one input per stream, so the runtime's input gate aligns barriers
//! across both, its watermark is the minimum of theirs (an idle input does not hold it back), and
//! its input ends when both have ended: nothing here is special to two inputs. Records travel as
//! [`CoInput`], tagged with their side by a stateless operator chained after each stream; user
//! functions get them untagged (`process1`, `process2`).

use std::hash::Hash;
use std::sync::Arc;

use rill_state::key_group_of;

use crate::context::{Collector, OperatorContext};
use crate::key_selector::KeyGroups;
use crate::partition::Partitioner;
use crate::{ClonePerSubtask, DataStream, KeySelector, KeyedStream, Operator, OperatorFactory, OperatorResult};

/// A record of one of the two inputs of a two-input operator, as the runtime carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoInput<A, B> {
    /// A record of the first input (the stream `connect` was called on).
    First(A),
    /// A record of the second input (the stream passed to `connect`).
    Second(B),
}

/// Two streams feeding one operator with two inputs: made by [`DataStream::connect`].
pub struct ConnectedStreams<A, B> {
    first: DataStream<CoInput<A, B>>,
    second: DataStream<CoInput<A, B>>,
}

/// Two streams partitioned by one key, feeding one keyed operator with two inputs: both sides'
/// records of a key go to the same subtask, which holds that key's state for both. Made by
/// [`ConnectedStreams::key_by`].
pub struct ConnectedKeyedStreams<A, B, K> {
    stream: KeyedStream<CoInput<A, B>, K>,
}

/// Tags each record of one input with its side: `I` is `A` or `B`, `O` is `CoInput<A, B>`.
struct Tag<I, O>(fn(I) -> O);

impl<I, O> Clone for Tag<I, O> {
    fn clone(&self) -> Self {
        Tag(self.0)
    }
}

impl<I: Send + 'static, O: Send + 'static> Operator<I, O> for Tag<I, O> {
    #[inline]
    fn process(&mut self, record: I, _: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult {
        out.emit((self.0)(record));
        Ok(())
    }
}

/// The first input's records, tagged.
fn tag_first<A: Send + 'static, B: Send + 'static>(first: DataStream<A>) -> DataStream<CoInput<A, B>> {
    first.transform("connect-first", ClonePerSubtask(Tag::<A, CoInput<A, B>>(CoInput::First)))
}

/// The second input's records, tagged.
fn tag_second<A: Send + 'static, B: Send + 'static>(second: DataStream<B>) -> DataStream<CoInput<A, B>> {
    second.transform("connect-second", ClonePerSubtask(Tag::<B, CoInput<A, B>>(CoInput::Second)))
}

/// Both tagged inputs partitioned by one key (`first_key` of the first input's records,
/// `second_key` of the second's) into one new vertex of `parallelism` (the job's if `None`).
fn keyed_merge<A, B, K, FA, FB>(
    first: DataStream<CoInput<A, B>>,
    second: DataStream<CoInput<A, B>>,
    first_key: FA,
    second_key: FB,
    parallelism: Option<usize>,
) -> ConnectedKeyedStreams<A, B, K>
where
    A: Send + 'static,
    B: Send + 'static,
    K: Hash + 'static,
    FA: Fn(&A) -> K + Send + Sync + 'static,
    FB: Fn(&B) -> K + Send + Sync + 'static,
{
    let max_parallelism = first.env().config.max_parallelism;
    let key = KeySelector::new(
        move |record: &CoInput<A, B>| match record {
            CoInput::First(a) => first_key(a),
            CoInput::Second(b) => second_key(b),
        },
        max_parallelism,
    );
    let hash = Partitioner::Hash(key.key_groups());
    let merged = first.merge("connect", hash.clone(), vec![(second, hash)]);
    let merged = match parallelism {
        Some(p) => merged.set_parallelism(p),
        None => merged,
    };
    ConnectedKeyedStreams { stream: KeyedStream::from_parts(merged, key) }
}

impl<A: Send + 'static, K: Hash + 'static> KeyedStream<A, K> {
    /// Connects this keyed stream with `other`, keyed the same way (Flink's `connect` of two
    /// keyed streams): records of both with equal keys meet in one subtask of one keyed
    /// two-input operator. Each input goes straight into the operator's vertex.
    pub fn connect<B: Send + 'static>(self, other: KeyedStream<B, K>) -> ConnectedKeyedStreams<A, B, K> {
        let (first, second) = (self.into_parts(), other.into_parts());
        let parallelism = first.parallelism.or(second.parallelism);
        let (first_key, second_key) = (first.key, second.key);
        keyed_merge(
            tag_first(first.input),
            tag_second(second.input),
            move |a: &A| first_key.key(a),
            move |b: &B| second_key.key(b),
            parallelism,
        )
    }
}

impl<A: Send + 'static> DataStream<A> {
    /// Connects this stream (the first input) with `other` (the second) into one operator with
    /// two inputs of different types (Flink's `connect`). Key both with
    /// [`ConnectedStreams::key_by`] for keyed state shared by both sides.
    pub fn connect<B: Send + 'static>(self, other: DataStream<B>) -> ConnectedStreams<A, B> {
        let (first, second) = (tag_first(self), tag_second(other));
        ConnectedStreams { first, second }
    }
}

impl<A: Send + 'static, B: Send + 'static> ConnectedStreams<A, B> {
    /// Partitions both inputs by one key: `first_key` of the first input's records,
    /// `second_key` of the second's. Records of both sides with equal keys meet in one subtask.
    pub fn key_by<K, FA, FB>(self, first_key: FA, second_key: FB) -> ConnectedKeyedStreams<A, B, K>
    where
        K: Hash + 'static,
        FA: Fn(&A) -> K + Send + Sync + 'static,
        FB: Fn(&B) -> K + Send + Sync + 'static,
    {
        keyed_merge(self.first, self.second, first_key, second_key, None)
    }

    /// Partitions the first input by `first_key` and sends every record of the second to every
    /// subtask (Flink's keyed stream connected to a broadcast stream): each subtask holds the
    /// keyed state of its keys and sees the whole second input, typically rules or
    /// configuration kept in broadcast state. Records of both inputs are cloned by the broadcast
    /// exchange's type, so both are `Clone`.
    pub fn broadcast_second<K, F>(self, first_key: F) -> BroadcastConnectedStreams<A, B, K>
    where
        A: Clone,
        B: Clone,
        K: Hash + 'static,
        F: Fn(&A) -> K + Send + Sync + 'static,
    {
        let max_parallelism = self.first.env().config.max_parallelism;
        let key = KeySelector::new(first_key, max_parallelism);
        let for_groups = key.clone();
        // The second input never takes this edge: its records have no key and go everywhere.
        let key_groups: KeyGroups<CoInput<A, B>> = Arc::new(move |batch: &[CoInput<A, B>], groups: &mut Vec<u16>| {
            groups.extend(batch.iter().map(|record| match record {
                CoInput::First(a) => key_group_of(&for_groups.key(a), max_parallelism),
                CoInput::Second(_) => 0,
            }))
        });
        let everywhere = Partitioner::Broadcast(Arc::new(CoInput::clone));
        let merged = self.first.merge("connect", Partitioner::Hash(key_groups), vec![(self.second, everywhere)]);
        BroadcastConnectedStreams { stream: merged, key }
    }

    /// Adds an operator reading both inputs as they are partitioned (subtask i of each input
    /// feeds subtask i), its records tagged with their side: what an unkeyed two-input
    /// operator is built on.
    pub fn transform<O, F>(self, name: &str, factory: F) -> DataStream<O>
    where
        O: Send + 'static,
        F: OperatorFactory<CoInput<A, B>, O>,
    {
        self.first
            .merge("connect", Partitioner::Forward, vec![(self.second, Partitioner::Forward)])
            .transform(name, factory)
    }
}

/// A keyed first input and a broadcast second input feeding one keyed operator: made by
/// [`ConnectedStreams::broadcast_second`].
pub struct BroadcastConnectedStreams<A, B, K> {
    stream: DataStream<CoInput<A, B>>,
    key: KeySelector<A, K>,
}

impl<A: Send + 'static, B: Send + 'static, K: 'static> BroadcastConnectedStreams<A, B, K> {
    /// Sets the parallelism of the operator.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        BroadcastConnectedStreams { stream: self.stream.set_parallelism(parallelism), key: self.key }
    }

    /// The key selector of the first input, for the keyed operator added here.
    pub fn key_selector(&self) -> KeySelector<A, K> {
        self.key.clone()
    }

    /// Adds the keyed operator (its subtask gets a RocksDB state backend); records come tagged
    /// with their side, and only those of the first input come with key groups
    /// ([`OperatorContext::key_groups`]).
    pub fn transform_keyed<O, F>(self, name: &str, factory: F) -> DataStream<O>
    where
        O: Send + 'static,
        F: OperatorFactory<CoInput<A, B>, O>,
    {
        self.stream.transform_keyed_here(name, factory)
    }
}

impl<A: Send + 'static, B: Send + 'static, K: 'static> ConnectedKeyedStreams<A, B, K> {
    /// Sets the parallelism of the keyed two-input operator.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        ConnectedKeyedStreams { stream: self.stream.set_parallelism(parallelism) }
    }

    /// The key selector over both inputs, for the keyed operator added here.
    pub fn key_selector(&self) -> KeySelector<CoInput<A, B>, K> {
        self.stream.key_selector()
    }

    /// Adds the keyed two-input operator (its subtask gets a RocksDB state backend); records
    /// come tagged with their side.
    pub fn transform_keyed<O, F>(self, name: &str, factory: F) -> DataStream<O>
    where
        O: Send + 'static,
        F: OperatorFactory<CoInput<A, B>, O>,
    {
        self.stream.transform_keyed(name, factory)
    }
}
