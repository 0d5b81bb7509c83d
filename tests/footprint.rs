//! What a connection holds at rest, counted by the allocator: hundreds of idle connections
//! (each upgraded and echoed once) on an in-process server, the server thread's live heap
//! bytes and allocations per connection, by allocation size, printed with the sizes of the
//! structures a connection is made of (`cargo test --test footprint -- --nocapture`).
//!
//! Its own test binary: the global allocator counts for the whole process.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

use common::*;
use nestforge_edge::prelude::*;

struct Counting;

/// Live bytes and live allocations of server threads.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_ALLOCS: AtomicIsize = AtomicIsize::new(0);
/// Live allocations of server threads by size: index `size / 8` up to 4 KiB, the last
/// bucket for larger ones.
const BUCKETS: usize = 513;
static BY_SIZE: [AtomicIsize; BUCKETS] = [const { AtomicIsize::new(0) }; BUCKETS];
static TOTAL_ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn bucket(size: usize) -> usize {
    (size.div_ceil(8)).min(BUCKETS - 1)
}

fn track(layout: Layout, sign: isize) {
    if SERVER_THREAD.try_with(Cell::get).unwrap_or(false) {
        LIVE_BYTES.fetch_add(sign * layout.size() as isize, Relaxed);
        LIVE_ALLOCS.fetch_add(sign, Relaxed);
        BY_SIZE[bucket(layout.size())].fetch_add(sign, Relaxed);
        if sign > 0 {
            TOTAL_ALLOCS.fetch_add(1, Relaxed);
        }
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting beside it touches only atomics and a
// const-initialised thread-local `Cell<bool>`, which neither allocate nor unwind.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout, 1);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        track(layout, 1);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(layout, -1);
        track(
            Layout::from_size_align(new_size, layout.align()).unwrap(),
            1,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(layout, -1);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The live-heap state of the server threads.
#[derive(Clone)]
struct Snapshot {
    bytes: isize,
    allocs: isize,
    by_size: Vec<isize>,
}

fn snapshot() -> Snapshot {
    Snapshot {
        bytes: LIVE_BYTES.load(Relaxed),
        allocs: LIVE_ALLOCS.load(Relaxed),
        by_size: BY_SIZE.iter().map(|b| b.load(Relaxed)).collect(),
    }
}

const CONNECTIONS: usize = 400;

module! { struct EchoModule {} }

/// Opens `CONNECTIONS` connections, each echoing once; the live heap per connection.
fn footprint(config: WebSocketConfig) -> (f64, f64, Vec<(usize, f64)>) {
    let server = NestForgeFactory::<EchoModule>::create()
        .unwrap()
        .with_websocket_gateway_config(Echo, config)
        .with_server_config(ServerConfig::default().max_connections(CONNECTIONS * 2))
        .into_server()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = server.shutdown_handle();
    let thread = std::thread::spawn(move || {
        SERVER_THREAD.with(|s| s.set(true));
        nestforge_edge::block_on(server.serve(listener)).unwrap();
    });
    let echo = |client: &mut TcpStream| {
        client.write_all(&frame(true, 2, b"ping")).unwrap();
        assert_eq!(read_frame(client).unwrap(), (2, b"ping".to_vec()));
    };
    // Warm up: thread-local buffers and tables are made by the first connections.
    let mut warm: Vec<TcpStream> = (0..8).map(|_| raw_upgrade(addr, "/ws")).collect();
    warm.iter_mut().for_each(echo);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before = snapshot();
    let mut clients: Vec<TcpStream> = (0..CONNECTIONS).map(|_| raw_upgrade(addr, "/ws")).collect();
    clients.iter_mut().for_each(echo);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let after = snapshot();
    handle.shutdown();
    drop(clients);
    drop(warm);
    thread.join().unwrap();
    let n = CONNECTIONS as f64;
    let sizes = (0..BUCKETS)
        .filter_map(|i| {
            let count = after.by_size[i] - before.by_size[i];
            (count != 0).then_some((i * 8, count as f64 / n))
        })
        .collect();
    (
        (after.bytes - before.bytes) as f64 / n,
        (after.allocs - before.allocs) as f64 / n,
        sizes,
    )
}

#[test]
fn a_connection_at_rest_holds_a_bounded_heap() {
    let (bytes, allocs, sizes) = footprint(WebSocketConfig::default());
    println!("per idle connection (echoed once): {bytes:.0} bytes in {allocs:.2} allocations");
    println!("  allocations by size (bytes rounded up to 8: allocations per connection):");
    for (size, count) in &sizes {
        if count.abs() >= 0.01 {
            println!("    {size:>5}: {count:.2}");
        }
    }
    for (part, size) in nestforge_edge::__private::connection_parts() {
        println!("  {part}: {size} bytes");
    }
    assert!(bytes < 4096.0, "{bytes} bytes per idle connection");
}
