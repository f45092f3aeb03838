//! The dataflow API: [`StreamEnv`], [`DataStream`] and [`KeyedStream`].
//!
//! The job graph is a DAG: a stream may feed several operators (clone it; each use gets a copy of
//! every record, and every watermark, barrier and end of input). Operators between two exchanges
//! run chained in one thread; the graph is wired per attempt, and each subtask opens its chain's
//! operators in its own thread, after its state is restored.

use std::cell::RefCell;
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;

use crate::chain::{Emitter, NullEmitter, Opener, OperatorNode, Tee};
use crate::config::{JobConfig, StreamEnvBuilder};
use crate::context::TaskState;
use crate::graph::{channel_factory, check_uid, Edge, Graph, UidCell, Vertex, Wiring};
use crate::partition::{Exchange, Partitioner};
use crate::source::SourceFactory;
use crate::task::{InputTask, SourceTask, Task};
use crate::{KeySelector, OperatorFactory, Result};

/// Wires one consumer of a stream in one subtask: takes its channel endpoints now, and returns
/// what opens its operators in the subtask's thread.
type Consumer<T> = Rc<dyn Fn(&mut Wiring<'_>) -> Result<Opener<T>>>;

/// Everything that consumes one stream.
struct Outlet<T> {
    consumers: Vec<Consumer<T>>,
    /// How to copy a record for all consumers but the last (set when the stream is cloned).
    copy: Option<fn(&T) -> T>,
}

type SharedOutlet<T> = Rc<RefCell<Outlet<T>>>;

impl StreamEnv {
    /// A new outlet for the stream `what`; the job refuses to run while it has no consumer.
    fn new_outlet<T: 'static>(&self, what: String) -> SharedOutlet<T> {
        let outlet = Rc::new(RefCell::new(Outlet { consumers: Vec::new(), copy: None }));
        let watched = Rc::downgrade(&outlet);
        let consumed = move || watched.upgrade().is_none_or(|o| !o.borrow().consumers.is_empty());
        self.graph.borrow_mut().outlets.push((what, Rc::new(consumed)));
        outlet
    }
}

/// Wires every consumer of `outlet` for one subtask into one opener (a fan-out if several).
fn wire_outlet<T: Send + 'static>(outlet: &SharedOutlet<T>, w: &mut Wiring<'_>) -> Result<Opener<T>> {
    let (consumers, copy) = {
        let o = outlet.borrow();
        (o.consumers.clone(), o.copy)
    };
    let mut openers = consumers.iter().map(|c| c(w)).collect::<Result<Vec<_>>>()?;
    match (openers.len(), copy) {
        (0, _) => Ok(Box::new(|_: &mut TaskState| Ok(Box::new(NullEmitter) as Box<dyn Emitter<T>>))),
        (1, _) => Ok(openers.remove(0)),
        (_, Some(copy)) => Ok(Box::new(move |st: &mut TaskState| {
            let branches = openers.into_iter().map(|open| open(&mut *st)).collect::<Result<Vec<_>>>()?;
            Ok(Box::new(Tee { branches, copy }) as Box<dyn Emitter<T>>)
        })),
        (_, None) => Err(crate::RuntimeError::Internal("a stream with several consumers cannot copy records".into())),
    }
}

/// The entry point of a job: build streams from sources, then [`StreamEnv::execute`].
#[derive(Clone)]
pub struct StreamEnv {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) config: Rc<JobConfig>,
    pub(crate) monitor: rill_observe::JobMonitor,
}

impl StreamEnv {
    /// A builder for the job configuration.
    pub fn builder() -> StreamEnvBuilder {
        StreamEnvBuilder::default()
    }

    pub(crate) fn new(config: JobConfig) -> Self {
        StreamEnv {
            graph: Rc::new(RefCell::new(Graph::default())),
            config: Rc::new(config),
            monitor: rill_observe::JobMonitor::new(""),
        }
    }

    /// The job configuration.
    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    /// The live status of this job once it runs (for a progress line, tests, or a server of
    /// your own): what the dashboard and `/metrics` show.
    pub fn monitor(&self) -> rill_observe::JobMonitor {
        self.monitor.clone()
    }

