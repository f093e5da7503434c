//! The schemes compared, behind one trait.
//!
//! Each scheme retires [`FloodObj`]s and frees them later (or at once, for
//! [`Direct`]). The flood, the latency run and the criterion benches are
//! generic over [`Scheme`] (`?Sized`, so the main job can hold them as
//! `Box<dyn Scheme>` while the nanosecond benches use the concrete types).

mod call_rcu;
mod direct;
mod epoch;
mod floor;
mod kvfree;
#[cfg(feature = "liburcu")]
mod urcu;

pub use call_rcu::CallRcu;
pub use direct::Direct;
pub use epoch::Epoch;
pub use floor::{FLOOR_CAPACITY, Floor};
pub use kvfree::{KvfreeHeaded, KvfreeHeadless, KvfreeLocal, LocalFreeing, RECLAIM_EVERY};
#[cfg(feature = "liburcu")]
pub use urcu::Urcu;

use crate::object::FloodObj;
use kvfree_rcu::ReclaimAffinity;
use std::ptr::NonNull;

/// A way of retiring an object so that it is freed (eventually) after
/// every reader that could see it is done.
pub trait Scheme: Send + Sync {
    /// Short name used in tables, JSON and charts.
    fn name(&self) -> &'static str;

    /// Called once on each thread before its first retire.
    fn register_thread(&self) {}

    /// Called once on each thread after its last retire (and flush).
    fn unregister_thread(&self) {}

    /// The retire call.
    ///
    /// # Safety
    /// 1. `obj` came from [`FloodObj::alloc`] and is retired once.
    /// 2. The caller does not use it afterwards.
    unsafe fn retire(&self, obj: NonNull<FloodObj>);

    /// Untimed hook after a burst of retires on this thread (the floor
    /// frees what its thread-local array recorded).
    fn flush_thread(&self) {}

    /// Best effort to free everything retired so far. Exact (returns after
    /// the last free) for every scheme except crossbeam-epoch, whose callers
    /// loop on [`freed_objects`](crate::object::freed_objects).
    fn barrier(&self);

    /// Grace periods (epochs) completed in the scheme's domain, if it counts them.
    fn grace_periods(&self) -> Option<u64> {
        None
    }

    /// Retire calls so far that missed the fast path (kvfree-rcu: no page,
    /// so a head-list push or, head-less, an inline grace-period wait), if
    /// the scheme has one.
    fn fallbacks(&self) -> Option<u64> {
        None
    }

    /// The largest backlog (objects retired and not yet freed) the scheme
    /// has seen since it was built, if it keeps such a mark (kvfree-rcu:
    /// `Stats::peak_pending`, sampled whenever its service goes to collect
    /// and free).
    fn peak_backlog(&self) -> Option<u64> {
        None
    }

    /// Stalls the scheme's worker thread; false if it has none.
    fn stall_worker(&self) -> bool {
        false
    }

    /// Undoes [`stall_worker`](Scheme::stall_worker).
    fn resume_worker(&self) {}
}

/// Every scheme the main job knows, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeKind {
    /// kvfree-rcu, headed objects (`kvfree_rcu`).
    KvfreeHeaded,
    /// kvfree-rcu, headed, with reclaim on the CPU that filled each page (`ReclaimAffinity::FillingCpu`).
    KvfreeHeadedAffine,
    /// kvfree-rcu, headed, with the reclaim threads at nice -5 (`ReclaimPriority::Nice`; Linux, needs `CAP_SYS_NICE`).
    KvfreeHeadedNice,
    /// kvfree-rcu, headed, reclaim on the filling CPU and at nice -5 (both options).
    KvfreeHeadedAffineNice,
    /// kvfree-rcu, headed, each thread retiring through its own `LocalRetirer` (no locked instruction per call).
    KvfreeLocal,
    /// kvfree-rcu local, each thread also freeing what has expired (`LocalRetirer::reclaim` every 256 retires).
    KvfreeLocalReclaim,
    /// kvfree-rcu, head-less objects (`try_kvfree_rcu`, falling back to `kvfree_rcu_mightsleep`).
    KvfreeHeadless,
    /// A naive `call_rcu`: one boxed callback per call, a worker thread.
    CallRcu,
    /// crossbeam-epoch: `pin()` + `defer_destroy`.
    CrossbeamEpoch,
    /// liburcu's `call_rcu` (feature `liburcu`).
    #[cfg(feature = "liburcu")]
    Liburcu,
    /// Record the pointer in a thread-local `ArrayVec`, free in batches: the floor.
    Floor,
    /// Free at once (no grace period): the cost of freeing itself.
    Direct,
}

