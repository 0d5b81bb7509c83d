use super::*;

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `len` bytes of request and push frames as the gateway sends them.
fn json(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 128);
    while out.len() < len {
        let n = rng.next();
        let frame = match n % 3 {
            0 => format!(
                "{{\"kind\":\"event\",\"pattern\":\"sensor.reading\",\"payload\":{{\"celsius\":{}.{},\"id\":{}}}}}",
                n % 40,
                (n >> 8) % 10,
                (n >> 16) % 100_000
            ),
            1 => format!(
                "{{\"id\":{},\"pattern\":\"app.info\",\"payload\":{{\"app_name\":\"edge-{}\",\"transport\":\"ws\"}},\"metadata\":{{\"values\":{{}}}}}}",
                (n >> 4) % 1_000_000,
                (n >> 24) % 64
            ),
            _ => format!(
                "{{\"id\":\"{:x}\",\"error\":{{\"code\":\"unknown_pattern\",\"message\":\"No message handler registered\"}}}}",
                n >> 20
            ),
        };
        out.extend_from_slice(frame.as_bytes());
    }
    out.truncate(len);
    out
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn compressed(payload: &[u8], window_bits: u8) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress(payload, window_bits, &mut out).then_some(out)
}

const SIZES: [usize; 6] = [0, 1, 100, 4 << 10, 64 << 10, 1 << 20];

#[test]
fn json_round_trips() {
    for len in SIZES {
        let payload = json(len, len as u64);
        let Some(message) = compressed(&payload, 15) else {
            // Too small to get smaller.
            assert!(len <= 1, "{len} bytes of JSON not compressed");
            continue;
        };
        assert!(message.len() < payload.len());
        assert!(!message.ends_with(&SYNC_TAIL), "the tail is removed");
        assert_eq!(inflate(&message, len).as_deref(), Ok(&payload[..]), "{len}");
        if len > 0 {
            assert_eq!(
                inflate(&message, len - 1),
                Err(InflateError::TooBig),
                "{len}"
            );
        }
    }
}

#[test]
fn random_data_is_left_uncompressed() {
    for len in SIZES {
        let payload = random(len, 7 + len as u64);
        let mut out = b"kept".to_vec();
        assert!(!compress(&payload, 15, &mut out), "{len}");
        assert_eq!(out, b"kept", "out is left as it was");
    }
    // Random bytes from a small alphabet compress, and round-trip.
    for len in SIZES.into_iter().filter(|&l| l >= 100) {
        let payload: Vec<u8> = random(len, 3).iter().map(|b| b'a' + b % 4).collect();
        let message = compressed(&payload, 15).unwrap();
        assert_eq!(inflate(&message, len).unwrap(), payload);
    }
}

#[test]
fn compressing_appends() {
    let payload = json(1000, 1);
    let mut out = b"header".to_vec();
    assert!(compress(&payload, 15, &mut out));
    assert!(out.starts_with(b"header"));
    assert_eq!(inflate(&out[6..], 1000).unwrap(), payload);
}

#[test]
fn messages_are_compressed_independently() {
    // After other messages, a message compresses to the bytes a fresh compressor makes
    // (here, on a new thread's), so it references nothing before it.
    let (a, b) = (json(50_000, 11), json(3000, 12));
    let fresh = std::thread::spawn({
        let b = b.clone();
        move || compressed(&b, 15).unwrap()
    })
    .join()
    .unwrap();
    assert!(compressed(&a, 15).is_some());
    assert!(compressed(&random(5000, 1), 15).is_none()); // aborted: the compressor is reset
    assert_eq!(compressed(&b, 15).unwrap(), fresh);
    assert_eq!(compressed(&b, 15).unwrap(), fresh);
}

#[test]
fn a_restricted_window_leaves_longer_messages_uncompressed() {
    for bits in 8..=14u8 {
        let window = 1usize << bits;
        let payload = json(window + 1, u64::from(bits));
        assert!(compressed(&payload, bits).is_none(), "{bits}");
        let fits = &payload[..window];
        let message = compressed(fits, bits).expect("a message within the window");
        assert_eq!(inflate(&message, window).unwrap(), fits);
        // The same message with no restriction.
        assert!(compressed(&payload, 15).is_some());
    }
    // 15 is the compressor's own window: no length limit.
    assert!(compressed(&json(1 << 20, 5), 15).is_some());
}

#[test]
fn rfc7692_vectors() {
    // §7.2.3.1: "Hello" in one compressed block.
    let hello: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inflate(hello, 5).unwrap(), b"Hello");
    // §7.2.3.2: the same message again, without context takeover, inflates the same.
    assert_eq!(inflate(hello, 5).unwrap(), b"Hello");
    // ... while the second message of that section, which uses the first one's window,
    // does not inflate on its own.
    let shared = [0xf2, 0x00, 0x11, 0x00, 0x00];
    assert_eq!(inflate(&shared, 100), Err(InflateError::Corrupt));
    // §7.2.3.3: a block with no compression.
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(inflate(&stored, 5).unwrap(), b"Hello");
    // §7.2.3.4: a block with BFINAL set.
    let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inflate(&last, 5).unwrap(), b"Hello");
    // What follows a final block is ignored (§7.2.1 lets a sender append an empty block
    // there).
    assert_eq!(
        inflate(&[&last[..], &[0x00]].concat(), 5).unwrap(),
        b"Hello"
    );
    // §7.2.3.5: two blocks in one message.
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(inflate(&two, 5).unwrap(), b"Hello");
    // §7.2.3.6: a message whose last fragment holds only 0x00.
    let mut fragments = vec![
        0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];
    fragments.push(0x00);
    assert_eq!(inflate(&fragments, 5).unwrap(), b"Hello");
    // §7.2.3.1 again, with a limit below its size.
    assert_eq!(inflate(hello, 4), Err(InflateError::TooBig));
}

