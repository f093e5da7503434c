//! A generic concurrent hash map on the safe layer and the process-wide
//! service, with no `unsafe` (the `forbid` below proves it).
//!
//! Each bucket is an `RcuCell` holding an immutable vector of entries;
//! writers copy the bucket, change the copy and publish it with
//! `RcuCell::update` (which retries when another writer raced), and the
//! replaced vector is retired through `kvfree_rcu::global()`. Readers take a
//! guard of the global domain and get `&'g V` with no reference counting.
//! Entries are `Arc`ed so copying a bucket copies pointers, not keys and
//! values.
//!
//! Run: `cargo run --example safe_map -- [operations per thread]`.

#![forbid(unsafe_code)]

use kvfree_rcu::{Rcu, RcuCell, RcuReadGuard};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

/// A bucket: an immutable vector of entries, replaced as a whole.
type Bucket<K, V> = RcuCell<Vec<Arc<(K, V)>>>;

/// A fixed-size concurrent hash map.
struct RcuMap<K: Send + Sync + 'static, V: Send + Sync + 'static> {
    buckets: Vec<Bucket<K, V>>,
    hasher: RandomState,
}

impl<K, V> RcuMap<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn with_buckets(n: usize) -> Self {
        RcuMap {
            buckets: (0..n).map(|_| RcuCell::new(Vec::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn bucket(&self, key: &K) -> &Bucket<K, V> {
        let index = self.hasher.hash_one(key) as usize % self.buckets.len();
        &self.buckets[index]
    }

    /// The value for `key`, valid while `guard` (of `Rcu::global()`) lives.
    fn get<'g>(&self, key: &K, guard: &'g RcuReadGuard<'_>) -> Option<&'g V> {
        let bucket = self.bucket(key).read(guard);
        bucket.iter().find(|e| e.0 == *key).map(|e| &e.1)
    }

    /// Inserts or replaces; the old bucket is retired (never fails).
    fn insert(&self, key: K, value: V) {
        let entry = Arc::new((key, value));
        self.bucket(&entry.0).update(|old| {
            let mut new: Vec<_> = old.iter().filter(|e| e.0 != entry.0).cloned().collect();
            new.push(entry.clone());
            new
        });
    }

    /// Removes `key`, returning whether it was present.
    fn remove(&self, key: &K) -> bool {
        let mut found = false;
        self.bucket(key).update(|old| {
            found = old.iter().any(|e| e.0 == *key);
            old.iter().filter(|e| e.0 != *key).cloned().collect()
        });
        found
    }

    fn len(&self) -> usize {
        let guard = Rcu::global().read_lock();
        self.buckets.iter().map(|b| b.read(&guard).len()).sum()
    }
}

fn main() {
    let ops: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("operations per thread: a number"))
        .unwrap_or(100_000);
    kvfree_rcu::init_global(); // ordinary context, at start-up
    let map: RcuMap<u64, String> = RcuMap::with_buckets(256);
    let writers = 2u64;
    std::thread::scope(|s| {
        for w in 0..writers {
            let map = &map;
            s.spawn(move || {
                for i in 0..ops {
                    let key = (i % 1000) * writers + w; // disjoint key sets
                    map.insert(key, format!("{key}:{i}"));
                    if i % 7 == 0 {
                        map.remove(&key);
                    }
                }
            });
        }
        let map = &map;
        s.spawn(move || {
            for i in 0..ops {
                let guard = Rcu::global().read_lock();
                if let Some(v) = map.get(&(i % 2000), &guard) {
                    // A value always names its own key.
                    let (k, _) = v.split_once(':').expect("key:i");
                    assert_eq!(k.parse::<u64>().unwrap(), i % 2000);
                }
            }
        });
    });
    // Every key's last operation decides whether it is present.
    let guard = Rcu::global().read_lock();
    let mut expected = 0;
    for w in 0..writers {
        for k in 0..1000.min(ops) {
            let key = k * writers + w;
            let last = (0..ops).rev().find(|i| i % 1000 == k).unwrap();
            let present = map.get(&key, &guard).is_some();
            assert_eq!(present, last % 7 != 0, "key {key}");
            expected += usize::from(present);
            if present {
                assert_eq!(map.get(&key, &guard).unwrap(), &format!("{key}:{last}"));
            }
        }
    }
    drop(guard);
    assert_eq!(map.len(), expected);
    drop(map);
    kvfree_rcu::barrier();
    let stats = kvfree_rcu::global().stats();
    assert_eq!(
        stats.pending, 0,
        "everything retired is freed after barrier"
    );
    println!(
        "safe_map: {} entries, {} buckets retired and freed",
        expected, stats.freed
    );
}
