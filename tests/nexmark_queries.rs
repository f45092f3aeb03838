//! Acceptance (issue 27): the Nexmark queries (q0, q1, q2, q3, q4, q5, q7, q8, q9) of the
//! `nexmark` example give, for 200,000 events,
//! exactly the rows of an independent reference computed here from the same events (a plain
//! batch computation of each official query's SQL meaning), at parallelism 1, 2 and 3, and after
//! SIGKILLs at random moments at parallelism 2 finished at parallelism 3.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::Duration;

use nexmark::config::NexmarkConfig;
use nexmark::event::{Auction, Bid, Event};
use nexmark::EventGenerator;
use rand::{Rng, SeedableRng};
use support::{committed_lines, example, kill_after, summary_field};

const EVENTS: u64 = 200_000;
/// The example's fixed base time: its events are the generator's first EVENTS with it.
const BASE_TIME_MS: u64 = 1_700_000_000_000;
const TEN_SECONDS: i64 = 10_000;

fn events() -> Vec<Event> {
    let config = NexmarkConfig { base_time: BASE_TIME_MS, ..NexmarkConfig::default() };
    EventGenerator::new(config).take(EVENTS as usize).collect()
}

fn bids(events: &[Event]) -> impl Iterator<Item = &Bid> {
    events.iter().filter_map(|e| match e {
        Event::Bid(bid) => Some(bid),
        _ => None,
    })
}

/// A string as the example writes a CSV field.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Each auction with its winning bid: the highest bid within `[dateTime, expires]`, the earliest
/// of equal prices (then the lowest bidder): q9's `ROW_NUMBER() ... ORDER BY price DESC,
/// dateTime ASC` first row.
fn winners(events: &[Event]) -> Vec<(&Auction, &Bid)> {
    let mut by_auction: HashMap<usize, Vec<&Bid>> = HashMap::new();
    for b in bids(events) {
        by_auction.entry(b.auction).or_default().push(b);
    }
    let mut winners = Vec::new();
    for e in events {
        let Event::Auction(a) = e else { continue };
        let in_time =
            by_auction.get(&a.id).into_iter().flatten().filter(|b| (a.date_time..=a.expires).contains(&b.date_time));
        if let Some(best) = in_time.min_by_key(|b| (std::cmp::Reverse(b.price), b.date_time, b.bidder)) {
            winners.push((a, *best));
        }
    }
    winners
}

