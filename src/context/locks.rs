//! `RawSpinLock<T>`: a lock that spins and never sleeps, and `SpinLock<T>`,
//! which sleeps under the `rt` feature as `spinlock_t` does under PREEMPT_RT.
//!
//! Holding a `RawSpinLock` is *atomic context*: the holder must not sleep or
//! allocate, which is exactly the context `kvfree_rcu()` exists to serve.
//! The lock tells the context checker ([`crate::context`]) it is held
//! *before* it starts spinning (the kernel disables preemption before it
//! spins), so a violation is caught even when the lock is uncontended.
//!
//! `SpinLock<T>` models the kernel's `spinlock_t`: it spins by default, and
//! with the `rt` feature it is a sleeping lock (a `std` mutex). Either way the
//! checker reports taking it while a *raw* spinlock is held, as lockdep's
//! raw-lock-nesting check does ("Invalid wait context"), because on an RT
//! kernel that nesting sleeps inside atomic context. A `SpinLock` inside a
//! `SpinLock` is fine in both settings (lockdep allows `spinlock_t` in
//! `spinlock_t`): the spinning `SpinLock` is tracked as its own lock class
//! ([`LockClass::Spin`]), atomic context but not a raw lock.

use super::{LockClass, Sleepable, Violation};
use crate::context;
use crate::sync::{AtomicBool, Ordering, UnsafeCell, spin_loop};
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

/// A spinning mutual-exclusion lock whose critical section is atomic context.
///
/// ```
/// use kvfree_rcu::RawSpinLock;
/// let lock = RawSpinLock::new(vec![1, 2]);
/// {
///     let mut guard = lock.lock();
///     guard[0] = 10; // no allocation, no sleeping in here
/// }
/// assert_eq!(lock.lock()[0], 10);
/// ```
pub struct RawSpinLock<T> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `T` to one thread at a time, so it is
// Sync when `T` may be sent between threads (the same bound as std's Mutex).
unsafe impl<T: Send> Sync for RawSpinLock<T> {}
// SAFETY: moving the lock moves the `T` it owns.
unsafe impl<T: Send> Send for RawSpinLock<T> {}

impl<T> RawSpinLock<T> {
    /// A new unlocked lock holding `value`.
    ///
    /// ```
    /// use kvfree_rcu::RawSpinLock;
    /// static COUNTER: RawSpinLock<u64> = RawSpinLock::new(0);
    /// *COUNTER.lock() += 1;
    /// assert_eq!(*COUNTER.lock(), 1);
    /// ```
    #[cfg(not(kvfree_loom))]
    pub const fn new(value: T) -> Self {
        RawSpinLock {
            locked: AtomicBool::new(false),
            data: UnsafeCell::new(value),
        }
    }

