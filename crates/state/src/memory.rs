//! The memory of a process's keyed state: one RocksDB block cache and write-buffer manager shared
//! by every subtask's working database, and a budget in bytes split among subtasks and states.
//!
//! With [`KeyedStateConfig::memory_budget_bytes`] set to B for a process running n keyed
//! subtasks: RocksDB gets B/4 (one LRU block cache of B/4, which the memtables, capped at B/8
//! by the write-buffer manager, are charged to), and each
//! subtask gets (3/4)·B/n: a sixteenth of it for the rows its caches evicted that are held in
//! memory before they go to RocksDB (see `db.rs`), the rest for its state caches, split among its
//! registered states by use. A cache counts its entries' bytes by [`CacheBound`]'s estimate.
//! Without a budget, caches are bounded by entries only, held rows by 64 MiB, and RocksDB by the
//! configured sizes, still in one shared cache.

use rocksdb::{BlockBasedOptions, Cache, Options, WriteBufferManager};

use crate::backend::KeyedStateConfig;

/// RocksDB's memory shared by every working database of a process, and each one's share of the
/// cache budget. Cheap to clone (the cache and manager are reference counted).
#[derive(Clone)]
pub struct StateMemory {
    cache: Cache,
    write_buffers: WriteBufferManager,
    write_buffer_bytes: usize,
    cache_bytes_per_backend: Option<usize>,
    row_buffer_bytes: usize,
    in_place_updates: bool,
}

impl std::fmt::Debug for StateMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMemory")
            .field("write_buffer_bytes", &self.write_buffer_bytes)
            .field("cache_bytes_per_backend", &self.cache_bytes_per_backend)
            .field("in_place_updates", &self.in_place_updates)
            .finish()
    }
}

/// The smallest memtable a working database gets, however small the budget.
const MIN_WRITE_BUFFER: usize = 1 << 20;
/// The largest memtable a budget gives a working database.
const MAX_WRITE_BUFFER: usize = 64 << 20;
/// Bytes of evicted rows a working database holds in memory, without a byte budget.
const DEFAULT_ROW_BUFFER: usize = 64 << 20;

impl StateMemory {
    /// The shared memory of `backends` working databases (a job's keyed subtasks in this process).
    pub fn new(config: &KeyedStateConfig, backends: usize) -> Self {
        let backends = backends.max(1);
        let in_place_updates = config.in_place_updates;
        match config.memory_budget_bytes {
            Some(budget) => {
                let rocks = (budget / 4).max(2 * MIN_WRITE_BUFFER * backends);
                let memtables = rocks / 2;
                // Two memtables per database (one filling, one flushing) within the manager's share.
                let write_buffer_bytes = (memtables / backends / 2).clamp(MIN_WRITE_BUFFER, MAX_WRITE_BUFFER);
                let cache = Cache::new_lru_cache(rocks);
                let write_buffers =
                    WriteBufferManager::new_write_buffer_manager_with_cache(memtables, false, cache.clone());
                let per_backend = budget.saturating_sub(rocks) / backends;
                let row_buffer_bytes = per_backend / 16;
                StateMemory {
                    cache,
                    write_buffers,
                    write_buffer_bytes,
                    cache_bytes_per_backend: Some(per_backend - row_buffer_bytes),
                    row_buffer_bytes,
                    in_place_updates,
                }
            }
            None => {
                let cache = Cache::new_lru_cache(config.block_cache_bytes * backends);
                let memtables = 2 * config.write_buffer_bytes * backends;
                let write_buffers = WriteBufferManager::new_write_buffer_manager(memtables, false);
                StateMemory {
                    cache,
                    write_buffers,
                    write_buffer_bytes: config.write_buffer_bytes,
                    cache_bytes_per_backend: None,
                    row_buffer_bytes: DEFAULT_ROW_BUFFER,
                    in_place_updates,
                }
            }
        }
    }