/// The rows of `query` over `events`, computed directly from the SQL's meaning, sorted.
fn reference(query: &str, events: &[Event]) -> Vec<String> {
    let mut rows: Vec<String> = match query {
        "q0" => bids(events)
            .map(|b| format!("{},{},{},{},{}", b.auction, b.bidder, b.price, b.date_time, field(&b.extra)))
            .collect(),
        "q1" => bids(events)
            .map(|b| {
                let milli = b.price as u128 * 908;
                format!(
                    "{},{},{}.{:03},{},{}",
                    b.auction,
                    b.bidder,
                    milli / 1000,
                    milli % 1000,
                    b.date_time,
                    field(&b.extra)
                )
            })
            .collect(),
        "q2" => bids(events)
            .filter(|b| b.auction.is_multiple_of(123))
            .map(|b| format!("{},{}", b.auction, b.price))
            .collect(),
        "q3" => {
            let sellers: HashMap<usize, _> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Person(p) if ["OR", "ID", "CA"].contains(&p.state.to_uppercase().as_str()) => {
                        Some((p.id, p))
                    }
                    _ => None,
                })
                .collect();
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Auction(a) if a.category == 10 => sellers
                        .get(&a.seller)
                        .map(|p| format!("{},{},{},{}", field(&p.name), field(&p.city), field(&p.state), a.id)),
                    _ => None,
                })
                .collect()
        }
        "q5" => {
            // HOP(size 10 s, slide 2 s): counts per (window, auction), then the window's maxima.
            let mut counts: BTreeMap<(i64, usize), u64> = BTreeMap::new();
            for b in bids(events) {
                let at = b.date_time as i64;
                let last = at - at.rem_euclid(2_000);
                for start in (last - 8_000..=last).step_by(2_000) {
                    *counts.entry((start, b.auction)).or_default() += 1;
                }
            }
            let mut max: HashMap<i64, u64> = HashMap::new();
            for ((start, _), n) in &counts {
                let m = max.entry(*start).or_default();
                *m = (*m).max(*n);
            }
            counts.iter().filter(|((start, _), n)| **n >= max[start]).map(|((_, a), n)| format!("{a},{n}")).collect()
        }
        "q7" => {
            // TUMBLE 10 s max price, joined back to bids of that price within [end - 10 s, end].
            let mut maxes: BTreeMap<i64, usize> = BTreeMap::new();
            for b in bids(events) {
                let start = b.date_time as i64 - (b.date_time as i64).rem_euclid(TEN_SECONDS);
                let m = maxes.entry(start + TEN_SECONDS).or_default();
                *m = (*m).max(b.price);
            }
            let mut rows = Vec::new();
            for (end, price) in maxes {
                for b in bids(events)
                    .filter(|b| b.price == price && (end - TEN_SECONDS..=end).contains(&(b.date_time as i64)))
                {
                    rows.push(format!("{},{},{},{},{}", b.auction, b.price, b.bidder, b.date_time, field(&b.extra)));
                }
            }
            rows
        }
        "q8" => {
            let window = |at: u64| at as i64 - (at as i64).rem_euclid(TEN_SECONDS);
            let sold: BTreeSet<(usize, i64)> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Auction(a) => Some((a.seller, window(a.date_time))),
                    _ => None,
                })
                .collect();
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Person(p) if sold.contains(&(p.id, window(p.date_time))) => {
                        Some(format!("{},{},{}", p.id, field(&p.name), window(p.date_time)))
                    }
                    _ => None,
                })
                .collect()
        }
        "q4" => {
            // AVG(final) per category, as of each time an auction of it closed.
            let mut closed: BTreeMap<(usize, u64), Vec<u64>> = BTreeMap::new();
            for (a, b) in winners(events) {
                closed.entry((a.category, a.expires)).or_default().push(b.price as u64);
            }
            let mut totals: HashMap<usize, (u64, u64)> = HashMap::new();
            let mut rows = Vec::new();
            for ((category, at), prices) in closed {
                let total = totals.entry(category).or_default();
                *total = (total.0 + prices.iter().sum::<u64>(), total.1 + prices.len() as u64);
                rows.push(format!("{category},{},{at}", total.0 / total.1));
            }
            rows
        }
        "q9" => winners(events)
            .into_iter()
            .map(|(a, b)| {
                format!(
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    a.id,
                    field(&a.item_name),
                    field(&a.description),
                    a.initial_bid,
                    a.reserve,
                    a.date_time,
                    a.expires,
                    a.seller,
                    a.category,
                    field(&a.extra),
                    b.auction,
                    b.bidder,
                    b.price,
                    b.date_time,
                    field(&b.extra)
                )
            })
            .collect(),
        other => panic!("no reference for {other}"),
    };
    rows.sort();
    rows
}

fn nexmark(query: &str, parallelism: usize, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(example("nexmark"));
    cmd.args(["--query", query, "--events", &EVENTS.to_string(), "--parallelism", &parallelism.to_string()])
        .args(["--checkpoint-interval-ms", "100"])
        .arg("--dir")
        .arg(dir);
    cmd
}

fn assert_rows(query: &str, dir: &std::path::Path, expected: &[String], what: &str) {
    let got = committed_lines(dir);
    if got != expected {
        let (got_set, want): (BTreeSet<_>, BTreeSet<_>) = (got.iter().collect(), expected.iter().collect());
        let missing: Vec<_> = want.difference(&got_set).take(3).collect();
        let extra: Vec<_> = got_set.difference(&want).take(3).collect();
        panic!(
            "{query} {what}: {} rows committed, {} expected; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
            got.len(),
            expected.len()
        );
    }
}

