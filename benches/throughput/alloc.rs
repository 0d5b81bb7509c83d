//! Allocation counting: the global allocator is `System`, plus a count of the allocations
//! made on in-process server threads while a measurement window is open.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

struct CountingAlloc;

/// Set by the client around the measured window.
static WINDOW_OPEN: AtomicBool = AtomicBool::new(false);
/// Allocations (`alloc`, `alloc_zeroed`, `realloc`) on server threads inside the window.
static SERVER_ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set once by each server thread. Const-initialised and without a destructor, so
    /// reading it never allocates (no recursion into the allocator).
    static ON_SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as a server thread: its allocations are counted.
pub fn mark_server_thread() {
    ON_SERVER_THREAD.with(|flag| flag.set(true));
}

/// Opens the window; returns the count so far, for [`close_window`].
pub fn open_window() -> usize {
    let before = SERVER_ALLOCS.load(Relaxed);
    WINDOW_OPEN.store(true, Relaxed);
    before
}

/// Closes the window; returns the allocations made on server threads since `before`.
pub fn close_window(before: usize) -> usize {
    WINDOW_OPEN.store(false, Relaxed);
    SERVER_ALLOCS.load(Relaxed) - before
}

#[inline]
fn count_alloc() {
    if WINDOW_OPEN.load(Relaxed) && ON_SERVER_THREAD.try_with(Cell::get).unwrap_or(false) {
        SERVER_ALLOCS.fetch_add(1, Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting beside it touches only atomics and a
// const-initialised thread-local `Cell<bool>`, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;