    /// Bytes of evicted rows a working database may hold in memory before they go to RocksDB: a
    /// sixteenth of its share of a byte budget.
    pub(crate) fn row_buffer_bytes(&self) -> usize {
        self.row_buffer_bytes
    }

    /// Size of one memtable of a working database.
    pub(crate) fn write_buffer_bytes(&self) -> usize {
        self.write_buffer_bytes
    }

    /// Bytes the shared RocksDB block cache holds now, memtables charged to it included.
    pub fn block_cache_bytes(&self) -> usize {
        self.cache.get_usage()
    }

    /// Bytes the state caches of one working database may hold (`None`: bounded by entries only).
    pub fn cache_bytes_per_backend(&self) -> Option<usize> {
        self.cache_bytes_per_backend
    }

    /// RocksDB options of a working database using this memory, tuned for point reads and writes
    /// of small rows: small memtables with a whole-key bloom filter (a lookup of a row that is
    /// in an SST skips the memtable's skiplist), bloom filters and a hash index in SST blocks,
    /// LZ4, level compaction, two background jobs. Index and filter blocks stay outside the block
    /// cache, held by each open SST (about 1.3 bytes per key): in the cache, a budget's cache
    /// filled by the memtables' charge evicted them, and every lookup read and checksummed them again
    /// (seen at 10 M keys: throughput fell to a few thousand records/s).
    ///
    /// With [`KeyedStateConfig::in_place_updates`], a write of a row the memtable holds
    /// overwrites it there (RocksDB's `inplace_update_support`, which needs writes from one
    /// thread at a time). RocksDB then promises consistent point reads only, not snapshots or
    /// iterators racing writes, which is how a working database is used: the only writes that
    /// run beside the subtask are its background snapshot's, the subtask's reads of the rows
    /// that snapshot may be writing are answered from memory (the rows it took from the row
    /// buffer, or the caches), and its scans wait for the snapshot (see `db.rs`). So one lock,
    /// rather than RocksDB's 10,000, guards the overwrites: uncontended, it stays in the CPU's
    /// cache (measured 13 % more throughput).
    pub(crate) fn db_options(&self) -> Options {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_write_buffer_size(self.write_buffer_bytes);
        opts.set_max_write_buffer_number(2);
        opts.set_write_buffer_manager(&self.write_buffers);
        opts.set_memtable_prefix_bloom_ratio(0.1);
        opts.set_memtable_whole_key_filtering(true);
        if self.in_place_updates {
            opts.set_inplace_update_support(true);
            opts.set_allow_concurrent_memtable_write(false);
            opts.set_inplace_update_locks(1);
        }
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_max_background_jobs(2);
        opts.set_max_open_files(256);
        opts.set_keep_log_file_num(2);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        table.set_bloom_filter(10.0, false);
        table.set_whole_key_filtering(true);
        table.set_data_block_index_type(rocksdb::DataBlockIndexType::BinaryAndHash);
        opts.set_block_based_table_factory(&table);
        opts
    }
}

/// What one subtask's keyed state holds in memory, to see where a budget's bytes go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateMemoryUsage {
    /// Entries in the subtask's state caches.
    pub cache_entries: usize,
    /// Their estimated bytes (what a byte budget bounds; see `CacheBound`).
    pub cache_bytes: usize,
    /// Rows the caches evicted that are held in memory, not yet in RocksDB (see `db.rs`).
    pub pending_bytes: usize,
    /// RocksDB memtables: the one filling, and those being flushed or still pinned.
    pub memtable_bytes: u64,
    /// RocksDB's index and filter blocks of the open files, held outside the block cache.
    pub table_readers_bytes: u64,
}

/// Bytes a row takes in a `WriteBatch` besides its key and value: the key-group and state
/// prefix, the record's tag and two length varints, rounded up.
const BATCH_ROW_OVERHEAD: usize = 16;

