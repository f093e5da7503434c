//! The state every thread of one run shares: the domain and the service
//! under test, the table, the counters, the stop flags, and what the threads
//! counted. Readers (`readers.rs`), updaters (`updaters.rs`) and the
//! maintenance thread (`maintenance.rs`) each add their methods.

use super::config::Config;
use super::objects::TypeCounts;
use super::table::Table;
use kvfree_rcu::{KvfreeRcu, RawSpinLock, Rcu};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Ages a reader can observe: 0, 1, and "2 or more" (a failure).
pub const AGES: usize = 3;

pub struct Shared {
    pub rcu: Arc<Rcu>,
    pub service: KvfreeRcu,
    pub table: Table,
    pub counts: TypeCounts,
    /// Updaters take it to replace `large` elements: retiring under a raw
    /// spinlock is what the service is for.
    pub writer_lock: RawSpinLock<()>,
    pub next_id: AtomicU64,
    pub stop_readers: AtomicBool,
    pub stop_updaters: AtomicBool,
    pub reads: AtomicU64,
    pub updates: AtomicU64,
    pub ages: [AtomicU64; AGES],
    pub inline_frees: AtomicU64,
    pub barriers: AtomicU64,
    pub shrinks: AtomicU64,
    pub short_threads: AtomicU64,
}

impl Shared {
    /// A fresh domain and service (the configured watermarks), a full table.
    pub fn new(config: &Config) -> Arc<Shared> {
        let rcu = Arc::new(Rcu::new());
        let service = KvfreeRcu::builder(rcu.clone())
            .low_watermark(config.low_watermark)
            .high_watermark(config.high_watermark)
            .max_watermark(config.max_watermark)
            .build();
        let counts = TypeCounts::new();
        let table = Table::new(config.slots, &counts);
        Arc::new(Shared {
            rcu,
            service,
            table,
            counts,
            writer_lock: RawSpinLock::new(()),
            next_id: AtomicU64::new(1 << 32),
            stop_readers: AtomicBool::new(false),
            stop_updaters: AtomicBool::new(false),
            reads: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            ages: Default::default(),
            inline_frees: AtomicU64::new(0),
            barriers: AtomicU64::new(0),
            shrinks: AtomicU64::new(0),
            short_threads: AtomicU64::new(0),
        })
    }

    /// A new object id.
    pub fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