    fn add_vertex(&self, name: &str, is_source: bool) -> usize {
        let mut g = self.graph.borrow_mut();
        g.vertices.push(Vertex {
            name: name.to_string(),
            head_uid: None,
            union_uid: None,
            parallelism: self.config.parallelism,
            keyed: false,
            is_source,
            uids: Vec::new(),
            factory: None,
        });
        g.vertices.len() - 1
    }

    fn set_factory(&self, vertex: usize, factory: impl Fn(&mut Wiring<'_>) -> Result<Box<dyn Task>> + 'static) {
        self.graph.borrow_mut().vertices[vertex].factory = Some(Rc::new(factory));
    }

    /// A stream read by `source`, which each subtask opens (see [`SourceFactory`]).
    pub fn source<T, S>(&self, name: &str, source: S) -> DataStream<T>
    where
        T: Send + 'static,
        S: SourceFactory<T>,
    {
        let vertex = self.add_vertex(name, true);
        let uid = self.graph.borrow_mut().operators.add(name, false, &[]);
        self.graph.borrow_mut().vertices[vertex].head_uid = Some(uid.clone());
        let outlet = self.new_outlet::<T>(format!("the output of source '{name}'"));
        let source = Arc::new(source);
        let out = outlet.clone();
        let cell = uid.clone();
        self.set_factory(vertex, move |w| {
            let opener = wire_outlet(&out, w)?;
            let uid = cell.borrow().clone();
            Ok(Box::new(SourceTask { factory: source.clone(), uid, opener: Some(opener), chain: None })
                as Box<dyn Task>)
        });
        DataStream { env: self.clone(), vertex, outlet, uid: Some(uid.clone()), producers: vec![uid] }
    }

    /// A vertex fed by `edges`, whose subtasks read all their channels, aligned; the operators
    /// feeding it are `producers`.
    fn input_vertex<T: Send + 'static>(&self, edges: Vec<usize>, to: usize, producers: Vec<UidCell>) -> DataStream<T> {
        let name = self.graph.borrow().vertices[to].name.clone();
        let outlet = self.new_outlet::<T>(format!("the output of '{name}'"));
        let out = outlet.clone();
        self.set_factory(to, move |w| {
            let mut inputs = Vec::new();
            for edge in &edges {
                inputs.extend(w.receivers::<T>(*edge)?);
            }
            let opener = wire_outlet(&out, w)?;
            Ok(Box::new(InputTask { inputs, opener: Some(opener), chain: None, gate: None }) as Box<dyn Task>)
        });
        DataStream { env: self.clone(), vertex: to, outlet, uid: None, producers }
    }
}

/// A stream of `T`. Operators added to it run in the same chain (no channel hop) until the next
/// partitioning. Clone it to feed several operators (`T: Clone`): each gets every record.
pub struct DataStream<T> {
    env: StreamEnv,
    vertex: usize,
    outlet: SharedOutlet<T>,
    /// The uid of the operator (or source) that produces this stream, if one does.
    uid: Option<UidCell>,
    /// The operators whose output this stream carries (also after a partitioning or a union):
    /// the inputs of the next operator, for its generated uid.
    producers: Vec<UidCell>,
}

impl<T: Clone> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        self.outlet.borrow_mut().copy = Some(T::clone);
        DataStream {
            env: self.env.clone(),
            vertex: self.vertex,
            outlet: self.outlet.clone(),
            uid: self.uid.clone(),
            producers: self.producers.clone(),
        }
    }
}

/// The end of a stream in a sink; set the sink's uid with [`DataStreamSink::uid`].
pub struct DataStreamSink {
    env: StreamEnv,
    uid: UidCell,
}

impl DataStreamSink {
    /// Sets the sink's uid (Flink's `uid`): the stable id its state is stored under, so that a
    /// checkpoint restores into it however the job around it changes.
    pub fn uid(self, uid: &str) -> Self {
        set_uid(&self.env, &self.uid, uid);
        self
    }
}

fn set_uid(env: &StreamEnv, cell: &UidCell, uid: &str) {
    match check_uid(uid) {
        Ok(()) => *cell.borrow_mut() = uid.into(),
        Err(e) => env.graph.borrow_mut().errors.push(e),
    }
}

