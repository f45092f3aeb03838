//! The job graph as the builder leaves it: vertices (operator chains) and edges (channels), with
//! type-erased factories that create a vertex's subtasks and an edge's channels for each attempt.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::context::TaskInfo;
use crate::task::Task;
use crate::{Message, Result, RuntimeError};

/// Builds one subtask of a vertex (takes its channel endpoints; operators open in its thread).
pub(crate) type TaskFactory = std::rc::Rc<dyn Fn(&mut Wiring<'_>) -> Result<Box<dyn Task>>>;

/// Creates the channels of an edge: (upstream parallelism, downstream parallelism, capacity).
pub(crate) type ChannelFactory = Arc<dyn Fn(usize, usize, usize, &mut ChannelTable) + Send + Sync>;

/// A chain of operators run by `parallelism` subtasks.
pub(crate) struct Vertex {
    pub(crate) name: String,
    pub(crate) parallelism: usize,
    pub(crate) keyed: bool,
    pub(crate) is_source: bool,
    pub(crate) operators: usize,
    pub(crate) factory: Option<TaskFactory>,
}

impl Vertex {
    pub(crate) fn id(&self, index: usize) -> String {
        format!("v{index}-{}", self.name)
    }
}

/// A channel matrix between two vertices.
pub(crate) struct Edge {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) channels: ChannelFactory,
}

/// The whole graph.
#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) vertices: Vec<Vertex>,
    pub(crate) edges: Vec<Edge>,
    /// Every stream that must be consumed, and whether it is.
    pub(crate) outlets: Vec<(String, std::rc::Rc<dyn Fn() -> bool>)>,
}

/// Channel endpoints of one attempt, by (edge, subtask, upstream side?).
#[derive(Default)]
pub(crate) struct ChannelTable {
    endpoints: HashMap<(usize, usize, bool), Box<dyn Any + Send>>,
}

impl ChannelTable {
    pub(crate) fn insert<T: Send + 'static>(&mut self, edge: usize, subtask: usize, upstream: bool, value: T) {
        self.endpoints.insert((edge, subtask, upstream), Box::new(value));
    }
}

/// The channel factory of an edge carrying `T`: a full matrix of bounded channels.
pub(crate) fn channel_factory<T: Send + 'static>(edge: usize) -> ChannelFactory {
    Arc::new(move |up, down, capacity, table| {
        let mut senders: Vec<Vec<Sender<Message<T>>>> = (0..up).map(|_| Vec::with_capacity(down)).collect();
        let mut receivers: Vec<Vec<Receiver<Message<T>>>> = (0..down).map(|_| Vec::with_capacity(up)).collect();
        for sender_row in senders.iter_mut() {
            for receiver_row in receivers.iter_mut() {
                let (tx, rx) = crossbeam_channel::bounded(capacity);
                sender_row.push(tx);
                receiver_row.push(rx);
            }
        }
        for (u, s) in senders.into_iter().enumerate() {
            table.insert(edge, u, true, s);
        }
        for (d, r) in receivers.into_iter().enumerate() {
            table.insert(edge, d, false, r);
        }
    })
}

/// What a task factory gets: its subtask and the channel endpoints.
pub(crate) struct Wiring<'a> {
    pub(crate) info: TaskInfo,
    pub(crate) channels: &'a mut ChannelTable,
}

impl Wiring<'_> {
    fn take<T: 'static>(&mut self, edge: usize, upstream: bool) -> Result<T> {
        let key = (edge, self.info.subtask, upstream);
        let endpoint =
            self.channels.endpoints.remove(&key).ok_or_else(|| {
                RuntimeError::Internal(format!("edge {edge} has no channels for {}", self.info.name()))
            })?;
        endpoint
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| RuntimeError::Internal(format!("edge {edge} carries another type")))
    }

    pub(crate) fn senders<T: Send + 'static>(&mut self, edge: usize) -> Result<Vec<Sender<Message<T>>>> {
        self.take(edge, true)
    }

    pub(crate) fn receivers<T: Send + 'static>(&mut self, edge: usize) -> Result<Vec<Receiver<Message<T>>>> {
        self.take(edge, false)
    }
}
