//! Keyed state in RocksDB: values, lists and maps per key, snapshots, and restores at another
//! parallelism that hand each subtask its key groups.

use rill_state::{
    key_group_of, KeyGroupRange, KeyedBackend, KeyedRestoreSource, KeyedScope, KeyedStateConfig, StateMemory,
};

const MAX_P: u16 = 128;

fn scope<'a>(b: &'a mut KeyedBackend, k: &'a u64) -> KeyedScope<'a, u64> {
    KeyedScope::new(b, k, key_group_of(k, MAX_P))
}

fn all() -> KeyGroupRange {
    KeyGroupRange { start: 0, end: MAX_P - 1 }
}

#[test]
fn values_lists_and_maps_survive_snapshot_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), KeyedStateConfig::default(), &[]).unwrap();
    let count = b.value_state::<u64, u64>("count").unwrap();
    let seen = b.list_state::<u64, String>("seen").unwrap();
    let attrs = b.map_state::<u64, String, i32>("attrs").unwrap();
    for k in 0..100u64 {
        let mut s = scope(&mut b, &k);
        count.set(&mut s, k * 10).unwrap();
        seen.add(&mut s, format!("a{k}")).unwrap();
        seen.add(&mut s, format!("b{k}")).unwrap();
        attrs.put(&mut s, "x".into(), k as i32).unwrap();
        attrs.put(&mut s, "y".into(), -(k as i32)).unwrap();
    }
    let snap = dir.path().join("snap");
    let files = b.snapshot(&snap).unwrap();
    assert!(files.iter().any(|f| f.path.ends_with(".sst")), "{files:?}");
    // Writes after the snapshot must not leak into a restore from it.
    count.set(&mut scope(&mut b, &1), 999).unwrap();
    drop(b);

    let source = KeyedRestoreSource::new(snap, all());
    let mut r = KeyedBackend::open(dir.path().join("work2"), all(), KeyedStateConfig::default(), &[source]).unwrap();
    let count = r.value_state::<u64, u64>("count").unwrap();
    let seen = r.list_state::<u64, String>("seen").unwrap();
    let attrs = r.map_state::<u64, String, i32>("attrs").unwrap();
    for k in 0..100u64 {
        let mut s = scope(&mut r, &k);
        assert_eq!(count.get(&mut s).unwrap(), Some(k * 10));
        assert_eq!(seen.get(&mut s).unwrap(), vec![format!("a{k}"), format!("b{k}")]);
        assert_eq!(attrs.entries(&mut s).unwrap(), vec![("x".to_string(), k as i32), ("y".to_string(), -(k as i32))]);
    }
}

#[test]
fn restore_at_other_parallelism_keeps_only_own_key_groups() {
    let dir = tempfile::tempdir().unwrap();
    // Two old subtasks, each with its own half.
    let mut sources = Vec::new();
    for sub in 0..2 {
        let range = KeyGroupRange::for_subtask(sub, 2, MAX_P);
        let mut b =
            KeyedBackend::open(dir.path().join(format!("old{sub}")), range, KeyedStateConfig::default(), &[]).unwrap();
        let count = b.value_state::<u64, u64>("count").unwrap();
        for k in (0..1000u64).filter(|k| range.contains(key_group_of(k, MAX_P))) {
            count.set(&mut scope(&mut b, &k), k + 1).unwrap();
        }
        let snap = dir.path().join(format!("snap{sub}"));
        b.snapshot(&snap).unwrap();
        sources.push(KeyedRestoreSource::new(snap, range));
    }
    // Three new subtasks: together they see every key exactly once.
    let mut found = 0;
    for sub in 0..3 {
        let range = KeyGroupRange::for_subtask(sub, 3, MAX_P);
        let mut b =
            KeyedBackend::open(dir.path().join(format!("new{sub}")), range, KeyedStateConfig::default(), &sources)
                .unwrap();
        let count = b.value_state::<u64, u64>("count").unwrap();
        for k in 0..1000u64 {
            let v = count.get(&mut scope(&mut b, &k)).unwrap();
            if range.contains(key_group_of(&k, MAX_P)) {
                assert_eq!(v, Some(k + 1));
                found += 1;
            } else {
                assert_eq!(v, None, "key {k} leaked into subtask {sub}");
            }
        }
    }
    assert_eq!(found, 1000);
}