impl<T: Send + 'static> DataStream<T> {
    /// The environment this stream belongs to.
    pub fn env(&self) -> &StreamEnv {
        &self.env
    }

    /// Sets the parallelism of the operators chained since the last partitioning (or the source).
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        self.env.graph.borrow_mut().vertices[self.vertex].parallelism = parallelism.max(1);
        self
    }

    /// Sets the uid of the operator that produces this stream (Flink's `uid`): the stable id its
    /// state is stored under, so that a checkpoint restores into it however the job around it
    /// changes. Without it the uid is generated from the operator's place in the job's topology
    /// (`map-3fa1b2c4`), and changes with it: set uids on stateful operators. Uids must be
    /// unique in the job.
    pub fn uid(self, uid: &str) -> Self {
        match &self.uid {
            Some(cell) => set_uid(&self.env, cell, uid),
            None => self
                .env
                .graph
                .borrow_mut()
                .errors
                .push(format!("uid '{uid}' is set on a stream no operator produces (right after a partitioning)")),
        }
        self
    }

    fn next_uid(&self, name: &str, keyed: bool) -> UidCell {
        let mut g = self.env.graph.borrow_mut();
        let uid = g.operators.add(name, keyed, &self.producers);
        let v = &mut g.vertices[self.vertex];
        v.uids.push(uid.clone());
        v.keyed |= keyed;
        if v.head_uid.is_none() {
            v.head_uid = Some(uid.clone());
        }
        uid
    }

    fn consume(&self, consumer: Consumer<T>) {
        self.outlet.borrow_mut().consumers.push(consumer);
    }

    fn chain<O, F>(self, name: &str, factory: F, keyed: bool) -> DataStream<O>
    where
        O: Send + 'static,
        F: OperatorFactory<T, O>,
    {
        let (stream, _) = self.chain_to(name, factory, keyed, true);
        stream
    }

    /// Adds an operator; `watched`: whether its output must be consumed (not for sinks).
    fn chain_to<O, F>(self, name: &str, factory: F, keyed: bool, watched: bool) -> (DataStream<O>, UidCell)
    where
        O: Send + 'static,
        F: OperatorFactory<T, O>,
    {
        let uid = self.next_uid(name, keyed);
        let factory = Arc::new(factory);
        let outlet = match watched {
            true => self.env.new_outlet::<O>(format!("the output of operator '{name}'")),
            false => Rc::new(RefCell::new(Outlet { consumers: Vec::new(), copy: None })),
        };
        let out = outlet.clone();
        let cell = uid.clone();
        self.consume(Rc::new(move |w| {
            let next = wire_outlet(&out, w)?;
            let (factory, uid) = (factory.clone(), cell.borrow().clone());
            Ok(Box::new(move |st: &mut TaskState| {
                let next = next(&mut *st)?;
                Ok(Box::new(OperatorNode::open(&*factory, uid, next, st)?) as Box<dyn Emitter<T>>)
            }) as Opener<T>)
        }));
        let producers = vec![uid.clone()];
        (DataStream { env: self.env, vertex: self.vertex, outlet, uid: Some(uid.clone()), producers }, uid)
    }

    /// Adds an operator to this chain (no channel hop); each subtask opens its own instance from
    /// `factory` (see [`OperatorFactory`]).
    pub fn transform<O, F>(self, name: &str, factory: F) -> DataStream<O>
    where
        O: Send + 'static,
        F: OperatorFactory<T, O>,
    {
        self.chain(name, factory, false)
    }

    /// Adds an operator that uses keyed state to this chain: for a vertex whose inputs are
    /// partitioned by key (a keyed stream's, or a keyed two-input operator's).
    pub(crate) fn transform_keyed_here<O, F>(self, name: &str, factory: F) -> DataStream<O>
    where
        O: Send + 'static,
        F: OperatorFactory<T, O>,
    {
        self.chain(name, factory, true)
    }

    /// Ends the stream in a sink: an operator with no output.
    pub fn sink<F>(self, name: &str, factory: F) -> DataStreamSink
    where
        F: OperatorFactory<T, ()>,
    {
        let env = self.env.clone();
        let (_, uid): (DataStream<()>, _) = self.chain_to(name, factory, false, false);
        DataStreamSink { env, uid }
    }

    /// Closes this chain with an exchange into a new vertex named `name`.
    fn exchange(self, name: &str, partitioner: Partitioner<T>) -> DataStream<T> {
        let to = self.env.add_vertex(name, false);
        let edge = self.edge_to(to, partitioner);
        self.env.input_vertex(vec![edge], to, self.producers.clone())
    }

    /// Adds the edge from this chain to vertex `to`, fed by an exchange at the end of this chain.
    fn edge_to(&self, to: usize, partitioner: Partitioner<T>) -> usize {
        let edge = {
            let mut g = self.env.graph.borrow_mut();
            let edge = g.edges.len();
            g.edges.push(Edge { from: self.vertex, to, channels: channel_factory::<T>(edge) });
            edge
        };
        self.consume(Rc::new(move |w| {
            let exchange = Exchange::new(w.senders::<T>(edge)?, partitioner.clone(), &w.info, w.metrics.clone());
            Ok(Box::new(move |_: &mut TaskState| Ok(Box::new(exchange) as Box<dyn Emitter<T>>)) as Opener<T>)
        }));
        edge
    }

    /// Spreads records round robin over the next operators' subtasks.
    pub fn rebalance(self) -> DataStream<T> {
        self.exchange("rebalance", Partitioner::Rebalance)
    }

    /// Sends every record to every subtask of the next operators.
    pub fn broadcast(self) -> DataStream<T>
    where
        T: Clone,
    {
        self.exchange("broadcast", Partitioner::Broadcast(Arc::new(T::clone)))
    }

    /// Partitions by key: all records with one key go to one subtask, which holds that key's state.
    pub fn key_by<K, F>(self, key: F) -> KeyedStream<T, K>
    where
        K: Hash + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let key = KeySelector::new(key, self.env.config.max_parallelism);
        KeyedStream::new(self, key)
    }

    /// Merges this stream with others of the same type into one operator with several inputs.
    /// Its `.uid(..)` names the union's vertex (in the dashboard, `/api/job` and checkpoints)
    /// unless operators are chained after it; then the first one's uid does, as for any vertex.
    pub fn union(self, others: Vec<DataStream<T>>) -> DataStream<T> {
        let others = others.into_iter().map(|other| (other, Partitioner::Forward)).collect();
        self.merge("union", Partitioner::Forward, others)
    }

    /// Merges this stream (partitioned by `partitioner`) with others (each with its own) into a
    /// new vertex with one input per stream: what `union` and the inputs of a two-input operator
    /// are.
    pub(crate) fn merge(
        self,
        name: &str,
        partitioner: Partitioner<T>,
        others: Vec<(DataStream<T>, Partitioner<T>)>,
    ) -> DataStream<T> {
        let to = self.env.add_vertex(name, false);
        let mut edges = vec![self.edge_to(to, partitioner)];
        for (other, partitioner) in &others {
            edges.push(other.edge_to(to, partitioner.clone()));
        }
        let others: Vec<DataStream<T>> = others.into_iter().map(|(other, _)| other).collect();
        let inputs: Vec<UidCell> = std::iter::once(&self).chain(&others).flat_map(|s| s.producers.clone()).collect();
        let uid = {
            let mut g = self.env.graph.borrow_mut();
            let uid = g.operators.add(name, false, &inputs);
            g.vertices[to].union_uid = Some(uid.clone());
            uid
        };
        DataStream { uid: Some(uid.clone()), ..self.env.input_vertex(edges, to, vec![uid]) }
    }
}

