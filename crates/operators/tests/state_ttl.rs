//! Keyed state with a time to live, driven by a manual clock: an entry is returned until its
//! time to live has passed and never after; reads restart it only when configured so; a map's
//! entries expire one by one; the time to live survives a snapshot and restore.

use std::time::Duration;

use rill_operators::{
    KeyedContext, KeyedProcess, KeyedProcessFunction, KeyedProcessOperator, StateRegistry, StateTtlConfig,
    TtlListState, TtlMapState, TtlUpdate, TtlValueState,
};
use rill_runtime::{Collector, KeySelector, OperatorHarness, OperatorResult};

/// Input `(key, write)`: emits whether the key's value is there, then writes it if `write`.
struct Seen {
    seen: TtlValueState<u64, i64>,
}

impl KeyedProcessFunction<u64, (u64, bool), bool> for Seen {
    fn process(
        &mut self,
        (_, write): (u64, bool),
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<bool>,
    ) -> OperatorResult {
        out.emit(self.seen.get(ctx)?.is_some());
        if write {
            let now = ctx.current_processing_time();
            self.seen.set(ctx, now)?;
        }
        Ok(())
    }
}

type Open = Box<dyn Fn(&mut StateRegistry<'_, u64>) -> OperatorResult<Seen> + Send + Sync>;
type Harness = OperatorHarness<(u64, bool), bool, KeyedProcessOperator<u64, (u64, bool), Seen>>;

fn seen(update: TtlUpdate, dir: &std::path::Path) -> Harness {
    let config = StateTtlConfig::new(Duration::from_millis(100)).with_update(update);
    let open: Open = Box::new(move |state| Ok(Seen { seen: state.value_with_ttl("seen", config)? }));
    OperatorHarness::keyed(KeyedProcess::new(KeySelector::new(|r: &(u64, bool)| r.0, 128), open), dir).unwrap()
}

/// Feeds `(at, write)` steps for key 1 and returns what each saw.
fn run(harness: &mut Harness, steps: &[(i64, bool)]) -> Vec<bool> {
    for &(at, write) in steps {
        harness.set_processing_time(at).unwrap();
        harness.process((1, write)).unwrap();
    }
    harness.take_output()
}

#[test]
fn a_value_is_returned_until_its_time_to_live_has_passed_since_it_was_written_and_never_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = seen(TtlUpdate::OnCreateAndWrite, dir.path());
    // Written at 0: there at 99, expired at 100; reads do not extend it.
    assert_eq!(run(&mut harness, &[(0, true), (60, false), (99, false), (100, false)]), [false, true, true, false]);
    // Written again at 200 and at 250: there until 349.
    assert_eq!(run(&mut harness, &[(200, true), (250, true), (349, false), (350, false)]), [false, true, true, false]);
}

#[test]
fn with_on_read_and_write_every_read_restarts_the_time_to_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = seen(TtlUpdate::OnReadAndWrite, dir.path());
    assert_eq!(
        run(&mut harness, &[(0, true), (90, false), (180, false), (279, false), (380, false)]),
        [false, true, true, true, false]
    );
}

#[test]
fn the_time_to_live_is_kept_by_a_snapshot_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = seen(TtlUpdate::OnCreateAndWrite, dir.path());
    assert_eq!(run(&mut harness, &[(0, true)]), [false]);
    let snapshot = harness.snapshot(1).unwrap();
    let restored_dir = tempfile::tempdir().unwrap();
    let config = StateTtlConfig::new(Duration::from_millis(100));
    let open: Open = Box::new(move |state| Ok(Seen { seen: state.value_with_ttl("seen", config)? }));
    let factory = KeyedProcess::new(KeySelector::new(|r: &(u64, bool)| r.0, 128), open);
    let mut restored: Harness =
        OperatorHarness::restore_keyed(factory, restored_dir.path(), &[snapshot], 0, 1).unwrap();
    assert_eq!(run(&mut restored, &[(50, false), (100, false)]), [true, false]);
}

/// Input `(key, item)`: emits the items of the key still there, after putting `item`.
struct Recent {
    items: TtlMapState<u64, u64, ()>,
}

impl KeyedProcessFunction<u64, (u64, u64), Vec<u64>> for Recent {
    fn process(
        &mut self,
        (_, item): (u64, u64),
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<Vec<u64>>,
    ) -> OperatorResult {
        self.items.put(ctx, item, ())?;
        let mut live: Vec<u64> = self.items.entries(ctx)?.into_iter().map(|(item, ())| item).collect();
        live.sort_unstable();
        out.emit(live);
        Ok(())
    }
}

#[test]
fn a_maps_entries_expire_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateTtlConfig::new(Duration::from_millis(100));
    let open = move |state: &mut StateRegistry<'_, u64>| Ok(Recent { items: state.map_with_ttl("items", config)? });
    let factory = KeyedProcess::new(KeySelector::new(|r: &(u64, u64)| r.0, 128), open);
    let mut harness = OperatorHarness::keyed(factory, dir.path()).unwrap();
    for (at, item) in [(0, 1), (40, 2), (80, 3), (120, 4), (200, 5)] {
        harness.set_processing_time(at).unwrap();
        harness.process((7, item)).unwrap();
    }
    let seen: Vec<Vec<u64>> = harness.take_output();
    assert_eq!(seen, vec![vec![1], vec![1, 2], vec![1, 2, 3], vec![2, 3, 4], vec![4, 5]]);
}

/// Input `(key, item)`: appends `item`, then emits the list's live items.
struct Appended {
    items: TtlListState<u64, u64>,
}

impl KeyedProcessFunction<u64, (u64, u64), Vec<u64>> for Appended {
    fn process(
        &mut self,
        (_, item): (u64, u64),
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<Vec<u64>>,
    ) -> OperatorResult {
        self.items.add(ctx, item)?;
        out.emit(self.items.get(ctx)?);
        Ok(())
    }
}

#[test]
fn a_lists_elements_expire_one_by_one_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateTtlConfig::new(Duration::from_millis(100));
    let open = move |state: &mut StateRegistry<'_, u64>| Ok(Appended { items: state.list_with_ttl("items", config)? });
    let factory = KeyedProcess::new(KeySelector::new(|r: &(u64, u64)| r.0, 128), open);
    let mut harness = OperatorHarness::keyed(factory, dir.path()).unwrap();
    for (at, item) in [(0, 1), (40, 2), (80, 3), (120, 4), (300, 5)] {
        harness.set_processing_time(at).unwrap();
        harness.process((3, item)).unwrap();
    }
    let seen: Vec<Vec<u64>> = harness.take_output();
    assert_eq!(seen, vec![vec![1], vec![1, 2], vec![1, 2, 3], vec![2, 3, 4], vec![5]]);
}