#[test]
fn state_larger_than_the_cache_spills_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = KeyedStateConfig { cache_entries_per_state: 64, ..KeyedStateConfig::default() };
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), config, &[]).unwrap();
    let count = b.value_state::<u64, u64>("count").unwrap();
    for round in 0..3u64 {
        for k in 0..5000u64 {
            count.update(&mut scope(&mut b, &k), |c| Some(c.unwrap_or(0) + round + 1)).unwrap();
        }
    }
    for k in 0..5000u64 {
        assert_eq!(count.get(&mut scope(&mut b, &k)).unwrap(), Some(6));
    }
}

#[test]
fn a_small_cache_evicting_during_background_snapshots_keeps_every_value_and_every_snapshot_true() {
    let dir = tempfile::tempdir().unwrap();
    let config = KeyedStateConfig { cache_entries_per_state: 32, ..KeyedStateConfig::default() };
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), config, &[]).unwrap();
    let count = b.value_state::<u64, u64>("count").unwrap();
    // Skewed access: key k is touched every k-th step, so a few keys stay hot in the cache.
    let mut truth = std::collections::BTreeMap::new();
    for round in 0..4u64 {
        for step in 1..=2000u64 {
            let k = step % (1 + step % 97);
            count.update(&mut scope(&mut b, &k), |c| Some(c.unwrap_or(0) + 1)).unwrap();
            *truth.entry(k).or_insert(0u64) += 1;
        }
        // The snapshot runs in the background while the next round evicts and reloads entries.
        let (tx, rx) = std::sync::mpsc::channel();
        let snap = dir.path().join(format!("snap{round}"));
        b.snapshot_async(&snap, Box::new(move |r| tx.send(r.map(|_| ()).map_err(|e| e.to_string())).unwrap())).unwrap();
        let at_barrier = truth.clone();
        for step in 1..=500u64 {
            let k = (step * 7) % 97;
            count.update(&mut scope(&mut b, &k), |c| Some(c.unwrap_or(0) + 1)).unwrap();
            *truth.entry(k).or_insert(0u64) += 1;
        }
        rx.recv().unwrap().unwrap();
        let mut restored = restore_all(dir.path(), &format!("restored{round}"), snap);
        let restored_count = restored.value_state::<u64, u64>("count").unwrap();
        for (k, n) in &at_barrier {
            assert_eq!(
                restored_count.get(&mut scope(&mut restored, k)).unwrap(),
                Some(*n),
                "snapshot {round}, key {k}"
            );
        }
    }
    for (k, n) in &truth {
        assert_eq!(count.get(&mut scope(&mut b, k)).unwrap(), Some(*n), "key {k}");
    }
}

#[test]
fn registering_a_state_with_another_type_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), KeyedStateConfig::default(), &[]).unwrap();
    b.value_state::<u64, u64>("count").unwrap();
    let err = b.value_state::<u64, String>("count").unwrap_err();
    assert!(err.to_string().contains("count"), "{err}");
}

fn restore_all(dir: &std::path::Path, name: &str, snap: std::path::PathBuf) -> KeyedBackend {
    let source = KeyedRestoreSource::new(snap, all());
    KeyedBackend::open(dir.join(name), all(), KeyedStateConfig::default(), &[source]).unwrap()
}

#[test]
fn scanning_a_map_state_returns_every_entry_of_the_subtasks_key_groups_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = Vec::new();
    for sub in 0..2 {
        let range = KeyGroupRange::for_subtask(sub, 2, MAX_P);
        let mut b =
            KeyedBackend::open(dir.path().join(format!("old{sub}")), range, KeyedStateConfig::default(), &[]).unwrap();
        let timers = b.map_state::<u64, i64, ()>("timers").unwrap();
        let other = b.map_state::<u64, i64, ()>("other").unwrap();
        for k in (0..300u64).filter(|k| range.contains(key_group_of(k, MAX_P))) {
            timers.put(&mut scope(&mut b, &k), k as i64 * 10, ()).unwrap();
            timers.put(&mut scope(&mut b, &k), k as i64 * 10 + 1, ()).unwrap();
            other.put(&mut scope(&mut b, &k), -1, ()).unwrap();
        }
        let snap = dir.path().join(format!("snap{sub}"));
        b.snapshot(&snap).unwrap();
        old.push(KeyedRestoreSource::new(snap, range));
    }
    let mut seen = Vec::new();
    for sub in 0..3 {
        let range = KeyGroupRange::for_subtask(sub, 3, MAX_P);
        let mut b =
            KeyedBackend::open(dir.path().join(format!("new{sub}")), range, KeyedStateConfig::default(), &old).unwrap();
        let timers = b.map_state::<u64, i64, ()>("timers").unwrap();
        // An entry still in the cache (not yet in RocksDB) is part of the scan too.
        let extra = (0..u64::MAX).find(|k| range.contains(key_group_of(k, MAX_P))).unwrap();
        timers.put(&mut scope(&mut b, &extra), 7, ()).unwrap();
        let rows = b.scan_map_state::<u64, i64, ()>(timers).unwrap();
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0), "key-group order");
        for (kg, key, ts, ()) in rows {
            assert!(range.contains(kg) && kg == key_group_of(&key, MAX_P), "key {key} in the wrong subtask");
            if (key, ts) != (extra, 7) {
                seen.push((key, ts));
            }
        }
    }
    seen.sort_unstable();
    let want: Vec<(u64, i64)> = (0..300u64).flat_map(|k| [(k, k as i64 * 10), (k, k as i64 * 10 + 1)]).collect();
    assert_eq!(seen, want);
}

