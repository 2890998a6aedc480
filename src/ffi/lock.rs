//! A mutex that survives a non-local exit. A C caller may leave a library call without returning
//! (a PostgreSQL handler raises an ERROR with longjmp, palloc does on OOM), skipping the guard's
//! drop. The lock remembers its owner thread and process: the same thread coming back takes the
//! lock over instead of deadlocking on itself, and a child process after fork() takes over a lock
//! that a parent thread held at the moment of the fork.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::lock_api::RawMutex as _;
use parking_lot::RawMutex;

pub struct OwnerLock {
    raw: RawMutex,
    /// `thread token << 32 | pid` of the holder, 0 when free.
    owner: AtomicU64,
}

pub struct OwnerGuard<'a> {
    lock: &'a OwnerLock,
    me: u64,
}

fn me() -> u64 {
    thread_local! {
        static TOKEN: Cell<u64> = const { Cell::new(0) };
    }
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let token = TOKEN.with(|t| {
        if t.get() == 0 {
            t.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    });
    token << 32 | super::fork::pid() as u64
}

impl OwnerLock {
    pub const fn new() -> OwnerLock {
        OwnerLock {
            raw: RawMutex::INIT,
            owner: AtomicU64::new(0),
        }
    }

    pub fn lock(&self) -> OwnerGuard<'_> {
        let me = me();
        let owner = self.owner.load(Ordering::Acquire);
        let inherited = owner == me || (owner != 0 && owner as u32 != me as u32);
        if !inherited {
            self.raw.lock();
        }
        self.owner.store(me, Ordering::Release);
        OwnerGuard { lock: self, me }
    }
}

impl Drop for OwnerGuard<'_> {
    fn drop(&mut self) {
        // Only the current owner unlocks: a nested call that took the lock over has already
        // released it, and then this outer guard must not unlock someone else's lock.
        if self
            .lock
            .owner
            .compare_exchange(self.me, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: the owner word said this thread holds the raw mutex (taken in lock() by
            // this thread or inherited from an abandoned call of it), so it is locked.
            unsafe { self.lock.raw.unlock() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_other_threads() {
        let lock = Arc::new(OwnerLock::new());
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, counter) = (lock.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let _g = lock.lock();
                        // A non-atomic read-modify-write: lost updates would show a race.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.load(Ordering::Relaxed), 8000);
    }

    #[test]
    fn an_abandoned_guard_does_not_deadlock_its_thread() {
        let lock = Arc::new(OwnerLock::new());
        std::mem::forget(lock.lock()); // what a longjmp out of a call leaves behind
        drop(lock.lock());
        // And the lock is really free again for another thread.
        let other = lock.clone();
        std::thread::spawn(move || drop(other.lock()))
            .join()
            .unwrap();
    }
}