impl SchemeKind {
    /// Every scheme built into this binary.
    pub fn all() -> Vec<SchemeKind> {
        use clap::ValueEnum;
        SchemeKind::value_variants().to_vec()
    }

    /// The schemes the main job runs by default: all that this system can
    /// run ([`unavailable`](Self::unavailable)) but the floor (whose flood
    /// cost is the direct free's; it stays available by name).
    pub fn default_set() -> Vec<SchemeKind> {
        SchemeKind::all()
            .into_iter()
            .filter(|&k| k != SchemeKind::Floor && k.unavailable().is_none())
            .collect()
    }

    /// Why this system cannot run the scheme, if it cannot: the reclaim
    /// threads' nice value is refused without `CAP_SYS_NICE` (or an
    /// `RLIMIT_NICE` that allows it) and outside Linux. Builds and drops a
    /// service to find out.
    pub fn unavailable(self) -> Option<String> {
        match self {
            SchemeKind::KvfreeHeadedNice => {
                KvfreeHeaded::try_reclaim_nice(ReclaimAffinity::Anywhere)
                    .err()
                    .map(|e| e.to_string())
            }
            SchemeKind::KvfreeHeadedAffineNice => {
                KvfreeHeaded::try_reclaim_nice(ReclaimAffinity::FillingCpu)
                    .err()
                    .map(|e| e.to_string())
            }
            _ => None,
        }
    }

    /// Whether the scheme is a reference (not a valid RCU scheme: it never
    /// waits for readers), drawn as a line rather than a bar.
    pub fn is_reference(self) -> bool {
        matches!(self, SchemeKind::Floor | SchemeKind::Direct)
    }

    /// The name the command line takes (`kvfree-headed`, ...).
    pub fn cli_name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .expect("no scheme is skipped")
            .get_name()
            .to_owned()
    }

    /// Builds a fresh instance.
    pub fn build(self) -> Box<dyn Scheme> {
        match self {
            SchemeKind::KvfreeHeaded => Box::new(KvfreeHeaded::new()),
            SchemeKind::KvfreeHeadedAffine => Box::new(KvfreeHeaded::filling_cpu()),
            SchemeKind::KvfreeHeadedNice => {
                Box::new(KvfreeHeaded::reclaim_nice(ReclaimAffinity::Anywhere))
            }
            SchemeKind::KvfreeHeadedAffineNice => {
                Box::new(KvfreeHeaded::reclaim_nice(ReclaimAffinity::FillingCpu))
            }
            SchemeKind::KvfreeLocal => Box::new(KvfreeLocal::new(LocalFreeing::Worker)),
            SchemeKind::KvfreeLocalReclaim => Box::new(KvfreeLocal::new(LocalFreeing::ThisThread)),
            SchemeKind::KvfreeHeadless => Box::new(KvfreeHeadless::new()),
            SchemeKind::CallRcu => Box::new(CallRcu::new()),
            SchemeKind::CrossbeamEpoch => Box::new(Epoch::new()),
            #[cfg(feature = "liburcu")]
            SchemeKind::Liburcu => Box::new(Urcu::new()),
            SchemeKind::Floor => Box::new(Floor::new()),
            SchemeKind::Direct => Box::new(Direct::new()),
        }
    }

    /// One line saying what the scheme does (for the docs and `--help`).
    pub fn describe(self) -> &'static str {
        match self {
            SchemeKind::KvfreeHeaded => {
                "kvfree_rcu(ptr): record in this CPU's page (swap + store), worker frees after a GP"
            }
            SchemeKind::KvfreeHeadedAffine => {
                "the same, the worker and helpers freeing each page on the CPU that filled it"
            }
            SchemeKind::KvfreeHeadedNice => {
                "the same, the worker and helpers at nice -5 (about 3x a producer's CPU weight)"
            }
            SchemeKind::KvfreeHeadedAffineNice => {
                "the same, both: freeing on the filling CPU, at nice -5"
            }
            SchemeKind::KvfreeLocal => {
                "LocalRetirer::kvfree_rcu(ptr): the thread's own page, plain stores, no locked instruction"
            }
            SchemeKind::KvfreeLocalReclaim => {
                "the same, plus LocalRetirer::reclaim() every 256 calls: expired objects freed on the retiring thread"
            }
            SchemeKind::KvfreeHeadless => {
                "try_kvfree_rcu(ptr), on Err kvfree_rcu_mightsleep: same pages, no head"
            }
            SchemeKind::CallRcu => {
                "Box<dyn FnOnce> + Box<Node> per call, Treiber push, worker waits a GP and runs them"
            }
            SchemeKind::CrossbeamEpoch => "crossbeam_epoch::pin() + defer_destroy per call",
            #[cfg(feature = "liburcu")]
            SchemeKind::Liburcu => "liburcu urcu_memb_call_rcu on the object's embedded rcu_head",
            SchemeKind::Floor => {
                "push the pointer into a thread-local ArrayVec (freed in untimed batches)"
            }
            SchemeKind::Direct => "drop the Box at once (no grace period)",
        }
    }
}