#[test]
fn scanning_a_value_state_returns_keys_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), KeyedStateConfig::default(), &[]).unwrap();
    let count = b.value_state::<u64, u64>("count").unwrap();
    for k in 0..50u64 {
        count.set(&mut scope(&mut b, &k), k + 100).unwrap();
    }
    count.clear(&mut scope(&mut b, &3)).unwrap();
    let mut rows: Vec<(u64, u64)> =
        b.scan_value_state::<u64, u64>(count).unwrap().into_iter().map(|(_, k, v)| (k, v)).collect();
    rows.sort_unstable();
    let want: Vec<(u64, u64)> = (0..50u64).filter(|k| *k != 3).map(|k| (k, k + 100)).collect();
    assert_eq!(rows, want);
}

#[test]
fn entries_removed_after_a_checkpoint_are_gone_from_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), KeyedStateConfig::default(), &[]).unwrap();
    let windows = b.map_state::<u64, i64, u64>("windows").unwrap();
    for k in 0..20u64 {
        windows.insert_new(&mut scope(&mut b, &k), 0, k).unwrap();
    }
    b.snapshot(&dir.path().join("snap1")).unwrap();
    for k in 0..20u64 {
        assert_eq!(windows.take(&mut scope(&mut b, &k), &0).unwrap(), Some(k));
        // Created and removed between two checkpoints: never stored.
        windows.insert_new(&mut scope(&mut b, &k), 1000, k).unwrap();
        windows.remove(&mut scope(&mut b, &k), 1000).unwrap();
    }
    windows.insert_new(&mut scope(&mut b, &5), 2000, 55).unwrap();
    b.snapshot(&dir.path().join("snap2")).unwrap();
    drop(b);
    let mut r = restore_all(dir.path(), "work2", dir.path().join("snap2"));
    let windows = r.map_state::<u64, i64, u64>("windows").unwrap();
    let rows: Vec<(u64, i64, u64)> =
        r.scan_map_state::<u64, i64, u64>(windows).unwrap().into_iter().map(|(_, k, w, v)| (k, w, v)).collect();
    assert_eq!(rows, vec![(5, 2000, 55)]);
}

#[test]
fn map_update_reads_modifies_and_removes_through_a_small_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = KeyedStateConfig { cache_entries_per_state: 16, ..KeyedStateConfig::default() };
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), config, &[]).unwrap();
    let sums = b.map_state::<u64, u8, u64>("sums").unwrap();
    for round in 0..4u64 {
        for k in 0..500u64 {
            let old = sums.update(&mut scope(&mut b, &k), &1, |v| (Some(v.unwrap_or(0) + round), v)).unwrap();
            assert_eq!(old.is_some(), round > 0);
        }
        if round == 1 {
            b.snapshot(&dir.path().join("mid")).unwrap();
        }
    }
    for k in (0..500u64).step_by(2) {
        assert_eq!(sums.take(&mut scope(&mut b, &k), &1).unwrap(), Some(6));
    }
    b.snapshot(&dir.path().join("end")).unwrap();
    drop(b);
    let mut r = restore_all(dir.path(), "work2", dir.path().join("end"));
    let sums = r.map_state::<u64, u8, u64>("sums").unwrap();
    for k in 0..500u64 {
        let want = (k % 2 == 1).then_some(6);
        assert_eq!(sums.get(&mut scope(&mut r, &k), &1).unwrap(), want, "key {k}");
    }
}