const QUERIES: [&str; 9] = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9"];

#[test]
fn every_query_gives_the_reference_rows_at_parallelism_1_2_and_3() {
    let events = events();
    for query in QUERIES {
        let expected = reference(query, &events);
        assert!(!expected.is_empty(), "{query}: the reference has rows");
        for parallelism in [1, 2, 3] {
            let dir = tempfile::tempdir().unwrap();
            let out = nexmark(query, parallelism, dir.path()).output().unwrap();
            assert!(out.status.success(), "{query}: {}", String::from_utf8_lossy(&out.stderr));
            assert_rows(query, dir.path(), &expected, &format!("at parallelism {parallelism}"));
        }
    }
}

#[test]
fn every_query_gives_the_reference_rows_after_kills_and_a_rescale() {
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let events = events();
    for query in QUERIES {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            // At 80,000 events per second the 200,000 events take 2.5 s: killed before the end.
            let mut cmd = nexmark(query, 2, dir.path());
            let child = cmd.args(["--rate", "80000"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            assert!(!kill_after(child, Duration::from_millis(rng.random_range(300..1200))), "{query} finished early");
        }
        let out = nexmark(query, 3, dir.path()).output().unwrap();
        assert!(out.status.success(), "{query}: {}", String::from_utf8_lossy(&out.stderr));
        assert_ne!(summary_field(&out, "restored_from"), "none", "{query}: the last run restores");
        assert_rows(query, dir.path(), &reference(query, &events), "after kills and a rescale");
    }
}

/// The events as JSON lines (as the `nexmark` crate's binary writes them), split round-robin by
/// line into `files` files in `dir`, each in event-time order.
fn write_json_lines(events: &[Event], dir: &std::path::Path, files: usize) -> Vec<std::path::PathBuf> {
    let paths: Vec<_> = (0..files).map(|i| dir.join(format!("events-{i}.jsonl"))).collect();
    let mut texts = vec![String::new(); files];
    for (i, event) in events.iter().enumerate() {
        texts[i % files].push_str(&serde_json::to_string(event).unwrap());
        texts[i % files].push('\n');
    }
    for (path, text) in paths.iter().zip(texts) {
        std::fs::write(path, text).unwrap();
    }
    paths
}

#[test]
fn queries_over_json_lines_files_give_the_reference_rows_too() {
    let events = events();
    let input = tempfile::tempdir().unwrap();
    let files = write_json_lines(&events, input.path(), 2);
    for query in ["q3", "q5", "q7", "q9"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(example("nexmark"));
        cmd.args(["--query", query, "--parallelism", "2", "--checkpoint-interval-ms", "100", "--dir"]).arg(dir.path());
        for file in &files {
            cmd.arg("--input").arg(file);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{query}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(summary_field(&out, "events"), EVENTS.to_string());
        assert_rows(query, dir.path(), &reference(query, &events), "over JSON lines");
    }
}

#[test]
fn a_malformed_input_line_fails_the_job_naming_the_file_and_the_byte() {
    let input = tempfile::tempdir().unwrap();
    let file = input.path().join("events.jsonl");
    let good = serde_json::to_string(&events()[0]).unwrap();
    std::fs::write(&file, format!("{good}\n{{\"Bid\": 42}}\n")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(example("nexmark"));
    cmd.args(["--query", "q0", "--parallelism", "1", "--dir"]).arg(dir.path()).arg("--input").arg(&file);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a malformed line is not skipped: {stderr}");
    let at = format!("{} at byte {}: not a Nexmark event", file.display(), good.len() + 1);
    assert!(stderr.contains(&at), "the error names the file and where: {stderr}");
}
