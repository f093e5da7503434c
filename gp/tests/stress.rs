//! rcutorture-style stress: many readers (more threads than cores) traverse
//! an RCU-protected pointer while an updater swaps in new objects and poisons
//! then frees the old ones after a grace period. Any reader seeing poison
//! fails the test. Bounded by iteration counts, not time.

use kvfree_rcu_gp::Rcu;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

const ALIVE: u64 = 0xA11C_E000_0000_0000;
const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;
const READERS: usize = 7;
const UPDATES: u64 = 400;

struct Object {
    state: AtomicU64,
    generation: u64,
}

/// A cheap per-thread xorshift for random short delays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn delay(rng: &mut Rng) {
    match rng.next() % 16 {
        0 => std::thread::yield_now(),
        1..=4 => (0..rng.next() % 64).for_each(|_| std::hint::spin_loop()),
        _ => {}
    }
}

enum Wait {
    Synchronize,
    Polled,
}

fn torture(wait: Wait) {
    let rcu = Rcu::with_capacity(READERS + 2);
    let new_object = |generation| {
        Box::into_raw(Box::new(Object {
            state: AtomicU64::new(ALIVE),
            generation,
        }))
    };
    let shared = AtomicPtr::new(new_object(0));
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    // Readers that have finished their first read: the updater starts only
    // once every reader has, so that the updates race readers. (With the
    // polled API the updater never blocks, and on 2 CPUs it could finish
    // all its updates before a reader was scheduled at all.)
    let reading = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for id in 0..READERS {
            let (rcu, shared, stop, reads, reading) = (&rcu, &shared, &stop, &reads, &reading);
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1));
                let mut last_generation = 0;
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let _guard = rcu.read_lock();
                    let object = shared.load(Ordering::Acquire);
                    delay(&mut rng);
                    // SAFETY: freed only after a grace period that began after
                    // the unlink; this guard keeps that from ending.
                    let object = unsafe { &*object };
                    assert_eq!(
                        object.state.load(Ordering::Relaxed),
                        ALIVE,
                        "reader saw poison"
                    );
                    assert!(
                        object.generation >= last_generation,
                        "generations go forward"
                    );
                    last_generation = object.generation;
                    if rng.next() % 4 == 0 {
                        let _nested = rcu.read_lock();
                        delay(&mut rng);
                        assert_eq!(
                            object.state.load(Ordering::Relaxed),
                            ALIVE,
                            "reader saw poison"
                        );
                    }
                    delay(&mut rng);
                    assert_eq!(
                        object.state.load(Ordering::Relaxed),
                        ALIVE,
                        "reader saw poison"
                    );
                    n += 1;
                    if n == 1 {
                        // Relaxed: a count the updater only waits on.
                        reading.fetch_add(1, Ordering::Relaxed);
                    }
                }
                reads.fetch_add(n, Ordering::Relaxed);
            });
        }
        while reading.load(Ordering::Relaxed) < READERS {
            std::thread::yield_now();
        }
        let mut pending = Vec::new();
        for generation in 1..=UPDATES {
            let old = shared.swap(new_object(generation), Ordering::AcqRel);
            match wait {
                Wait::Synchronize => {
                    rcu.synchronize();
                    poison_and_free(old);
                }
                Wait::Polled => {
                    pending.push((rcu.start_poll(), old));
                    rcu.advance();
                    pending.retain(|&(state, old)| {
                        let expired = rcu.poll_state(state);
                        if expired {
                            poison_and_free(old);
                        }
                        !expired
                    });
                    if generation % 8 == 0 {
                        std::thread::yield_now();
                    }
                }
            }
        }
        for (state, old) in pending {
            while !rcu.poll_state(state) {
                if !rcu.advance() {
                    std::thread::yield_now();
                }
            }
            poison_and_free(old);
        }
        stop.store(true, Ordering::Release);
    });
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert!(rcu.grace_periods() > 0);
    poison_and_free(shared.load(Ordering::Relaxed));
}

fn poison_and_free(object: *mut Object) {
    // SAFETY: unlinked and past its grace period (or, at the end, no reader
    // is left), so we are its only user.
    let object = unsafe { Box::from_raw(object) };
    object.state.store(POISON, Ordering::Relaxed);
    // Give a reader that wrongly still holds it a chance to see the poison.
    std::thread::yield_now();
    drop(object);
}

#[test]
fn readers_never_see_poison_with_synchronize() {
    torture(Wait::Synchronize);
}

#[test]
fn readers_never_see_poison_with_the_polled_api() {
    torture(Wait::Polled);
}