    /// A new unlocked lock holding `value`.
    #[cfg(kvfree_loom)]
    pub fn new(value: T) -> Self {
        RawSpinLock {
            locked: AtomicBool::new(false),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock, returning the data.
    ///
    /// ```
    /// use kvfree_rcu::RawSpinLock;
    /// let lock = RawSpinLock::new(String::from("data"));
    /// assert_eq!(lock.into_inner(), "data");
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T> RawSpinLock<T> {
    /// Spins until the lock is free, then takes it. The thread is in atomic
    /// context from the call until the guard is dropped.
    ///
    /// ```
    /// use kvfree_rcu::RawSpinLock;
    /// let lock = RawSpinLock::new([0u32; 4]);
    /// let mut guard = lock.lock(); // atomic context until `guard` drops
    /// guard[1] = 5;
    /// drop(guard);
    /// assert_eq!(lock.lock()[1], 5);
    /// ```
    #[inline]
    pub fn lock(&self) -> RawSpinLockGuard<'_, T> {
        self.lock_as(LockClass::Raw)
    }

    /// `lock`, telling the checker which kernel lock this one stands for.
    #[inline]
    fn lock_as(&self, class: LockClass) -> RawSpinLockGuard<'_, T> {
        context::lock_acquired(class);
        loop {
            // Acquire: pairs with the Release store in `RawSpinLockGuard::drop`,
            // so the previous holder's writes to `data` are visible.
            if !self.locked.swap(true, Ordering::Acquire) {
                return RawSpinLockGuard {
                    lock: self,
                    class,
                    _not_send: PhantomData,
                };
            }
            // Test before test-and-set: spin on a shared read, not on RMWs.
            while self.locked.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
    }

    /// [`lock`](Self::lock), borrowing the caller's [`Sleepable`] token for
    /// as long as the guard lives, so that calls which need the token (and
    /// may sleep) fail to compile inside the critical section.
    ///
    /// ```
    /// use kvfree_rcu::{RawSpinLock, context::Sleepable};
    /// let lock = RawSpinLock::new(0u32);
    /// let mut ctx = Sleepable::new();
    /// *lock.lock_with_token(&mut ctx) += 1; // `ctx` is unusable while the guard lives
    /// assert_eq!(*lock.lock(), 1);
    /// ```
    #[inline]
    pub fn lock_with_token<'a>(&'a self, _ctx: &'a mut Sleepable) -> RawSpinLockGuard<'a, T> {
        self.lock()
    }

    /// Takes the lock if it is free.
    ///
    /// ```
    /// use kvfree_rcu::RawSpinLock;
    /// let lock = RawSpinLock::new(0);
    /// let guard = lock.try_lock().expect("the lock is free");
    /// assert!(lock.try_lock().is_none()); // held
    /// drop(guard);
    /// assert!(lock.try_lock().is_some());
    /// ```
    #[inline]
    pub fn try_lock(&self) -> Option<RawSpinLockGuard<'_, T>> {
        // Acquire: as in `lock`.
        if self.locked.swap(true, Ordering::Acquire) {
            return None;
        }
        context::lock_acquired(LockClass::Raw);
        Some(RawSpinLockGuard {
            lock: self,
            class: LockClass::Raw,
            _not_send: PhantomData,
        })
    }

    /// Whether some thread holds the lock (a racy snapshot).
    ///
    /// ```
    /// use kvfree_rcu::RawSpinLock;
    /// let lock = RawSpinLock::new(());
    /// let guard = lock.lock();
    /// assert!(lock.is_locked());
    /// drop(guard);
    /// assert!(!lock.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    /// Mutable access without locking: `&mut self` proves exclusivity.
    ///
    /// ```
    /// use kvfree_rcu::RawSpinLock;
    /// let mut lock = RawSpinLock::new(1);
    /// *lock.get_mut() += 1; // no locking: we own the lock
    /// assert_eq!(lock.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` guarantees no guard exists.
        self.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: Default> Default for RawSpinLock<T> {
    fn default() -> Self {
        RawSpinLock::new(T::default())
    }
}

impl<T> fmt::Debug for RawSpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSpinLock")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Proof that a [`RawSpinLock`] is held; the lock is released on drop.
/// `!Send`: a raw spinlock is released by the thread that took it.
///
/// ```
/// use kvfree_rcu::{RawSpinLock, RawSpinLockGuard};
/// let lock = RawSpinLock::new(vec![1]);
/// let guard: RawSpinLockGuard<'_, Vec<i32>> = lock.lock();
/// assert_eq!(guard.len(), 1); // derefs to the data
/// drop(guard); // unlocks
/// ```
#[must_use = "the lock is released when the guard is dropped"]
pub struct RawSpinLockGuard<'a, T> {
    lock: &'a RawSpinLock<T>,
    class: LockClass,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard only shares `&T`.
unsafe impl<T: Sync> Sync for RawSpinLockGuard<'_, T> {}

impl<T> Deref for RawSpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the lock, so no other
        // reference to `data` is live; the borrow is tied to the guard.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T> DerefMut for RawSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T> Drop for RawSpinLockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: pairs with the Acquire swap in `lock`/`try_lock`.
        self.lock.locked.store(false, Ordering::Release);
        context::lock_released(self.class);
    }
}

/// The kernel's `spinlock_t`: spins by default; with the `rt` feature it
/// sleeps (a `std` mutex), as under PREEMPT_RT. Taking it while a
/// [`RawSpinLock`] is held is reported as
/// [`Violation::InvalidWaitContext`] in checked builds, in both
/// configurations, as lockdep's raw-lock-nesting check does.
///
/// ```
/// use kvfree_rcu::SpinLock;
/// let lock = SpinLock::new(0u32);
/// *lock.lock() += 1;
/// assert_eq!(*lock.lock(), 1);
/// ```
pub struct SpinLock<T> {
    #[cfg(not(feature = "rt"))]
    inner: RawSpinLock<T>,
    #[cfg(feature = "rt")]
    inner: std::sync::Mutex<T>,
}