/// Something to do with each scheme, by its concrete type (so retire calls
/// are direct calls, as in a user's program).
pub trait SchemeVisitor {
    /// Called once per scheme, with a fresh instance.
    fn visit<S: Scheme>(&mut self, scheme: &S);
}

impl SchemeKind {
    /// Calls `visitor` with a fresh instance of this scheme, by its
    /// concrete type.
    pub fn visit(self, visitor: &mut impl SchemeVisitor) {
        match self {
            SchemeKind::KvfreeHeaded => visitor.visit(&KvfreeHeaded::new()),
            SchemeKind::KvfreeHeadedAffine => visitor.visit(&KvfreeHeaded::filling_cpu()),
            SchemeKind::KvfreeHeadedNice => {
                visitor.visit(&KvfreeHeaded::reclaim_nice(ReclaimAffinity::Anywhere))
            }
            SchemeKind::KvfreeHeadedAffineNice => {
                visitor.visit(&KvfreeHeaded::reclaim_nice(ReclaimAffinity::FillingCpu))
            }
            SchemeKind::KvfreeLocal => visitor.visit(&KvfreeLocal::new(LocalFreeing::Worker)),
            SchemeKind::KvfreeLocalReclaim => {
                visitor.visit(&KvfreeLocal::new(LocalFreeing::ThisThread))
            }
            SchemeKind::KvfreeHeadless => visitor.visit(&KvfreeHeadless::new()),
            SchemeKind::CallRcu => visitor.visit(&CallRcu::new()),
            SchemeKind::CrossbeamEpoch => visitor.visit(&Epoch::new()),
            #[cfg(feature = "liburcu")]
            SchemeKind::Liburcu => visitor.visit(&Urcu::new()),
            SchemeKind::Floor => visitor.visit(&Floor::new()),
            SchemeKind::Direct => visitor.visit(&Direct::new()),
        }
    }
}

/// Calls `visitor` with a fresh instance of every scheme, in table order;
/// a scheme this system cannot run is named on stderr, with why, and left
/// out.
pub fn visit_all(visitor: &mut impl SchemeVisitor) {
    for kind in SchemeKind::all() {
        match kind.unavailable() {
            None => kind.visit(visitor),
            Some(why) => eprintln!("{}: not run here: {why}", kind.cli_name()),
        }
    }
}
