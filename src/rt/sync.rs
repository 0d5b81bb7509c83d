//! The one lock helper.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, also when a panic poisoned it: every critical section in this crate leaves
/// its data consistent (plain pushes, pops, assignments).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
