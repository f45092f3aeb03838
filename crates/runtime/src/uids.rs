//! Operator uids: the ids state is stored under. A uid set with `.uid(..)` is kept as given; any
//! other is generated when the job runs, from the operator's place in the topology: its name,
//! whether its input is keyed, the uids of the operators feeding it, and the shape of everything
//! downstream of it (names and keyed inputs, recursively). So inserting, removing or reordering
//! operators changes the generated uids of every operator upstream or downstream of the change,
//! and a restore fails naming the state no operator claims, never restoring one operator's state
//! into another (an operator inserted before one of the same name takes none of its state).
//! Flink's generated operator ids are sensitive to changes the same way; set uids on stateful
//! operators to change a job freely around them. A source whose name no other source has is the
//! exception: its generated uid is its name, which the topology does not change.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use rill_state::stable_hash;

/// An operator's uid, settable until the job runs (`.uid(..)`); empty until then when it is to be
/// generated.
pub(crate) type UidCell = Rc<RefCell<Arc<str>>>;

/// What a generated uid is derived from.
pub(crate) struct OperatorSpec {
    pub(crate) uid: UidCell,
    name: String,
    keyed: bool,
    /// The operators feeding it (through partitionings and unions too).
    inputs: Vec<UidCell>,
    /// The operators it feeds (indices, always after its own).
    consumers: Vec<usize>,
}

/// Every operator of a job, in the order they were added (inputs before what they feed).
#[derive(Default)]
pub(crate) struct Operators {
    specs: Vec<OperatorSpec>,
}

impl Operators {
    /// Adds operator `name` fed by `inputs` (none for a source); its uid is generated at
    /// [`Operators::generate_uids`] unless set before.
    pub(crate) fn add(&mut self, name: &str, keyed: bool, inputs: &[UidCell]) -> UidCell {
        let index = self.specs.len();
        for spec in self.specs.iter_mut().filter(|s| inputs.iter().any(|i| Rc::ptr_eq(i, &s.uid))) {
            spec.consumers.push(index);
        }
        let uid: UidCell = Rc::new(RefCell::new(Arc::from("")));
        let spec = OperatorSpec {
            uid: uid.clone(),
            name: name.to_string(),
            keyed,
            inputs: inputs.to_vec(),
            consumers: Vec::new(),
        };
        self.specs.push(spec);
        uid
    }

    /// The shape of what each operator feeds, recursively: a hash per operator.
    fn downstream_shapes(&self) -> Vec<u64> {
        let mut shapes = vec![0u64; self.specs.len()];
        for (i, spec) in self.specs.iter().enumerate().rev() {
            let mut below: Vec<u64> = spec.consumers.iter().map(|&c| shapes[c]).collect();
            below.sort_unstable();
            shapes[i] = stable_hash(&(spec.name.as_str(), spec.keyed, below));
        }
        shapes
    }

    /// Gives every operator without a uid its generated one: `<name>-<8 hex digits>`, the hash
    /// of its place in the topology; operators in the very same place (same inputs, name and
    /// downstream) are told apart by the order they were added in (`-2`, `-3`, ...).
    pub(crate) fn generate_uids(&self) {
        let shapes = self.downstream_shapes();
        let mut source_names: HashMap<&str, usize> = HashMap::new();
        for spec in self.specs.iter().filter(|s| s.inputs.is_empty()) {
            *source_names.entry(&spec.name).or_insert(0) += 1;
        }
        let mut places: HashMap<String, usize> = HashMap::new();
        for (spec, shape) in self.specs.iter().zip(shapes) {
            if !spec.uid.borrow().is_empty() {
                continue;
            }
            if spec.inputs.is_empty() && source_names.get(spec.name.as_str()) == Some(&1) {
                *spec.uid.borrow_mut() = Arc::from(spec.name.as_str());
                continue;
            }
            let inputs: Vec<String> = spec.inputs.iter().map(|i| i.borrow().to_string()).collect();
            let place = format!("{}|keyed={}|in={}|down={shape:016x}", spec.name, spec.keyed, inputs.join(","));
            let n = places.entry(place.clone()).or_insert(0);
            *n += 1;
            let hash = stable_hash(&place) as u32;
            let uid = match *n {
                1 => format!("{}-{hash:08x}", spec.name),
                n => format!("{}-{hash:08x}-{n}", spec.name),
            };
            *spec.uid.borrow_mut() = uid.into();
        }
    }

    /// Every operator's uid, in the order they were added.
    pub(crate) fn uids(&self) -> impl Iterator<Item = String> + '_ {
        self.specs.iter().map(|s| s.uid.borrow().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `source -> names[0] -> names[1] -> ...`, uids generated; returns them.
    fn pipeline(names: &[&str]) -> Vec<String> {
        let mut ops = Operators::default();
        let mut last = ops.add("source", false, &[]);
        for name in names {
            last = ops.add(name, false, &[last]);
        }
        ops.generate_uids();
        ops.uids().collect()
    }

    #[test]
    fn the_same_job_gets_the_same_uids() {
        assert_eq!(pipeline(&["process", "sink"]), pipeline(&["process", "sink"]));
    }

    #[test]
    fn an_operator_inserted_before_another_of_its_name_takes_none_of_its_uids() {
        let before = pipeline(&["process", "map", "sink"]);
        let after = pipeline(&["process", "map", "process", "map", "sink"]);
        for uid in &after[1..] {
            assert!(!before.contains(uid), "{uid} of {after:?} was in {before:?}");
        }
    }

    #[test]
    fn a_set_uid_is_kept_and_operators_in_one_place_are_numbered() {
        let mut ops = Operators::default();
        let source = ops.add("source", false, &[]);
        *source.borrow_mut() = Arc::from("numbers");
        let unique = ops.add("clicks", false, &[]);
        let (twin, twin_2) = (ops.add("twin", false, &[]), ops.add("twin", false, &[]));
        let a = ops.add("map", false, std::slice::from_ref(&source));
        let b = ops.add("map", false, &[source]);
        ops.generate_uids();
        assert_eq!(ops.specs[0].uid.borrow().to_string(), "numbers");
        assert_eq!(unique.borrow().to_string(), "clicks", "a source's own name, when no other source has it");
        assert!(twin.borrow().starts_with("twin-") && twin_2.borrow().starts_with("twin-"));
        assert_ne!(twin.borrow().to_string(), twin_2.borrow().to_string());
        assert_ne!(a.borrow().to_string(), b.borrow().to_string());
        assert!(b.borrow().ends_with("-2"), "{}", b.borrow());
    }
}
