//! The RCU-protected table: `slots` elements of each object type, each an
//! `AtomicPtr` that updaters swap (`AcqRel`) and readers load (`Acquire`)
//! inside a read-side critical section. Every element is a live object: an
//! updater retires only the object it swapped out.

use super::objects::{Custom, Large, Medium, Object, Small, TypeCounts};
use std::sync::atomic::AtomicPtr;

pub struct Table {
    pub small: Vec<AtomicPtr<Small>>,
    pub medium: Vec<AtomicPtr<Medium>>,
    pub large: Vec<AtomicPtr<Large>>,
    pub custom: Vec<AtomicPtr<Custom>>,
}

impl Table {
    /// `slots` fresh objects of each type, ids `1..=4 * slots` (updaters
    /// number theirs from `1 << 32` up).
    pub fn new(slots: usize, counts: &TypeCounts) -> Table {
        let mut id = 0;
        let mut next = || {
            id += 1;
            id
        };
        Table {
            small: (0..slots)
                .map(|_| AtomicPtr::new(Small::boxed(next(), counts.small)))
                .collect(),
            medium: (0..slots)
                .map(|_| AtomicPtr::new(Medium::boxed(next(), counts.medium)))
                .collect(),
            large: (0..slots)
                .map(|_| AtomicPtr::new(Large::boxed(next(), counts.large)))
                .collect(),
            custom: (0..slots)
                .map(|_| AtomicPtr::new(Custom::boxed(next(), counts.custom)))
                .collect(),
        }
    }

    /// Elements per type.
    pub fn slots(&self) -> usize {
        self.small.len()
    }

    /// Frees the elements still linked at the end of a run. Taking the
    /// table by value is the argument: nobody else can reach it, so no
    /// reader remains, and none of its elements was ever retired.
    pub fn free_linked(self) {
        free_all(self.small);
        free_all(self.medium);
        free_all(self.large);
        free_all(self.custom);
    }
}

fn free_all<T: Object>(elements: Vec<AtomicPtr<T>>) {
    for p in elements {
        // SAFETY: a linked element, from `Box::into_raw`, never retired;
        // `free_linked` owns the table, so no reader can still see it.
        drop(unsafe { Box::from_raw(p.into_inner()) });
    }
}
