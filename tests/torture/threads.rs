//! The run's threads: readers, updaters and the maintenance thread, all
//! released together by one barrier (the caller is its last party), and
//! joined in the order the shutdown needs: updaters first (they stop on
//! their own, or at the soak's deadline), then readers and maintenance.

use super::config::Config;
use super::shared::Shared;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::Instant;

pub struct Threads {
    go: Arc<Barrier>,
    readers: Vec<JoinHandle<()>>,
    updaters: Vec<JoinHandle<()>>,
    maintenance: JoinHandle<()>,
}

impl Threads {
    /// Spawns every thread; each waits at the barrier until [`Threads::start`].
    pub fn spawn(shared: &Arc<Shared>, config: &Config) -> Threads {
        let go = Arc::new(Barrier::new(config.readers + config.updaters + 2));
        let readers = (0..config.readers)
            .map(|r| {
                let s = shared.clone();
                spawn_at(&go, format!("reader-{r}"), move || s.reader(r as u64 + 1))
            })
            .collect();
        let limit = config.update_limit();
        let updaters = (0..config.updaters)
            .map(|u| {
                let s = shared.clone();
                spawn_at(&go, format!("updater-{u}"), move || {
                    s.updater(1000 + u as u64, limit)
                })
            })
            .collect();
        let s = shared.clone();
        let maintenance = spawn_at(&go, "maintenance".into(), move || s.maintenance(77));
        Threads {
            go,
            readers,
            updaters,
            maintenance,
        }
    }

    /// Releases every thread; returns when the run started.
    pub fn start(&self) -> Instant {
        self.go.wait();
        Instant::now()
    }

    /// True once an updater returned (or panicked) before being told to stop.
    pub fn any_updater_finished(&self) -> bool {
        self.updaters.iter().any(|h| h.is_finished())
    }

    /// Joins the updaters, then stops and joins readers and maintenance;
    /// re-raises the first panic of any of them.
    pub fn join(self, shared: &Shared) {
        let mut panic = None;
        for h in self.updaters {
            if let Err(e) = h.join() {
                panic.get_or_insert(e);
            }
        }
        shared.stop_readers.store(true, Ordering::Relaxed);
        for h in self.readers.into_iter().chain([self.maintenance]) {
            if let Err(e) = h.join() {
                panic.get_or_insert(e);
            }
        }
        if let Some(e) = panic {
            std::panic::resume_unwind(e);
        }
    }
}

/// A named thread that runs `f` once the barrier `go` opens.
fn spawn_at(go: &Arc<Barrier>, name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    let go = go.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            go.wait();
            f()
        })
        .expect("spawn")
}
