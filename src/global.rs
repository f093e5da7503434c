//! The process-wide service: one [`KvfreeRcu`] over [`Rcu::global`], for
//! every structure in the process, and free functions for the common calls.
//!
//! Design: a `OnceLock<KvfreeRcu>`, created by the first call to [`global`]
//! (or [`init_global`], the same call under a name that says what it does at
//! start-up) and never dropped, so every `&'static KvfreeRcu` it hands out
//! stays valid. Creating it allocates the pool's lanes and spawns the worker
//! thread: **make the first call from ordinary context** (at start-up, or
//! before the first raw spinlock). Later calls are one atomic load. The
//! first call from atomic context is reported as an allocation in atomic
//! context by the checker, and is then a real allocation, so call
//! [`init_global`] early.
//!
//! **Cost of a service.** Every service, this one included, has a worker
//! thread (a default 2 MiB stack, mostly untouched), four lanes per possible
//! CPU, each caching the high watermark (8) of 4 KiB pages at rest (up to
//! the max watermark, 256, while a flood runs it dry, past 64 only with
//! pages reclaim brought back), and a batch queue. Sharing this one across structures costs one thread and one
//! set of caches for the whole process; docs/DESIGN.md section 3b gives the
//! measured cost of one extra service (about 655 KiB of RSS and a thread).
//!
//! **Settings.** [`init_global_with`] creates the service with settings
//! of the caller's own (a [`Builder`] over [`Rcu::global`]), at start-up,
//! before anything else uses it; after that its settings stay
//! ([`GlobalInitError::AlreadyCreated`]).
//!
//! **fork().** The global service is tracked like every service
//! (`fork.rs`): in a forked child it is repaired and keeps working, at
//! first without a worker thread (the parent's does not exist in the
//! child; the new one gets the settings the service was created with).
//! Until one is started, retire calls work as before (headed
//! retires never fail; page retires fail with `Err` once the pages the
//! child inherited are used up, since nothing refills them) and the
//! ordinary calls [`barrier`], [`KvfreeRcu::run_once`] and
//! [`KvfreeRcu::shrink`] drive the work on the calling thread. The first
//! call in the child of one of the **ordinary-context** entry points of
//! this module, [`init_global`], [`barrier`], [`kvfree_rcu_mightsleep`],
//! and of [`RcuCell::new`](crate::RcuCell::new) (which allocate or wait
//! anyway), spawns a new worker for the global service, once per fork
//! generation. Apart from creating the service on the process's very first
//! call, [`global`] never spawns (it is callable from atomic context), and
//! neither do the retire calls. So a child that goes on
//! using the library calls [`init_global`] once after `fork()`, as it would
//! at start-up; a child that calls `exec` soon needs nothing.

use crate::builder::{BuildError, Builder, WorkerMode};
use crate::fork;
use crate::gp::Rcu;
use crate::head::RcuHeaded;
use crate::service::KvfreeRcu;
use crate::sync::global::AtomicU64;
use crate::worker;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

static GLOBAL: OnceLock<KvfreeRcu> = OnceLock::new();

/// The fork generation (`fork::generation`) whose process has a worker for
/// the global service: the one that created it, or a child that respawned
/// it.
static WORKER_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The worker thread's name.
const WORKER_NAME: &str = "kvfree-rcu-global";

/// What the global service's worker was started with (its name and reclaim
/// settings), for the worker a forked child starts: the defaults unless
/// [`init_global_with`] created the service. Set once, with the service.
static WORKER_SETTINGS: OnceLock<(String, crate::reclaim::Settings)> = OnceLock::new();

/// The process-wide service over [`Rcu::global`], created on the first call.
///
/// The first call allocates and spawns the worker thread, so make it from
/// ordinary context (for example [`init_global`] at start-up); every later
/// call is one atomic load and may be made from any context. Never dropped.
/// In a forked child it keeps working; [`init_global`] there starts a new
/// worker for it (module docs).
///
/// # Panics
/// On the first call, if the worker thread cannot be spawned.
///
/// ```
/// let service = kvfree_rcu::global();
/// assert!(std::ptr::eq(service, kvfree_rcu::global()));
/// assert_eq!(service.grace_period().domain_id(), kvfree_rcu::Rcu::global().domain_id());
/// ```
#[inline]
pub fn global() -> &'static KvfreeRcu {
    GLOBAL.get_or_init(|| {
        // Relaxed: only compared with this process's own generation, which
        // no other thread writes (fork.rs).
        WORKER_GENERATION.store(fork::generation(), Ordering::Relaxed);
        global_builder().build()
    })
}

/// The builder of the global service before anyone configures it: over
/// [`Rcu::global`], its worker named [`WORKER_NAME`].
fn global_builder() -> Builder<Rcu> {
    KvfreeRcu::builder(Arc::new(Rcu::global().clone())).thread_name(WORKER_NAME)
}

