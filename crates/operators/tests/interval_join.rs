//! The interval join of two keyed streams gives every pair of equal keys within the bounds
//! exactly once, at parallelism 1, 2 and 3, with both inputs running at their own pace.

use std::time::Duration;

use rill_operators::{CollectSink, GeneratorSource, IntervalJoinExt, JoinTimes, StreamExt, WatermarkStrategy};
use rill_runtime::{Collector, OperatorResult, StreamEnv};

const KEYS: u64 = 10;
/// Order i: key i % 10, event time 3 i ms.
const ORDERS: u64 = 3_000;
/// Shipment j: key j % 10, event time 5 j ms.
const SHIPMENTS: u64 = 2_000;
/// A shipment joins an order if it is at most 10 ms before it and at most 20 ms after it.
const LOWER: i64 = -10;
const UPPER: i64 = 20;

fn order_time(i: &u64) -> i64 {
    3 * *i as i64
}

fn shipment_time(j: &u64) -> i64 {
    5 * *j as i64
}

fn joined(parallelism: usize) -> Vec<(u64, u64, i64)> {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::builder()
        .parallelism(parallelism)
        .checkpoint_interval(Duration::from_millis(30))
        .tick_interval(Duration::from_millis(5))
        .checkpoint_dir(dir.path())
        .build()
        .unwrap();
    let every = Duration::from_millis(5);
    let orders = env
        .source("orders", GeneratorSource::new(0..ORDERS).ordered().rate_per_second(30_000))
        .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(order_time).with_emit_interval(every));
    let shipments = env
        .source("shipments", GeneratorSource::new(0..SHIPMENTS).ordered().rate_per_second(12_000))
        .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(shipment_time).with_emit_interval(every));
    let (sink, collected) = CollectSink::new();
    orders
        .key_by(|i: &u64| i % KEYS)
        .interval_join(shipments.key_by(|j: &u64| j % KEYS), order_time, shipment_time)
        .between(LOWER, UPPER)
        .process(
            |order: &u64, shipment: &u64, times: JoinTimes, out: &mut Collector<(u64, u64, i64)>| -> OperatorResult {
                out.emit((*order, *shipment, times.timestamp()));
                Ok(())
            },
        )
        .sink_to(sink);
    env.execute("interval-join").unwrap();
    let mut pairs = collected.lock().unwrap().clone();
    pairs.sort_unstable();
    pairs
}

#[test]
fn every_pair_of_equal_keys_within_the_bounds_is_joined_exactly_once() {
    let mut expected = Vec::new();
    for i in 0..ORDERS {
        for j in (0..SHIPMENTS).filter(|j| j % KEYS == i % KEYS) {
            let (at, shipped) = (order_time(&i), shipment_time(&j));
            if (at + LOWER..=at + UPPER).contains(&shipped) {
                expected.push((i, j, at.max(shipped)));
            }
        }
    }
    assert!(expected.len() > 500, "the bounds join a good share: {}", expected.len());
    for parallelism in [1, 2, 3] {
        let got = joined(parallelism);
        assert_eq!(got.len(), expected.len(), "parallelism {parallelism}: pairs joined");
        assert_eq!(got, expected, "parallelism {parallelism}");
    }
}