/// Guard of a [`SpinLock`].
///
/// ```
/// use kvfree_rcu::{SpinLock, SpinLockGuard};
/// let lock = SpinLock::new(3);
/// let guard: SpinLockGuard<'_, i32> = lock.lock();
/// assert_eq!(*guard, 3);
/// ```
#[cfg(not(feature = "rt"))]
pub type SpinLockGuard<'a, T> = RawSpinLockGuard<'a, T>;
/// Guard of a [`SpinLock`].
///
/// ```
/// use kvfree_rcu::{SpinLock, SpinLockGuard};
/// let lock = SpinLock::new(3);
/// let guard: SpinLockGuard<'_, i32> = lock.lock();
/// assert_eq!(*guard, 3);
/// ```
#[cfg(feature = "rt")]
pub type SpinLockGuard<'a, T> = std::sync::MutexGuard<'a, T>;

impl<T> SpinLock<T> {
    /// A new unlocked lock holding `value`.
    ///
    /// ```
    /// use kvfree_rcu::SpinLock;
    /// let lock = SpinLock::new(Vec::<u32>::new());
    /// lock.lock().push(1); // ordinary context: may allocate (and sleep with `rt`)
    /// assert_eq!(lock.lock().len(), 1);
    /// ```
    pub fn new(value: T) -> Self {
        #[cfg(not(feature = "rt"))]
        return SpinLock {
            inner: RawSpinLock::new(value),
        };
        #[cfg(feature = "rt")]
        return SpinLock {
            inner: std::sync::Mutex::new(value),
        };
    }

    /// Takes the lock (spinning, or sleeping with `rt`).
    ///
    /// ```
    /// use kvfree_rcu::SpinLock;
    /// let lock = SpinLock::new(0);
    /// *lock.lock() += 1;
    /// assert_eq!(*lock.lock(), 1);
    /// ```
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        // Only a raw lock makes this an invalid wait context: a spinning
        // `SpinLock` held outside counts as `LockClass::Spin`, not as raw.
        if context::raw_locks_held() > 0 {
            context::report(Violation::InvalidWaitContext);
        }
        #[cfg(not(feature = "rt"))]
        return self.inner.lock_as(LockClass::Spin);
        #[cfg(feature = "rt")]
        return self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

impl<T> fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinLock").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::context::{CHECKS, in_atomic, thread_violations};

    #[test]
    fn raw_lock_is_atomic_context_while_held() {
        let lock = RawSpinLock::new(1);
        {
            let g = lock.lock();
            assert_eq!(*g, 1);
            assert_eq!(in_atomic(), CHECKS);
            assert!(lock.try_lock().is_none());
        }
        assert!(!in_atomic());
        assert!(lock.try_lock().is_some());
        assert!(!in_atomic());
    }

    #[test]
    fn spin_lock_under_raw_lock_is_invalid_wait_context() {
        let raw = RawSpinLock::new(());
        let sleeping = SpinLock::new(());
        let before = thread_violations();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = raw.lock();
            let _s = sleeping.lock();
        }));
        assert_eq!(r.is_err(), CHECKS);
        assert_eq!(thread_violations() - before, u64::from(CHECKS));
        assert!(!raw.is_locked(), "the raw guard unwound");
    }

    #[test]
    fn spin_lock_inside_spin_lock_is_not_reported() {
        let outer = SpinLock::new(());
        let inner = SpinLock::new(());
        let before = thread_violations();
        {
            let _o = outer.lock();
            // Without `rt` a spinning lock is atomic context, but not raw.
            assert_eq!(in_atomic(), CHECKS && cfg!(not(feature = "rt")));
            let _i = inner.lock();
        }
        assert_eq!(thread_violations(), before);
        assert!(!in_atomic());
    }

    #[test]
    fn raw_lock_inside_spin_lock_is_not_reported() {
        let outer = SpinLock::new(());
        let raw = RawSpinLock::new(());
        let before = thread_violations();
        {
            let _o = outer.lock();
            let _r = raw.lock();
            assert_eq!(crate::context::raw_locks_held(), u32::from(CHECKS));
        }
        assert_eq!(thread_violations(), before);
        assert!(!in_atomic());
    }

    #[test]
    fn contended_lock_counts_correctly() {
        let lock = std::sync::Arc::new(RawSpinLock::new(0u64));
        let threads = if cfg!(miri) { 2 } else { 4 };
        let per = if cfg!(miri) { 50 } else { 20_000 };
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..per {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*lock.lock(), threads * per);
    }
}
