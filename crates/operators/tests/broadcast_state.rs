//! Broadcast state: a keyed input joined with a broadcast input. Every subtask sees every
//! broadcast record and holds the whole map; the map is checkpointed and restored into every
//! subtask at another parallelism, where the broadcast source has nothing left to send.

use std::time::Duration;

use rill_operators::{
    BroadcastConnectedStreamsExt, BroadcastState, CollectSink, GeneratorSource, KeyedBroadcastProcessFunction,
    KeyedContext, StateRegistry, StreamExt, TimeDomain,
};
use rill_runtime::{
    fatal, ClonePerSubtask, Collector, Operator, OperatorContext, OperatorResult, RestartStrategy, StreamEnv,
};

const KEYS: u64 = 50;
const RULES: u64 = 40;
/// Far beyond every event: fired only by the final watermark, once both inputs have ended.
const AT_THE_END: i64 = 1 << 50;

/// Rules are `rule -> weight` (weight = rule + 1). Each key reports, at the end, how many rules
/// its subtask holds and their total weight.
struct RulesSeen;

impl KeyedBroadcastProcessFunction<u64, u64, u64, (u64, usize, u64), u64, u64> for RulesSeen {
    fn process_element(
        &mut self,
        _event: u64,
        _rules: &BroadcastState<u64, u64>,
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<(u64, usize, u64)>,
    ) -> OperatorResult {
        ctx.register_event_time_timer(AT_THE_END)?;
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        rule: u64,
        rules: &mut BroadcastState<u64, u64>,
        _out: &mut Collector<(u64, usize, u64)>,
    ) -> OperatorResult {
        rules.put(rule, rule + 1);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _timestamp_ms: i64,
        _domain: TimeDomain,
        rules: &BroadcastState<u64, u64>,
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<(u64, usize, u64)>,
    ) -> OperatorResult {
        out.emit((*ctx.key(), rules.len(), rules.iter().map(|(_, weight)| *weight).sum()));
        Ok(())
    }
}

fn env(parallelism: usize, dir: &std::path::Path) -> StreamEnv {
    StreamEnv::builder()
        .parallelism(parallelism)
        .checkpoint_interval(Duration::from_millis(50))
        .restart_strategy(RestartStrategy::none())
        .checkpoint_dir(dir)
        .build()
        .unwrap()
}

/// Fails the job (fatally, no restart) at one event: as a crash, after some checkpoints.
#[derive(Clone)]
struct FailAt(Option<u64>);

impl Operator<u64, u64> for FailAt {
    fn process(&mut self, event: u64, _: &mut OperatorContext<'_>, out: &mut Collector<u64>) -> OperatorResult {
        if Some(event) == self.0 {
            return Err(fatal(format!("injected failure at event {event}")));
        }
        out.emit(event);
        Ok(())
    }
}

type Rows = std::sync::Arc<std::sync::Mutex<Vec<(u64, usize, u64)>>>;

/// Events `0..events` keyed by `event % KEYS` (at `rate` per second) with the rules `0..RULES`
/// broadcast; with `fail_at`, the job fails at that event.
fn job(env: &StreamEnv, events: u64, rate: u64, fail_at: Option<u64>) -> Rows {
    let events = env.source("events", GeneratorSource::new(0..events).rate_per_second(rate)).uid("events");
    let events = events.transform("fail", ClonePerSubtask(FailAt(fail_at)));
    let rules = env.source("rules", GeneratorSource::new(0..RULES)).uid("rules");
    let (sink, collected) = CollectSink::new();
    events
        .connect(rules)
        .broadcast_second(|e: &u64| e % KEYS)
        .process(|_: &mut StateRegistry<'_, u64>| Ok(RulesSeen))
        .uid("rules-seen")
        .sink_to(sink);
    collected
}

fn all_rules() -> (usize, u64) {
    (RULES as usize, (1..=RULES).sum())
}

#[test]
fn every_subtask_holds_every_broadcast_rule_for_its_keys() {
    for parallelism in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let env = env(parallelism, dir.path());
        let collected = job(&env, 20_000, 1_000_000, None);
        env.execute("rules").unwrap();
        let mut rows = collected.lock().unwrap().clone();
        rows.sort_unstable();
        assert_eq!(rows.len(), KEYS as usize, "parallelism {parallelism}: one row per key");
        for (key, count, weight) in rows {
            assert_eq!((count, weight), all_rules(), "parallelism {parallelism}, key {key}");
        }
    }
}

#[test]
fn the_broadcast_state_is_restored_into_every_subtask_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    // At 20,000 events/s the failure comes after about a second: the rules (sent at once) are
    // in every checkpoint by then.
    let first = env(2, dir.path());
    let _ = job(&first, 100_000, 20_000, Some(20_000));
    let err = first.execute("rules").expect_err("the injected failure ends the first run");
    assert!(err.to_string().contains("injected failure"), "{err}");

    // The rules source has nothing left to send: the rules come from the checkpoint only.
    let second = env(3, dir.path());
    let collected = job(&second, 100_000, 1_000_000, None);
    let result = second.execute("rules").unwrap();
    assert!(result.restored_from.is_some(), "the second run restores the first's checkpoint");
    let mut rows = collected.lock().unwrap().clone();
    rows.sort_unstable();
    assert_eq!(rows.len(), KEYS as usize, "one row per key");
    for (key, count, weight) in rows {
        assert_eq!((count, weight), all_rules(), "key {key}: its subtask holds the restored rules");
    }
}