/// Why [`init_global_with`] did not create the process-wide service.
#[derive(Debug)]
#[non_exhaustive]
pub enum GlobalInitError {
    /// The service already exists ([`global`], [`init_global`], a free
    /// function or the safe layer created it first, or an earlier
    /// [`init_global_with`]); its settings cannot change. Configure it
    /// before anything else uses it.
    AlreadyCreated,
    /// The builder's settings are invalid, the worker could not start, or
    /// the OS refused its priority (the [`BuildError`] says which). A
    /// global service must have its worker: [`Builder::manual`] is a
    /// [`BuildError::Setting`] naming `manual`. Nothing was created; a
    /// later call may try again.
    Build(BuildError),
}

impl std::fmt::Display for GlobalInitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobalInitError::AlreadyCreated => write!(
                f,
                "kvfree-rcu: the process-wide service already exists; configure it with \
                 init_global_with before anything uses it"
            ),
            GlobalInitError::Build(e) => write!(f, "{e} (the process-wide service)"),
        }
    }
}

impl std::error::Error for GlobalInitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GlobalInitError::AlreadyCreated => None,
            GlobalInitError::Build(e) => Some(e),
        }
    }
}

/// Creates the process-wide service with settings of your own, as
/// [`init_global`] does with the defaults: `configure` gets a builder over
/// [`Rcu::global`] (worker named `kvfree-rcu-global`) and returns it set up,
/// for example with [`Builder::reclaim_priority`] or
/// [`Builder::max_reclaim_helpers`]. Call it once, at start-up, before
/// anything else uses the service. Ordinary context (it allocates, spawns
/// the worker, and with a priority waits for the worker's report).
///
/// A forked child that calls [`init_global`] gets a worker with the same
/// settings (module docs).
///
/// # Errors
/// [`GlobalInitError::AlreadyCreated`] if the service exists already (its
/// settings are left as they are), [`GlobalInitError::Build`] if the
/// settings are invalid, ask for no worker ([`Builder::manual`]), or the
/// worker cannot start with them; then nothing was created.
///
/// ```
/// use kvfree_rcu::{GlobalInitError, ReclaimPriority};
/// // At start-up, before any other use of the process-wide service.
/// match kvfree_rcu::init_global_with(|b| b.reclaim_priority(ReclaimPriority::Nice(-5))) {
///     Ok(service) => assert!(std::ptr::eq(service, kvfree_rcu::global())),
///     // Not privileged, or not Linux: say so and go on with the defaults.
///     Err(e @ GlobalInitError::Build(_)) => {
///         eprintln!("{e}");
///         kvfree_rcu::init_global();
///     }
///     Err(e) => panic!("{e}"),
/// }
/// ```
pub fn init_global_with(
    configure: impl FnOnce(Builder<Rcu>) -> Builder<Rcu>,
) -> Result<&'static KvfreeRcu, GlobalInitError> {
    if GLOBAL.get().is_some() {
        return Err(GlobalInitError::AlreadyCreated);
    }
    let builder = configure(global_builder());
    if builder.worker == WorkerMode::Manual {
        return Err(GlobalInitError::Build(BuildError::Setting(
            crate::settings::SettingError::new(
                "manual",
                "set".to_owned(),
                "the process-wide service needs its worker thread",
            ),
        )));
    }
    let settings = (builder.thread_name.clone(), builder.reclaim);
    let built = builder.try_build().map_err(GlobalInitError::Build)?;
    // Installed inside `get_or_init`, so that the worker generation and the
    // settings are stored before any other thread can see the service (it
    // waits for the closure), as in `global`.
    let mut ours = Some(built);
    let service = GLOBAL.get_or_init(|| {
        // Relaxed: as in `global`.
        WORKER_GENERATION.store(fork::generation(), Ordering::Relaxed);
        let _ = WORKER_SETTINGS.set(settings);
        ours.take().expect("the closure runs once")
    });
    match ours {
        None => Ok(service),
        // Another thread created the service first: ours is dropped (its
        // worker stopped and joined; nothing was retired through it).
        Some(_lost) => Err(GlobalInitError::AlreadyCreated),
    }
}

/// [`global`], from ordinary context: also starts a worker for it in a
/// forked child that has none yet (module docs).
pub(crate) fn global_from_ordinary_context() -> &'static KvfreeRcu {
    let service = global();
    let now = fork::generation();
    // Relaxed: the CAS only elects one spawner per generation; the worker
    // reaches the service through the `Arc` it is given.
    let had = WORKER_GENERATION.load(Ordering::Relaxed);
    if had != now
        && WORKER_GENERATION
            .compare_exchange(had, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        // The settings the service was built with: `init_global_with`'s,
        // or the defaults.
        let (name, reclaim) = WORKER_SETTINGS
            .get()
            .cloned()
            .unwrap_or_else(|| (WORKER_NAME.to_owned(), crate::reclaim::Settings::default()));
        match worker::spawn(service.shared().clone(), name, reclaim) {
            // Detached: the global service is never dropped, so its worker
            // is never stopped or joined.
            Ok(handle) => drop(handle),
            // Without a worker the service still works, driven by the
            // ordinary calls (module docs); a later call tries again.
            Err(worker::StartError::Spawn(_)) => WORKER_GENERATION.store(had, Ordering::Relaxed),
            // The parent's priority refused in the child (its RLIMIT_NICE
            // or capabilities changed): trying again would spawn and lose a
            // thread on every ordinary call, so this generation goes on
            // without a worker, driven by the ordinary calls, and says so.
            Err(worker::StartError::Priority(e)) => report_no_worker(&e),
        }
    }
    service
}

