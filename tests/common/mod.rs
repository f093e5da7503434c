//! Helpers shared by the integration tests: objects that count their drops
//! and poison themselves, so a test can prove "freed exactly once" and
//! "never freed while a reader can see it".
#![allow(dead_code, unreachable_pub)]

use kvfree_rcu::{RcuHead, impl_rcu_headed};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub const ALIVE: u64 = 0xA11C_E0A1_1CE0_A11C;
pub const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;

/// Counts drops of the objects of one test.
#[derive(Debug, Default)]
pub struct DropCounter {
    pub dropped: AtomicUsize,
}

impl DropCounter {
    pub fn leak() -> &'static DropCounter {
        Box::leak(Box::default())
    }
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
    /// An object's drop: poison it (failing on a second drop) and count it.
    pub fn poison_and_count(&self, magic: &AtomicU64) {
        assert_eq!(
            magic.swap(POISON, Ordering::SeqCst),
            ALIVE,
            "object dropped twice"
        );
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A headed object (it embeds an `RcuHead`).
pub struct Headed {
    pub magic: AtomicU64,
    pub value: u64,
    pub counter: &'static DropCounter,
    pub head: RcuHead,
}
impl_rcu_headed!(Headed, head);

impl Headed {
    pub fn boxed(value: u64, counter: &'static DropCounter) -> std::ptr::NonNull<Headed> {
        let b = Box::new(Headed {
            magic: AtomicU64::new(ALIVE),
            value,
            counter,
            head: RcuHead::new(),
        });
        std::ptr::NonNull::from(Box::leak(b))
    }
}

impl Drop for Headed {
    fn drop(&mut self) {
        self.counter.poison_and_count(&self.magic);
    }
}

/// A head-less object of another size and type.
pub struct Plain {
    pub magic: AtomicU64,
    pub payload: [u64; 3],
    pub counter: &'static DropCounter,
}

impl Plain {
    pub fn boxed(value: u64, counter: &'static DropCounter) -> std::ptr::NonNull<Plain> {
        let b = Box::new(Plain {
            magic: AtomicU64::new(ALIVE),
            payload: [value; 3],
            counter,
        });
        std::ptr::NonNull::from(Box::leak(b))
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        self.counter.poison_and_count(&self.magic);
    }
}

/// A zero-sized type with a counted drop.
pub struct Zst;
pub static ZST_DROPS: AtomicUsize = AtomicUsize::new(0);
impl Drop for Zst {
    fn drop(&mut self) {
        ZST_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Small per-test sizes: Miri does not run integration tests, but keep them quick anyway.
pub fn scaled(n: usize) -> usize {
    if cfg!(debug_assertions) { n } else { n * 4 }
}