/// A stream partitioned by key. Operators added here may use keyed state. Clone it to feed
/// several keyed operators from one partitioning (`T: Clone`).
///
/// The exchange that partitions it is made when it is first used: for keyed operators it feeds
/// their vertex; connected with another keyed stream ([`KeyedStream::connect`]), each input is
/// exchanged straight into the two-input operator's vertex, with no hop between.
pub struct KeyedStream<T, K> {
    stream: RefCell<Partitioning<T>>,
    key: KeySelector<T, K>,
}

/// Where a keyed stream's exchange stands.
enum Partitioning<T> {
    /// Not made yet: the stream before it, and the parallelism asked for the keyed operators.
    Pending { input: DataStream<T>, parallelism: Option<usize> },
    /// Made: the stream after it, in the keyed operators' vertex.
    Made(DataStream<T>),
    /// Only while `clone` makes the exchange (it puts `Made` back before it returns).
    Making,
}

impl<T: Clone + Send + 'static, K: 'static> Clone for KeyedStream<T, K> {
    /// Both clones feed one vertex: the exchange is made now, once.
    fn clone(&self) -> Self {
        let made = match self.stream.replace(Partitioning::Making) {
            Partitioning::Pending { input, parallelism } => exchange_by_key(input, parallelism, &self.key),
            Partitioning::Made(stream) => stream,
            Partitioning::Making => unreachable!("KeyedStream::clone does not call itself"),
        };
        let copy = made.clone();
        self.stream.replace(Partitioning::Made(made));
        KeyedStream { stream: RefCell::new(Partitioning::Made(copy)), key: self.key.clone() }
    }
}

