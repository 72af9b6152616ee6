//! Runs a forward pass on rayon's pool with every other worker kept awake until it ends.
//!
//! A pass is hundreds of short kernels (a decode step of one sequence spends tens of
//! microseconds in each) with serial work between them: norms, RoPE, small attention. Two
//! hand-offs made those steps slow:
//!
//! - called from outside the pool (the engine's own thread), every kernel was handed to the pool
//!   while the caller slept, then woke it; so the pass runs on a worker, where kernels fork from
//!   inside the pool and the forking worker takes its share;
//! - an idle worker sleeps after a few dozen rounds of looking for work, and waking it costs as
//!   much as a small kernel; so while the pass runs, each other worker runs a job that keeps
//!   taking work from the pool (`rayon::yield_now`) and spins briefly when there is none, as
//!   llama.cpp's threads do between graph nodes.
//!
//! Which thread computes what never changes a result (see the kernels' module docs).

use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `pass` on a worker of rayon's global pool and returns its result.
pub(crate) fn run_pass<R: Send>(pass: impl FnOnce() -> R + Send) -> R {
    let done = AtomicBool::new(false);
    let done = &done;
    rayon::scope(|s| {
        let owner = rayon::current_thread_index();
        for _ in 1..rayon::current_num_threads() {
            s.spawn(move |_| keep_busy(done, owner));
        }
        // Set on return and on unwinding alike, or the scope would wait forever for the
        // workers it keeps busy.
        let _finish = Finish(done);
        pass()
    })
}

/// Takes work from the pool until `done`; returns at once on the thread running the pass
/// itself (which may pick this job up while it waits inside a kernel).
fn keep_busy(done: &AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner {
        return;
    }
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
    }
}

struct Finish<'a>(&'a AtomicBool);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn a_pass_returns_its_result_and_uses_the_pool() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let sum: u64 = pool.install(|| run_pass(|| (0..10_000u64).into_par_iter().map(|v| v * v).sum()));
        assert_eq!(sum, (0..10_000u64).map(|v| v * v).sum::<u64>());
        // From outside any pool, the pass runs on a worker of the global one.
        assert!(run_pass(rayon::current_thread_index).is_some());
    }

    #[test]
    fn a_panicking_pass_releases_the_workers() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.install(|| run_pass(|| panic!("inside the pass")))));
        assert!(result.is_err());
        // The pool still works: no worker is stuck keeping busy.
        assert_eq!(pool.install(|| run_pass(|| 7)), 7);
    }
}