#[test]
fn a_preloaded_map_state_reads_right_before_and_after_its_cache_spills() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), KeyedStateConfig::default(), &[]).unwrap();
    let windows = b.map_state::<u64, i64, u64>("windows").unwrap();
    for k in 0..40u64 {
        windows.put(&mut scope(&mut b, &k), 0, k).unwrap();
    }
    b.snapshot(&dir.path().join("snap")).unwrap();
    drop(b);
    let source = KeyedRestoreSource::new(dir.path().join("snap"), all());
    let config = KeyedStateConfig { cache_entries_per_state: 64, ..KeyedStateConfig::default() };
    let mut r = KeyedBackend::open(dir.path().join("work2"), all(), config, &[source]).unwrap();
    let windows = r.map_state::<u64, i64, u64>("windows").unwrap();
    assert_eq!(r.preload_map_state::<u64, i64, u64>(windows).unwrap().len(), 40);
    for k in 0..40u64 {
        assert_eq!(windows.get(&mut scope(&mut r, &k), &0).unwrap(), Some(k), "preloaded");
        assert_eq!(windows.get(&mut scope(&mut r, &k), &1).unwrap(), None, "absent");
    }
    // Past the cache bound the cache spills; reads go to RocksDB again and stay right.
    for k in 0..200u64 {
        let old = windows.update(&mut scope(&mut r, &k), &0, |v| (Some(v.unwrap_or(0) + 1000), v)).unwrap();
        assert_eq!(old, (k < 40).then_some(k), "key {k}");
    }
    for k in 0..200u64 {
        let want = if k < 40 { k + 1000 } else { 1000 };
        assert_eq!(windows.get(&mut scope(&mut r, &k), &0).unwrap(), Some(want), "key {k}");
    }
}

#[test]
fn a_byte_budget_bounds_the_caches_by_bytes_and_every_value_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = KeyedStateConfig { memory_budget_bytes: Some(16 << 20), ..KeyedStateConfig::default() };
    let memory = StateMemory::new(&config, 1);
    let caches = memory.cache_bytes_per_backend().unwrap();
    let held_rows = (12 << 20) / 16;
    assert_eq!(
        caches,
        (12 << 20) - held_rows,
        "RocksDB takes a quarter, evicted rows held in memory a sixteenth of the rest"
    );
    let mut b = KeyedBackend::open_shared(dir.path().join("work"), all(), config, &memory, &[]).unwrap();
    let names = b.value_state::<u64, String>("names").unwrap();
    // 60,000 values of 200 bytes: about 16 MB, more than the caches may hold.
    for k in 0..60_000u64 {
        names.set(&mut scope(&mut b, &k), format!("{k:0>200}")).unwrap();
    }
    let (entries, bytes) = b.cache_usage();
    assert!(bytes <= caches, "{bytes} estimated bytes cached, budget {caches}");
    // A value cache's table has a power-of-two size at most 7/16 full (see `CacheBound`), so it
    // holds from about half to all of the entries its bytes would hold otherwise (some 21,000).
    assert!(entries < 60_000 && entries > 10_000, "{entries} entries cached");
    let held = b.memory_usage().pending_bytes;
    assert!(held <= held_rows, "{held} bytes of evicted rows held in memory, limit {held_rows}");
    for k in 0..60_000u64 {
        assert_eq!(names.get(&mut scope(&mut b, &k)).unwrap(), Some(format!("{k:0>200}")), "key {k}");
    }
}

#[test]
fn a_prefetched_batch_reads_the_latest_values_also_while_a_snapshot_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = KeyedStateConfig { cache_entries_per_state: 64, ..KeyedStateConfig::default() };
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), config, &[]).unwrap();
    let count = b.value_state::<u64, u64>("count").unwrap();
    for k in 0..1000u64 {
        count.set(&mut scope(&mut b, &k), k).unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    b.snapshot_async(&dir.path().join("snap"), Box::new(move |r| tx.send(r.is_ok()).unwrap())).unwrap();
    // Evictions while the snapshot runs are held back in memory; the prefetch must see them.
    for k in 0..200u64 {
        count.update(&mut scope(&mut b, &k), |c| c.map(|c| c + 1)).unwrap();
    }
    let keys: Vec<u64> = (0..300u64).collect();
    b.prefetch(&keys, None, MAX_P).unwrap();
    for k in 0..1000u64 {
        let want = if k < 200 { k + 1 } else { k };
        assert_eq!(count.get(&mut scope(&mut b, &k)).unwrap(), Some(want), "key {k}");
    }
    assert!(rx.recv().unwrap());
}

