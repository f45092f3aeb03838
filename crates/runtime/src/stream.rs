//! The dataflow API: [`StreamEnv`], [`DataStream`] and [`KeyedStream`].

use std::cell::RefCell;
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;

use rill_state::key_group_of;

use crate::chain::{Emitter, NullEmitter, OperatorNode};
use crate::config::{JobConfig, StreamEnvBuilder};
use crate::graph::{channel_factory, Edge, Graph, Vertex, Wiring};
use crate::partition::{Exchange, Partitioner};
use crate::task::{InputTask, SourceTask, Task};
use crate::{Operator, Result, Source};

/// Builds the head of a vertex's subtask, given the chain that consumes `T`.
type Head<T> = Arc<dyn Fn(&mut Wiring<'_>, Box<dyn Emitter<T>>) -> Result<Box<dyn Task>> + Send + Sync>;

/// The entry point of a job: build streams from sources, then [`StreamEnv::execute`].
#[derive(Clone)]
pub struct StreamEnv {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) config: Rc<JobConfig>,
}

impl StreamEnv {
    /// A builder for the job configuration.
    pub fn builder() -> StreamEnvBuilder {
        StreamEnvBuilder::default()
    }

    pub(crate) fn new(config: JobConfig) -> Self {
        StreamEnv { graph: Rc::new(RefCell::new(Graph::default())), config: Rc::new(config) }
    }

    /// The job configuration.
    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    fn add_vertex(&self, name: &str, is_source: bool) -> usize {
        let mut g = self.graph.borrow_mut();
        g.vertices.push(Vertex {
            name: name.to_string(),
            parallelism: self.config.parallelism,
            keyed: false,
            is_source,
            operators: 0,
            factory: None,
        });
        g.vertices.len() - 1
    }

    /// A stream read by `source`, cloned once per subtask.
    pub fn source<T, S>(&self, name: &str, source: S) -> DataStream<T>
    where
        T: Send + 'static,
        S: Source<T> + Clone + Sync,
    {
        let vertex = self.add_vertex(name, true);
        let uid = format!("v{vertex}-{name}");
        let head: Head<T> = Arc::new(move |_w, chain| {
            Ok(Box::new(SourceTask { source: source.clone(), uid: uid.clone(), chain }) as Box<dyn Task>)
        });
        DataStream { env: self.clone(), vertex, head }
    }
}

/// A stream of `T`, open for more operators in the same chain until it is partitioned or sunk.
pub struct DataStream<T> {
    env: StreamEnv,
    vertex: usize,
    head: Head<T>,
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

    fn next_uid(&self, name: &str, keyed: bool) -> String {
        let mut g = self.env.graph.borrow_mut();
        let v = &mut g.vertices[self.vertex];
        v.operators += 1;
        v.keyed |= keyed;
        format!("v{}-op{}-{name}", self.vertex, v.operators)
    }

    fn chain<O, Op>(self, name: &str, op: Op, keyed: bool) -> DataStream<O>
    where
        O: Send + 'static,
        Op: Operator<T, O> + Clone + Sync,
    {
        let uid = self.next_uid(name, keyed);
        let head = self.head;
        let new_head: Head<O> =
            Arc::new(move |w, next| head(w, Box::new(OperatorNode::new(op.clone(), uid.clone(), next))));
        DataStream { env: self.env, vertex: self.vertex, head: new_head }
    }

    /// Adds an operator to this chain (no channel hop). Operators are cloned once per subtask.
    pub fn transform<O, Op>(self, name: &str, op: Op) -> DataStream<O>
    where
        O: Send + 'static,
        Op: Operator<T, O> + Clone + Sync,
    {
        self.chain(name, op, false)
    }

    /// Ends the stream in a sink: an operator with no output.
    pub fn sink<Op>(self, name: &str, op: Op)
    where
        Op: Operator<T, ()> + Clone + Sync,
    {
        let uid = self.next_uid(name, false);
        let head = self.head;
        let factory = Arc::new(move |w: &mut Wiring<'_>| {
            head(w, Box::new(OperatorNode::new(op.clone(), uid.clone(), Box::new(NullEmitter))))
        });
        self.env.graph.borrow_mut().vertices[self.vertex].factory = Some(factory);
    }

    /// Closes this chain with an exchange into a new vertex named `name`.
    fn exchange(self, name: &str, partitioner: Partitioner<T>) -> DataStream<T> {
        let to = self.env.add_vertex(name, false);
        let edge = self.connect(to, partitioner);
        let head: Head<T> = Arc::new(move |w, chain| {
            let inputs = w.receivers::<T>(edge)?;
            Ok(Box::new(InputTask { inputs, chain, gate: None }) as Box<dyn Task>)
        });
        DataStream { env: self.env, vertex: to, head }
    }

    /// Adds the edge from this chain to vertex `to` and closes this chain with it.
    fn connect(&self, to: usize, partitioner: Partitioner<T>) -> usize {
        let mut g = self.env.graph.borrow_mut();
        let edge = g.edges.len();
        g.edges.push(Edge { from: self.vertex, to, channels: channel_factory::<T>(edge) });
        let head = self.head.clone();
        g.vertices[self.vertex].factory = Some(Arc::new(move |w: &mut Wiring<'_>| {
            let senders = w.senders::<T>(edge)?;
            let exchange = Exchange::new(senders, partitioner.clone(), &w.info);
            head(w, Box::new(exchange))
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
        let max_parallelism = self.env.config.max_parallelism;
        let key: Arc<dyn Fn(&T) -> K + Send + Sync> = Arc::new(key);
        let for_partition = key.clone();
        let partitioner = Partitioner::Hash(Arc::new(move |t: &T| key_group_of(&for_partition(t), max_parallelism)));
        KeyedStream { stream: self.exchange("keyed", partitioner), key }
    }

    /// Merges this stream with others of the same type into one operator with several inputs.
    pub fn union(self, others: Vec<DataStream<T>>) -> DataStream<T> {
        let to = self.env.add_vertex("union", false);
        let mut edges = vec![self.connect(to, Partitioner::Forward)];
        for other in &others {
            edges.push(other.connect(to, Partitioner::Forward));
        }
        let head: Head<T> = Arc::new(move |w, chain| {
            let mut inputs = Vec::new();
            for edge in &edges {
                inputs.extend(w.receivers::<T>(*edge)?);
            }
            Ok(Box::new(InputTask { inputs, chain, gate: None }) as Box<dyn Task>)
        });
        DataStream { env: self.env, vertex: to, head }
    }
}

/// A stream partitioned by key. Operators added here may use keyed state.
pub struct KeyedStream<T, K> {
    stream: DataStream<T>,
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
}

impl<T: Send + 'static, K: 'static> KeyedStream<T, K> {
    /// The key selector.
    pub fn key_selector(&self) -> Arc<dyn Fn(&T) -> K + Send + Sync> {
        self.key.clone()
    }

    /// Sets the parallelism of the keyed operators.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        KeyedStream { stream: self.stream.set_parallelism(parallelism), key: self.key }
    }

    /// Adds an operator that uses keyed state (its subtask gets a RocksDB state backend).
    pub fn transform_keyed<O, Op>(self, name: &str, op: Op) -> DataStream<O>
    where
        O: Send + 'static,
        Op: Operator<T, O> + Clone + Sync,
    {
        self.stream.chain(name, op, true)
    }

    /// The underlying stream (no longer keyed for further operators).
    pub fn into_stream(self) -> DataStream<T> {
        self.stream
    }
}
