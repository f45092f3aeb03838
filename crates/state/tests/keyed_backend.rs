use rill_state::{key_group_of, KeyGroupRange, KeyedBackend, KeyedRestoreSource, KeyedScope, KeyedStateConfig};

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

    let source = KeyedRestoreSource { dir: snap, key_groups: all() };
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
        sources.push(KeyedRestoreSource { dir: snap, key_groups: range });
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
fn registering_a_state_with_another_type_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = KeyedBackend::open(dir.path().join("work"), all(), KeyedStateConfig::default(), &[]).unwrap();
    b.value_state::<u64, u64>("count").unwrap();
    let err = b.value_state::<u64, String>("count").unwrap_err();
    assert!(err.to_string().contains("count"), "{err}");
}