#[test]
fn values_that_grow_shrink_and_vanish_through_a_small_cache_read_back_with_and_without_in_place_updates() {
    for in_place_updates in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let config = KeyedStateConfig { cache_entries_per_state: 16, in_place_updates, ..KeyedStateConfig::default() };
        let mut b = KeyedBackend::open(dir.path().join("work"), all(), config.clone(), &[]).unwrap();
        let names = b.value_state::<u64, String>("names").unwrap();
        let mut truth = std::collections::BTreeMap::new();
        for round in 0..6u64 {
            // Each key is rewritten several times a round, its value's length changing every time
            // (longer values cannot overwrite shorter ones in place), and some keys are cleared.
            for step in 0..3000u64 {
                let k = (step * 13 + round) % 300;
                if (step + k) % 11 == 0 {
                    names.clear(&mut scope(&mut b, &k)).unwrap();
                    truth.remove(&k);
                } else {
                    let value = "x".repeat(((step * 7 + round) % 40) as usize);
                    names.set(&mut scope(&mut b, &k), value.clone()).unwrap();
                    truth.insert(k, value);
                }
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let snap = dir.path().join(format!("snap{round}"));
            b.snapshot_async(&snap, Box::new(move |r| tx.send(r.map(|_| ()).map_err(|e| e.to_string())).unwrap()))
                .unwrap();
            let at_barrier = truth.clone();
            for k in 0..300u64 {
                // Written while the snapshot runs: must not reach it.
                names.set(&mut scope(&mut b, &k), format!("after {round}")).unwrap();
                truth.insert(k, format!("after {round}"));
            }
            rx.recv().unwrap().unwrap();
            let source = KeyedRestoreSource::new(snap, all());
            let mut r =
                KeyedBackend::open(dir.path().join(format!("restored{round}")), all(), config.clone(), &[source])
                    .unwrap();
            let restored = r.value_state::<u64, String>("names").unwrap();
            for k in 0..300u64 {
                let got = restored.get(&mut scope(&mut r, &k)).unwrap();
                assert_eq!(got.as_ref(), at_barrier.get(&k), "in place {in_place_updates}, snapshot {round}, key {k}");
            }
        }
        for k in 0..300u64 {
            assert_eq!(names.get(&mut scope(&mut b, &k)).unwrap().as_ref(), truth.get(&k), "key {k}");
        }
    }
}

#[test]
fn a_restore_that_takes_some_states_gets_only_their_rows_and_their_owners() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), KeyedStateConfig::default(), &[]).unwrap();
    b.set_owner("counts");
    let counts = b.value_state::<u64, u64>("counts/count").unwrap();
    b.set_owner("windows");
    let windows = b.value_state::<u64, u64>("windows/open").unwrap();
    for k in 0..50u64 {
        counts.set(&mut scope(&mut b, &k), k).unwrap();
        windows.set(&mut scope(&mut b, &k), k + 1).unwrap();
    }
    let owners = b.state_owners().clone();
    assert_eq!(owners.get("counts/count").map(String::as_str), Some("counts"));
    assert_eq!(owners.get("windows/open").map(String::as_str), Some("windows"));
    let snap = dir.path().join("snap");
    b.snapshot(&snap).unwrap();
    drop(b);

    // The counting operator now runs in another chain: that chain takes only its state.
    let taken = [("counts/count".to_string(), "counts".to_string())].into_iter().collect();
    let source = KeyedRestoreSource { states: taken, partial: true, ..KeyedRestoreSource::new(snap, all()) };
    let mut r = KeyedBackend::open(dir.path().join("work2"), all(), KeyedStateConfig::default(), &[source]).unwrap();
    assert_eq!(r.state_owners().keys().collect::<Vec<_>>(), vec!["counts/count"], "owners carried forward");
    let counts = r.value_state::<u64, u64>("counts/count").unwrap();
    let windows = r.value_state::<u64, u64>("windows/open").unwrap();
    for k in 0..50u64 {
        assert_eq!(counts.get(&mut scope(&mut r, &k)).unwrap(), Some(k));
        assert_eq!(windows.get(&mut scope(&mut r, &k)).unwrap(), None, "another chain's state stays out");
    }
}