/// How many entries a state cache may hold: at most a number of entries and, under a byte
/// budget, as many as fit by an estimate of an entry's size. The estimate is the entry's fixed
/// size in the hash map and CLOCK ring (with their spare capacity), plus a running average of its
/// encoded key and value sizes twice: once for what the key and value hold on the heap (it
/// counts an inline `u64` as 8 heap bytes: the estimate errs high), once for the entry's row in
/// the write batch a barrier builds from the dirty entries.
///
/// A cache that evicts single entries and inserts others (a value cache) has its hash table
/// counted by buckets instead ([`CacheBound::with_table`]): removals leave tombstones in a
/// `std` hash map, and once they use up its spare room, a table more than half full doubles
/// (seen: 1.24 M entries in 2 M buckets went to 4 M after about 20 evictions of a quarter),
/// holding the old and the new table together for a moment. One at most 7/16 full is rehashed
/// in place instead. So such a cache gets the largest power-of-two table whose buckets, and the
/// entries filling 7/16 of it, fit its bytes, reserved at once.
#[derive(Debug, Clone)]
pub(crate) struct CacheBound {
    entries: usize,
    bytes: Option<usize>,
    fixed: usize,
    /// Bytes of one bucket of the cache's hash table, when it is counted by buckets.
    bucket: Option<usize>,
    /// Average encoded bytes per entry, times 16 (a running average with weight 1/16).
    encoded_x16: usize,
    observed: bool,
}

/// Buckets of the hash table a cache of `capacity` entries reserves: at most 7/16 full.
pub(crate) fn table_buckets(capacity: usize) -> usize {
    (capacity * 16 / 7).max(16).next_power_of_two()
}

/// Entries a table of `buckets` buckets holds at most 7/16 full (the inverse of [`table_buckets`]).
pub(crate) fn table_entries(buckets: usize) -> usize {
    buckets * 7 / 16
}

/// The most entries one state's cache holds, whatever it is configured to: a cached entry keeps
/// its CLOCK position in 32 bits.
pub(crate) const MAX_CACHE_ENTRIES: usize = u32::MAX as usize;

impl CacheBound {
    /// A bound of `entries` (at most [`MAX_CACHE_ENTRIES`]) for entries of `fixed` bytes each
    /// besides their heap.
    pub(crate) fn new(entries: usize, fixed: usize) -> Self {
        CacheBound {
            entries: entries.clamp(1, MAX_CACHE_ENTRIES),
            bytes: None,
            fixed,
            bucket: None,
            encoded_x16: 32 * 16,
            observed: false,
        }
    }

    /// A bound of `entries` for entries of `fixed` bytes each besides their heap and their hash
    /// table, whose buckets take `bucket` bytes each.
    pub(crate) fn with_table(entries: usize, fixed: usize, bucket: usize) -> Self {
        CacheBound { bucket: Some(bucket), ..CacheBound::new(entries, fixed) }
    }

    /// Sets the cache's share of the byte budget (`None`: entries only).
    pub(crate) fn set_bytes(&mut self, bytes: Option<usize>) {
        self.bytes = bytes;
    }

    /// The estimated size of one entry in bytes, including what it takes in a barrier's write
    /// batch if dirty (its encoded row once more, and the batch's framing).
    pub(crate) fn entry_bytes(&self) -> usize {
        self.fixed + 2 * (self.encoded_x16 / 16) + BATCH_ROW_OVERHEAD
    }

