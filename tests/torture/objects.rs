//! The objects the table holds, and the counters that prove each was freed
//! exactly once.
//!
//! Four types: `Small` (16 B payload, headed), `Medium` (64 B, head-less),
//! `Large` (1 KiB, headed) and `Custom` (32 B, freed by [`free_custom`]);
//! `updaters.rs` says which retire call each goes through. Each object
//! starts with a [`Header`]:
//! - `magic`, [`ALIVE`] until its `Drop` swaps in [`POISON`] (a second drop
//!   sees `POISON` and fails the run: "freed exactly once");
//! - `removed_epoch`, the origin of its pipeline age ([`LINKED`] while it is
//!   in the table; see `updaters.rs`);
//! - its id, which its payload's first and last words repeat (a torn or
//!   reused object fails the readers' check);
//! - its type's [`Counts`] (created, retired, dropped).

use super::failure::fail;
use kvfree_rcu::{RcuHead, impl_rcu_headed};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

pub const ALIVE: u64 = 0x5AFE_0B1E_C7A1_1CE5;
pub const POISON: u64 = 0xDEAD_F1EE_DEAD_F1EE;
/// `removed_epoch` of an object still linked in the table.
pub const LINKED: u64 = u64::MAX;

/// Per-type counters.
#[derive(Debug, Default)]
pub struct Counts {
    pub created: AtomicU64,
    pub retired: AtomicU64,
    pub dropped: AtomicU64,
}

impl Counts {
    /// Fresh counters that live until the process exits: objects hold
    /// `&'static Counts`, so no lifetime ties an object to the run that
    /// created it. This is the harness's only deliberate leak (four small
    /// allocations per run); `ci/lsan.supp` suppresses this function's
    /// allocations and nothing else, so a leaked object still fails ASan.
    #[inline(never)]
    pub fn leak_for_the_process() -> &'static Counts {
        Box::leak(Box::default())
    }
}

/// What every torture object starts with.
pub struct Header {
    pub magic: AtomicU64,
    pub removed_epoch: AtomicU64,
    pub id: u64,
    pub counts: &'static Counts,
}

impl Header {
    fn new(id: u64, counts: &'static Counts) -> Header {
        counts.created.fetch_add(1, Ordering::Relaxed);
        Header {
            magic: AtomicU64::new(ALIVE),
            removed_epoch: AtomicU64::new(LINKED),
            id,
            counts,
        }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        let was = self.magic.swap(POISON, Ordering::Relaxed);
        if was != ALIVE {
            fail(&format!(
                "object {} dropped twice (magic {was:#x})",
                self.id
            ));
        }
        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// An object of the table: a header and `N` payload words.
pub trait Object: Send + Sync + 'static {
    fn header(&self) -> &Header;
    fn payload(&self) -> &[u64];
}

macro_rules! object {
    ($name:ident, $words:expr, headed) => {
        pub struct $name {
            hdr: Header,
            payload: [u64; $words],
            head: RcuHead,
        }
        impl_rcu_headed!($name, head);
        impl $name {
            pub fn boxed(id: u64, counts: &'static Counts) -> *mut $name {
                Box::into_raw(Box::new($name { hdr: Header::new(id, counts), payload: [id; $words], head: RcuHead::new() }))
            }
        }
        object!(@impl $name);
    };
    ($name:ident, $words:expr) => {
        pub struct $name {
            hdr: Header,
            payload: [u64; $words],
        }
        impl $name {
            pub fn boxed(id: u64, counts: &'static Counts) -> *mut $name {
                Box::into_raw(Box::new($name { hdr: Header::new(id, counts), payload: [id; $words] }))
            }
        }
        object!(@impl $name);
    };
    (@impl $name:ident) => {
        impl Object for $name {
            fn header(&self) -> &Header {
                &self.hdr
            }
            fn payload(&self) -> &[u64] {
                &self.payload
            }
        }
    };
}

// 16 B, 64 B and 1 KiB payloads; headed and head-less.
object!(Small, 2, headed);
object!(Medium, 8);
object!(Large, 128, headed);
object!(Custom, 4);

/// The free function `kvfree_rcu_with` is given for `Custom` objects.
///
/// # Safety
/// `p` came from `Custom::boxed` and is freed once.
pub unsafe fn free_custom(p: NonNull<()>) {
    // SAFETY: contract above.
    drop(unsafe { Box::from_raw(p.cast::<Custom>().as_ptr()) });
}

/// The per-type counters of one run.
pub struct TypeCounts {
    pub small: &'static Counts,
    pub medium: &'static Counts,
    pub large: &'static Counts,
    pub custom: &'static Counts,
}

impl TypeCounts {
    pub fn new() -> TypeCounts {
        TypeCounts {
            small: Counts::leak_for_the_process(),
            medium: Counts::leak_for_the_process(),
            large: Counts::leak_for_the_process(),
            custom: Counts::leak_for_the_process(),
        }
    }

    pub fn all(&self) -> [(&'static str, &'static Counts); 4] {
        [
            ("small/headed", self.small),
            ("medium/plain", self.medium),
            ("large/headed", self.large),
            ("custom/with", self.custom),
        ]
    }

    /// Objects retired so far, all types.
    pub fn retired(&self) -> u64 {
        self.all()
            .iter()
            .map(|(_, c)| c.retired.load(Ordering::Relaxed))
            .sum()
    }
}
