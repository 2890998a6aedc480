//! A mutex that survives a non-local exit and fork(). A C caller may leave a library call without returning
//! (a PostgreSQL handler raises an ERROR with longjmp, palloc does on OOM), skipping the guard's
//! drop. The lock remembers its owner thread and process: the same thread coming back takes the
//! lock over instead of deadlocking on itself, and a child process after fork() takes over a lock
//! that a parent thread held at the moment of the fork.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One word: 0 when free, else the holder's `thread token << 32 | pid`. No queue of waiting
/// threads is kept anywhere: after fork() the child has nothing that names a parent thread,
/// so it can never hand the lock to a thread that does not exist in it.
pub struct OwnerLock {
    owner: AtomicU64,
}

pub struct OwnerGuard<'a> {
    lock: &'a OwnerLock,
    me: u64,
}

#[inline]
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

/// Waits a little longer each time: spin, then yield, then sleep (critical sections are one
/// memcached round trip at most).
fn back_off(round: &mut u32) {
    *round += 1;
    match *round {
        0..=63 => std::hint::spin_loop(),
        64..=127 => std::thread::yield_now(),
        n => std::thread::sleep(Duration::from_micros(((n - 127) as u64 * 10).min(500))),
    }
}

impl OwnerLock {
    pub const fn new() -> OwnerLock {
        OwnerLock {
            owner: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn lock(&self) -> OwnerGuard<'_> {
        let me = me();
        let mut round = 0;
        loop {
            let current = self.owner.load(Ordering::Acquire);
            // Free; or held by this very thread (a call it left without returning, or a call
            // re-entered from a callback); or held in another process, i.e. by a parent
            // thread at the moment of fork().
            let take = current == 0 || current == me || current as u32 != me as u32;
            if take
                && self
                    .owner
                    .compare_exchange(current, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return OwnerGuard { lock: self, me };
            }
            back_off(&mut round);
        }
    }

    /// Marks the lock free, whoever holds it (the pthread_atfork child handler).
    pub fn reset(&self) {
        self.owner.store(0, Ordering::Release);
    }
}

impl Drop for OwnerGuard<'_> {
    fn drop(&mut self) {
        // Only the current owner unlocks: a nested call that took the lock over has already
        // released it, and then this outer guard must not free someone else's lock.
        let _ = self
            .lock
            .owner
            .compare_exchange(self.me, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// A value behind an [`OwnerLock`]: the library's process-wide registries and per-handle
/// fields, so that none of its locks can strand a forked child.
pub struct ForkLock<T> {
    lock: OwnerLock,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a guard, which holds the lock.
unsafe impl<T: Send> Sync for ForkLock<T> {}

pub struct ForkGuard<'a, T> {
    _guard: OwnerGuard<'a>,
    value: &'a UnsafeCell<T>,
}

impl<T> ForkLock<T> {
    pub const fn new(value: T) -> ForkLock<T> {
        ForkLock {
            lock: OwnerLock::new(),
            value: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> ForkGuard<'_, T> {
        ForkGuard {
            _guard: self.lock.lock(),
            value: &self.value,
        }
    }

    /// Takes the lock with no guard (pthread_atfork prepare); [`release`](Self::release)
    /// frees it in both processes afterwards.
    pub fn hold(&self) {
        std::mem::forget(self.lock.lock());
    }

    pub fn release(&self) {
        self.lock.reset();
    }
}

impl<T: Default> Default for ForkLock<T> {
    fn default() -> ForkLock<T> {
        ForkLock::new(T::default())
    }
}

impl<T> std::ops::Deref for ForkGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other thread reaches the value; the library
        // never nests two guards of one lock in a thread.
        unsafe { &*self.value.get() }
    }
}

impl<T> std::ops::DerefMut for ForkGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref().
        unsafe { &mut *self.value.get() }
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
