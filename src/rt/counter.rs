//! A 64-bit event counter that works on every target std supports.
//!
//! `AtomicU64` does not exist where the hardware has no 64-bit atomics (ARMv5TE, MIPS32,
//! PowerPC32). There the counter is a `Mutex<u64>`: the server touches its counters from one
//! thread, so the lock is never contended, and the value never wraps at 2^32 the way an
//! `AtomicU32` would.

#[cfg(target_has_atomic = "64")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[derive(Debug, Default)]
    pub(crate) struct Counter(AtomicU64);

    impl Counter {
        pub(crate) const fn new(value: u64) -> Self {
            Self(AtomicU64::new(value))
        }

        /// Adds `n` and returns the previous value.
        pub(crate) fn add(&self, n: u64) -> u64 {
            self.0.fetch_add(n, Relaxed)
        }

        /// Subtracts `n` and returns the previous value.
        pub(crate) fn sub(&self, n: u64) -> u64 {
            self.0.fetch_sub(n, Relaxed)
        }

        pub(crate) fn get(&self) -> u64 {
            self.0.load(Relaxed)
        }
    }
}

#[cfg(not(target_has_atomic = "64"))]
mod imp {
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    pub(crate) struct Counter(Mutex<u64>);

    impl Counter {
        pub(crate) const fn new(value: u64) -> Self {
            Self(Mutex::new(value))
        }

        fn update(&self, f: impl FnOnce(u64) -> u64) -> u64 {
            let mut value = crate::rt::sync::lock(&self.0);
            let previous = *value;
            *value = f(previous);
            previous
        }

        /// Adds `n` and returns the previous value.
        pub(crate) fn add(&self, n: u64) -> u64 {
            self.update(|v| v.wrapping_add(n))
        }

        /// Subtracts `n` and returns the previous value.
        pub(crate) fn sub(&self, n: u64) -> u64 {
            self.update(|v| v.wrapping_sub(n))
        }

        pub(crate) fn get(&self) -> u64 {
            *crate::rt::sync::lock(&self.0)
        }
    }
}

pub(crate) use imp::Counter;

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn counts_past_32_bits() {
        let c = Counter::new(u64::from(u32::MAX));
        assert_eq!(c.add(2), u64::from(u32::MAX));
        assert_eq!(c.get(), u64::from(u32::MAX) + 2);
        assert_eq!(c.sub(1), u64::from(u32::MAX) + 2);
        assert_eq!(c.get(), u64::from(u32::MAX) + 1);
    }
}
