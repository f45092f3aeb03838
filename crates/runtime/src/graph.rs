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

use crate::uids::Operators;
pub(crate) use crate::uids::UidCell;

/// A chain of operators run by `parallelism` subtasks.
pub(crate) struct Vertex {
    pub(crate) name: String,
    /// The uid of its first operator (the source, or the first after the exchange): the vertex's
    /// id, so that adding or removing other vertices does not change where its state lives.
    pub(crate) head_uid: Option<UidCell>,
    /// A union's uid (`union(..).uid(..)`): the vertex's id when no operator is chained after it.
    pub(crate) union_uid: Option<UidCell>,
    pub(crate) parallelism: usize,
    pub(crate) keyed: bool,
    pub(crate) is_source: bool,
    /// The uids of the operators chained in it (not its source's): where their keyed state goes.
    pub(crate) uids: Vec<UidCell>,
    pub(crate) factory: Option<TaskFactory>,
}

impl Vertex {
    /// The uids of the operators chained in it.
    pub(crate) fn operator_uids(&self) -> impl Iterator<Item = String> + '_ {
        self.uids.iter().map(|u| u.borrow().to_string())
    }

    pub(crate) fn id(&self, index: usize) -> String {
        match self.head_uid.as_ref().or(self.union_uid.as_ref()) {
            Some(uid) => uid.borrow().to_string(),
            None => format!("{}-{index}", self.name),
        }
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
    /// Every operator (sources and sinks included), for their uids.
    pub(crate) operators: Operators,
    /// Mistakes found while building, reported when the job runs.
    pub(crate) errors: Vec<String>,
}

impl Graph {
    /// The uids of all operators, and an error if two are the same.
    pub(crate) fn operator_uids(&self) -> Result<Vec<String>> {
        let uids: Vec<String> = self.operators.uids().collect();
        let mut seen = std::collections::HashSet::new();
        for uid in &uids {
            if !seen.insert(uid) {
                return Err(RuntimeError::Config(format!("two operators have the uid '{uid}': uids must be unique")));
            }
        }
        Ok(uids)
    }
}

/// Checks a uid given by the user: a non-empty name of letters, digits, `.`, `_` and `-` (it
/// names directories).
pub(crate) fn check_uid(uid: &str) -> std::result::Result<(), String> {
    let ok = !uid.is_empty() && uid.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid uid '{uid}': use letters, digits, '.', '_' and '-'"))
    }
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

/// What a task factory gets: its subtask, the channel endpoints and the subtask's counters.
pub(crate) struct Wiring<'a> {
    pub(crate) info: TaskInfo,
    pub(crate) channels: &'a mut ChannelTable,
    pub(crate) metrics: Arc<rill_observe::SubtaskMetrics>,
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