    /// Entries the cache may hold now.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        match (self.bytes, self.bucket) {
            (None, _) => self.entries,
            (Some(bytes), None) => (bytes / self.entry_bytes()).clamp(1, self.entries),
            (Some(bytes), Some(bucket)) => {
                // 16 buckets hold 7 entries.
                let fit = bytes.saturating_mul(16) / (16 * bucket + 7 * self.entry_bytes());
                let buckets = if fit == 0 { 0 } else { 1usize << (usize::BITS - 1 - fit.leading_zeros()) };
                table_entries(buckets).clamp(1, self.entries)
            }
        }
    }

    /// Estimated bytes of a cache holding `len` entries, whose hash table has `buckets` buckets
    /// (counted only for a cache bounded [`CacheBound::with_table`]).
    pub(crate) fn cache_bytes(&self, len: usize, buckets: usize) -> usize {
        len * self.entry_bytes() + self.bucket.map_or(0, |bucket| buckets * bucket)
    }

    /// An entry was encoded with `encoded` bytes of key and value.
    #[inline]
    pub(crate) fn observe(&mut self, encoded: usize) {
        if self.observed {
            self.encoded_x16 = self.encoded_x16 - self.encoded_x16 / 16 + encoded;
        } else {
            self.encoded_x16 = encoded * 16;
            self.observed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_byte_budget_a_cache_is_bounded_by_entries() {
        let bound = CacheBound::new(5000, 64);
        assert_eq!(bound.capacity(), 5000);
    }

    #[test]
    fn a_byte_budget_bounds_entries_by_their_estimated_size() {
        let mut bound = CacheBound::new(1_000_000, 64);
        bound.set_bytes(Some(144_000));
        bound.observe(32);
        assert_eq!(bound.entry_bytes(), 64 + 2 * 32 + BATCH_ROW_OVERHEAD);
        assert_eq!(bound.capacity(), 1000);
        for _ in 0..200 {
            bound.observe(32 + 192);
        }
        assert_eq!(bound.capacity(), 144_000 / (64 + 2 * 224 + 16), "larger values: fewer entries fit");
    }

    #[test]
    fn a_cache_counted_by_buckets_gets_the_largest_table_that_fits_at_most_7_16_full() {
        let mut bound = CacheBound::with_table(10_000_000, 16, 41);
        bound.observe(16);
        for bytes in [100_000, 1 << 20, 3 << 20, 100 << 20, 1 << 30] {
            bound.set_bytes(Some(bytes));
            let capacity = bound.capacity();
            let buckets = table_buckets(capacity);
            assert_eq!(capacity, table_entries(buckets), "{bytes} bytes");
            assert!(bound.cache_bytes(capacity, buckets) <= bytes, "{bytes} bytes: {capacity} entries fit");
            assert!(
                bound.cache_bytes(2 * capacity, 2 * buckets) > bytes,
                "{bytes} bytes: a table twice as large would not"
            );
        }
    }

    #[test]
    fn a_budget_split_among_subtasks_gives_rocksdb_a_quarter() {
        let config = KeyedStateConfig { memory_budget_bytes: Some(1 << 30), ..KeyedStateConfig::default() };
        let memory = StateMemory::new(&config, 2);
        let per_subtask = (3 << 28) / 2;
        assert_eq!(memory.cache_bytes_per_backend(), Some(per_subtask - per_subtask / 16));
        assert_eq!(memory.row_buffer_bytes(), per_subtask / 16);
        assert_eq!(memory.write_buffer_bytes, 32 << 20, "two memtables per subtask in half of RocksDB's share");
    }

    #[test]
    fn with_in_place_updates_a_row_written_again_takes_no_new_memtable_entry() {
        for (in_place_updates, entries) in [(true, 1), (false, 100)] {
            let dir = tempfile::tempdir().unwrap();
            let config = KeyedStateConfig { in_place_updates, ..KeyedStateConfig::default() };
            let db = rocksdb::DB::open(&StateMemory::new(&config, 1).db_options(), dir.path()).unwrap();
            for i in 0..100u64 {
                db.put(b"row", (100 - i).to_be_bytes()).unwrap();
            }
            let found = db.property_int_value("rocksdb.num-entries-active-mem-table").unwrap();
            assert_eq!(found, Some(entries), "in place updates: {in_place_updates}");
            assert_eq!(db.get(b"row").unwrap(), Some(1u64.to_be_bytes().to_vec()));
        }
    }
}
