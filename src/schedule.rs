//! How much work is in flight at once: one pool of slots that every phase's workers share.
//!
//! A streaming run has Phase 1 attempts and Phase 2 conversations going at the same time, each on
//! its own worker threads. What the engine should see is a fixed number of them in flight,
//! whatever the mix: so a worker holds a [`Slot`] while its job runs, and the pool hands free
//! slots to Phase 2 first. A validated blueprint's conversations then start as soon as a slot
//! frees up, and the run's first training records appear early instead of after all of Phase 1.
//! Scheduling changes only when work happens, never what it produces: every job's output is a
//! function of its indices and the seed.

use std::sync::{Condvar, Mutex};

/// Which waiting worker a freed slot goes to first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Phase 1 attempts.
    Normal,
    /// Phase 2 conversations: their blueprints are already paid for.
    High,
}

/// A fixed number of slots shared by every worker of a run.
#[derive(Debug)]
pub struct Slots {
    state: Mutex<State>,
    freed: Condvar,
    size: usize,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// High-priority workers waiting for a slot; normal ones wait while any do.
    high_waiting: usize,
}

/// A held slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot<'a> {
    slots: &'a Slots,
}

impl Slots {
    /// `size` slots (at least one).
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        Self { state: Mutex::new(State { free: size, high_waiting: 0 }), freed: Condvar::new(), size }
    }

    /// How many jobs may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Waits for a free slot. A poisoned lock (a worker panicked while holding it) still hands
    /// out slots: the counters it guards stay consistent, since no code panics between updates.
    pub fn acquire(&self, priority: Priority) -> Slot<'_> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if priority == Priority::High {
            state.high_waiting += 1;
        }
        loop {
            let blocked = state.free == 0 || (priority == Priority::Normal && state.high_waiting > 0);
            if !blocked {
                break;
            }
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if priority == Priority::High {
            state.high_waiting -= 1;
        }
        state.free -= 1;
        Slot { slots: self }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.state.lock().unwrap_or_else(|e| e.into_inner());
        state.free += 1;
        drop(state);
        self.slots.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn never_more_than_size_jobs_hold_a_slot() {
        let slots = Slots::new(3);
        let (running, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for i in 0..12 {
                let (slots, running, peak) = (&slots, &running, &peak);
                s.spawn(move || {
                    let _slot = slots.acquire(if i % 2 == 0 { Priority::High } else { Priority::Normal });
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(slots.state.lock().unwrap().free, 3, "every slot came back");
    }

    #[test]
    fn a_freed_slot_goes_to_a_waiting_high_priority_worker_first() {
        let slots = Slots::new(1);
        let held = slots.acquire(Priority::Normal);
        let order = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| {
                let _slot = slots.acquire(Priority::Normal);
                order.lock().unwrap().push("normal");
            });
            // Let the normal worker queue up first, then the high one.
            std::thread::sleep(Duration::from_millis(30));
            s.spawn(|| {
                let _slot = slots.acquire(Priority::High);
                order.lock().unwrap().push("high");
            });
            std::thread::sleep(Duration::from_millis(30));
            drop(held);
        });
        assert_eq!(*order.lock().unwrap(), ["high", "normal"]);
    }
}