#[test]
fn empty_messages() {
    let mut out = Vec::new();
    assert!(!compress(b"", 15, &mut out) && out.is_empty());
    // An empty block as a sync flush leaves it (§7.2.3.6), and no payload at all.
    assert_eq!(inflate(&[0x00], 0).unwrap(), b"");
    assert_eq!(inflate(&[], 0).unwrap(), b"");
    assert_eq!(inflate(&[0x03, 0x00], 0).unwrap(), b"");
}

#[test]
fn exact_limits() {
    for len in [1usize, 100, 255, 256, 257, 4096, 65_536, 100_000] {
        let payload: Vec<u8> = json(len, 9).iter().map(|b| b % 3).collect();
        let message = compressed(&payload, 15).unwrap_or_else(|| {
            // Too short to compress: a stored block, as the RFC's example.
            let mut m = vec![
                0x00,
                len as u8,
                (len >> 8) as u8,
                !len as u8,
                !(len >> 8) as u8,
            ];
            m.extend_from_slice(&payload);
            m.push(0x00);
            m
        });
        assert_eq!(inflate(&message, len).unwrap(), payload, "{len}");
        assert_eq!(
            inflate(&message, len - 1),
            Err(InflateError::TooBig),
            "{len}"
        );
    }
}

#[test]
fn a_bomb_stops_at_the_limit() {
    let zeros = vec![0u8; 10_000_000];
    let bomb = compressed(&zeros, 15).unwrap();
    assert!(bomb.len() < 50_000, "{}", bomb.len());
    let limit = 1 << 20;
    let mut out = Vec::new();
    assert_eq!(
        inflate_into(&bomb, limit, &mut out),
        Err(InflateError::TooBig)
    );
    assert_eq!(out.len(), limit, "inflated up to the limit");
    assert!(out.capacity() <= limit, "allocated {}", out.capacity());
    assert!(out.iter().all(|&b| b == 0));
    assert_eq!(inflate(&bomb, limit), Err(InflateError::TooBig));
    // With a limit that fits, it inflates.
    assert_eq!(inflate(&bomb, zeros.len()).unwrap(), zeros);
}

#[test]
fn corrupt_input() {
    for bad in [
        &[0xff; 10][..],                                   // BTYPE 11
        &[0xf2, 0x48, 0xcd],                               // cut inside a block
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9],                   // likewise
        &[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65],       // a stored block cut short
        &[0x00, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5, 0], // NLEN not LEN's complement
        &[0x02, 0x02],                                     // a distance before the start
    ] {
        assert_eq!(
            inflate(bad, 1 << 20),
            Err(InflateError::Corrupt),
            "{bad:x?}"
        );
    }
    // The inflater is reset after a failure.
    assert_eq!(
        inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 5).unwrap(),
        b"Hello"
    );
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let valid = compressed(&json(2000, 4), 15).unwrap();
    for round in 0..3000 {
        let input = if round % 2 == 0 {
            random((rng.next() % 300) as usize, rng.next())
        } else {
            // A valid message with a few bytes changed.
            let mut m = valid.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() % m.len() as u64) as usize;
                m[at] = rng.next() as u8;
            }
            m
        };
        let limit = (rng.next() % 5000) as usize;
        if let Ok(out) = inflate(&input, limit) {
            assert!(out.len() <= limit);
        }
    }
}

#[test]
fn the_output_buffer_kept_for_the_next_inflation_is_bounded() {
    let (small, large) = (json(4096, 3), json(200_000, 4));
    let message = inflate(&compressed(&small, 15).unwrap(), 1 << 20).unwrap();
    assert_eq!(message, small);
    let (len, capacity) = OUTPUT.with_borrow(|b| (b.len(), b.capacity()));
    assert_eq!(len, 0);
    assert!((4096..=OUTPUT_SPARE_MAX).contains(&capacity), "{capacity}");
    // A larger message keeps the buffer it was inflated into: none is left behind.
    assert_eq!(
        inflate(&compressed(&large, 15).unwrap(), 1 << 20).unwrap(),
        large
    );
    assert_eq!(OUTPUT.with_borrow(|b| b.capacity()), 0);
    // Nor after a bomb stopped at a limit over the spare's size.
    let bomb = compressed(&vec![0; 1 << 20], 15).unwrap();
    assert_eq!(inflate(&bomb, 100_000), Err(InflateError::TooBig));
    assert_eq!(OUTPUT.with_borrow(|b| b.capacity()), 0);
    assert_eq!(inflate(&bomb, 1 << 20).unwrap().len(), 1 << 20);
}