/// `input` partitioned by `key` into a new vertex of `parallelism` (the job's if `None`).
fn exchange_by_key<T: Send + 'static, K: 'static>(
    input: DataStream<T>,
    parallelism: Option<usize>,
    key: &KeySelector<T, K>,
) -> DataStream<T> {
    let made = input.exchange("keyed", Partitioner::Hash(key.key_groups()));
    match parallelism {
        Some(p) => made.set_parallelism(p),
        None => made,
    }
}

/// What a keyed stream is made of, for connecting it: the stream before its exchange (or after
/// it, if it was made), the parallelism asked for, and the key.
pub(crate) struct KeyedParts<T, K> {
    /// The stream to partition: before the exchange if it was not made; else after it.
    pub(crate) input: DataStream<T>,
    /// The parallelism asked for with `set_parallelism`, if any.
    pub(crate) parallelism: Option<usize>,
    /// The key selector.
    pub(crate) key: KeySelector<T, K>,
}

impl<T: Send + 'static, K: 'static> KeyedStream<T, K> {
    /// `input`, to be partitioned by `key`.
    pub(crate) fn new(input: DataStream<T>, key: KeySelector<T, K>) -> Self {
        KeyedStream { stream: RefCell::new(Partitioning::Pending { input, parallelism: None }), key }
    }

    /// `stream`, already partitioned by `key`.
    pub(crate) fn from_parts(stream: DataStream<T>, key: KeySelector<T, K>) -> Self {
        KeyedStream { stream: RefCell::new(Partitioning::Made(stream)), key }
    }

    /// The stream after the exchange, made now if it was not yet.
    fn made(self) -> DataStream<T> {
        let key = self.key;
        match self.stream.into_inner() {
            Partitioning::Pending { input, parallelism } => exchange_by_key(input, parallelism, &key),
            Partitioning::Made(stream) => stream,
            Partitioning::Making => unreachable!("KeyedStream::clone puts the stream back"),
        }
    }

    /// What it is made of, for connecting it with another keyed stream.
    pub(crate) fn into_parts(self) -> KeyedParts<T, K> {
        match self.stream.into_inner() {
            Partitioning::Pending { input, parallelism } => KeyedParts { input, parallelism, key: self.key },
            Partitioning::Made(input) => KeyedParts { input, parallelism: None, key: self.key },
            Partitioning::Making => unreachable!("KeyedStream::clone puts the stream back"),
        }
    }

    /// The key selector given to `key_by`, for the keyed operators added here.
    pub fn key_selector(&self) -> KeySelector<T, K> {
        self.key.clone()
    }

    /// Sets the parallelism of the keyed operators.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        let stream = match self.stream.into_inner() {
            Partitioning::Pending { input, .. } => Partitioning::Pending { input, parallelism: Some(parallelism) },
            Partitioning::Made(stream) => Partitioning::Made(stream.set_parallelism(parallelism)),
            Partitioning::Making => unreachable!("KeyedStream::clone puts the stream back"),
        };
        KeyedStream { stream: RefCell::new(stream), key: self.key }
    }

    /// Adds an operator that uses keyed state (its subtask gets a RocksDB state backend).
    pub fn transform_keyed<O, F>(self, name: &str, factory: F) -> DataStream<O>
    where
        O: Send + 'static,
        F: OperatorFactory<T, O>,
    {
        self.made().transform_keyed_here(name, factory)
    }

    /// The underlying stream (no longer keyed for further operators).
    pub fn into_stream(self) -> DataStream<T> {
        self.made()
    }
}