/// Says on stderr, once per refusal, that a forked child's global service
/// runs without a worker because its priority was refused.
fn report_no_worker(e: &std::io::Error) {
    let msg = format!(
        "kvfree-rcu: no worker for the process-wide service in this forked child: its \
         reclaim priority was refused ({e}); barrier() and the other ordinary calls drive \
         its work\n"
    );
    // SAFETY: `write(2)` reads `msg.len()` bytes from `msg`, which lives
    // across the call; a short or failed write only loses the message.
    #[cfg(unix)]
    let _ = unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    #[cfg(not(unix))]
    eprint!("{msg}");
}

/// Creates the process-wide service now (allocating and spawning its
/// worker), so that later calls of [`global`] and the free functions never
/// allocate. Ordinary context; idempotent. In a forked child, the first call
/// starts a worker for the inherited service (module docs): call it after
/// `fork()` as at start-up.
///
/// ```
/// kvfree_rcu::init_global(); // at start-up
/// let _guard = kvfree_rcu::Rcu::global().read_lock();
/// ```
pub fn init_global() -> &'static KvfreeRcu {
    global_from_ordinary_context()
}

/// [`KvfreeRcu::kvfree_rcu`] on the [`global`] service: retires a headed
/// object; never fails, allocates, locks or blocks (once the service
/// exists). Readers must use [`Rcu::global`]'s guards.
///
/// # Safety
/// As [`KvfreeRcu::kvfree_rcu`]:
/// 1. `ptr` comes from `Box::<T>::into_raw` or `Box::leak`.
/// 2. It is unreachable for new readers (unlinked before this call).
/// 3. It is retired once, and not used by the caller afterwards.
///
/// ```
/// use std::ptr::NonNull;
/// use kvfree_rcu::{RcuHead, impl_rcu_headed};
/// struct Node { value: u32, head: RcuHead }
/// impl_rcu_headed!(Node, head);
/// let node = NonNull::from(Box::leak(Box::new(Node { value: 1, head: RcuHead::new() })));
/// // SAFETY: (1) from Box::leak, (2) never published, (3) retired once.
/// unsafe { kvfree_rcu::kvfree_rcu(node) };
/// kvfree_rcu::barrier();
/// ```
#[inline]
pub unsafe fn kvfree_rcu<T: RcuHeaded + Send + 'static>(ptr: NonNull<T>) {
    // SAFETY: the caller's contracts 1-3 are this call's 1-3.
    unsafe { global().kvfree_rcu(ptr) }
}

/// [`KvfreeRcu::try_kvfree_rcu`] on the [`global`] service: `Err(ptr)` at
/// once when no page is available (the caller owns `ptr` again). Any
/// context.
///
/// # Safety
/// As [`KvfreeRcu::kvfree_rcu`] 1-3 (see [`kvfree_rcu()`]).
///
/// ```
/// use std::ptr::NonNull;
/// let p = NonNull::from(Box::leak(Box::new(5u64)));
/// // SAFETY: from Box::leak, never published, retired once.
/// if let Err(p) = unsafe { kvfree_rcu::try_kvfree_rcu(p) } {
///     // SAFETY: Err handed it back; ordinary context here.
///     unsafe { kvfree_rcu::kvfree_rcu_mightsleep(p) };
/// }
/// ```
#[inline]
pub unsafe fn try_kvfree_rcu<T: Send + 'static>(ptr: NonNull<T>) -> Result<(), NonNull<T>> {
    // SAFETY: the caller's contracts 1-3 are this call's 1-3.
    unsafe { global().try_kvfree_rcu(ptr) }
}

/// [`KvfreeRcu::kvfree_rcu_mightsleep`] on the [`global`] service.
/// **Ordinary context**: may wait for a grace period.
///
/// # Safety
/// As [`KvfreeRcu::kvfree_rcu`] 1-3 (see [`kvfree_rcu()`]).
///
/// ```
/// use std::ptr::NonNull;
/// let p = NonNull::from(Box::leak(Box::new(String::from("old"))));
/// // SAFETY: from Box::leak, never published, retired once.
/// unsafe { kvfree_rcu::kvfree_rcu_mightsleep(p) };
/// ```
pub unsafe fn kvfree_rcu_mightsleep<T: Send + 'static>(ptr: NonNull<T>) {
    // SAFETY: the caller's contracts 1-3 are this call's 1-3.
    unsafe { global_from_ordinary_context().kvfree_rcu_mightsleep(ptr) }
}

/// [`KvfreeRcu::barrier`] on the [`global`] service: returns once every
/// object retired through it before the call has been freed. **Ordinary
/// context**, outside read-side critical sections of [`Rcu::global`].
///
/// ```
/// kvfree_rcu::barrier();
/// ```
pub fn barrier() {
    global_from_ordinary_context().barrier();
}
