//! The registry's dispatch, replies and hash.

use super::dispatch::Input;
use super::*;
use crate::context::WebSocketContext;
use crate::providers::Providers;

fn dispatch(registry: &MicroserviceRegistry, frame: &str) -> Result<Option<Utf8Bytes>> {
    let ctx = WebSocketContext::detached(Providers::default());
    futures_lite::future::block_on(registry.dispatch(&ctx, Input::Text(frame)))
}

#[test]
fn ids_short_and_long_are_echoed_verbatim() {
    let registry = MicroserviceRegistry::builder()
        .message("p", |n: u32, _| async move { Ok(n + 1) })
        .build();
    let long = format!("\"{}\"", "x".repeat(100));
    // 22 bytes are kept inline, 23 on the heap.
    let (at_22, at_23) = (
        format!("\"{}\"", "y".repeat(20)),
        format!("\"{}\"", "z".repeat(21)),
    );
    for id in [
        "1",
        "-2.5e3",
        "\"\\u00e9t\\u00e9\"",
        &at_22,
        &at_23,
        long.as_str(),
    ] {
        let frame = format!(r#"{{"kind":"message","pattern":"p","payload":1,"id":{id}}}"#);
        let reply = dispatch(&registry, &frame).unwrap().unwrap();
        assert_eq!(
            reply.as_str(),
            format!(r#"{{"id":{id},"pattern":"p","payload":2,"metadata":{{"values":{{}}}}}}"#)
        );
    }
}

#[test]
fn binary_requests_get_the_whole_reply_frame_with_id_and_metadata() {
    let registry = MicroserviceRegistry::builder()
        .message("p", |n: u32, ctx: MicroserviceContext| async move {
            Ok(format!("{n}:{}", ctx.metadata().get("k").unwrap_or("-")))
        })
        .build();
    let ctx = WebSocketContext::detached(Providers::default());
    let frame = br#"{"id":"r\"1","kind":"message","pattern":"p","payload":7,"metadata":{"values":{"k":"v"}}}"#;
    let reply = futures_lite::future::block_on(registry.dispatch(&ctx, Input::Binary(frame)));
    assert_eq!(
        reply.unwrap().unwrap().as_str(),
        r#"{"id":"r\"1","pattern":"p","payload":"7:v","metadata":{"values":{"k":"v"}}}"#
    );
}

#[test]
fn a_reply_that_cannot_be_serialized_sends_no_partial_frame() {
    let registry = MicroserviceRegistry::builder()
        .message("bad", |_: (), _| async move {
            Ok(std::collections::HashMap::from([((1, 2), 3)]))
        })
        .build();
    let err = dispatch(
        &registry,
        r#"{"kind":"message","pattern":"bad","payload":null,"id":4}"#,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Serialize { .. }), "{err:?}");
    assert_eq!(err.request().unwrap().id.as_ref().unwrap().get(), "4");
    // The next reply starts clean.
    let registry = MicroserviceRegistry::builder()
        .message("ok", |_: (), _| async move { Ok(1) })
        .build();
    let reply = dispatch(
        &registry,
        r#"{"kind":"message","pattern":"ok","payload":null}"#,
    );
    assert_eq!(
        reply.unwrap().unwrap().as_str(),
        r#"{"pattern":"ok","payload":1,"metadata":{"values":{}}}"#
    );
}

#[test]
fn every_pattern_is_found_by_its_own_name_only() {
    // Names of every length around the hasher's 8-byte steps, sharing prefixes.
    let names: Vec<String> = (0..40)
        .flat_map(|len| ["a", "b"].map(|c| format!("{}{c}", &"app.info".repeat(5)[..len])))
        .collect();
    let registry = names
        .iter()
        .fold(MicroserviceRegistry::builder(), |b, name| {
            let reply = name.clone();
            b.message(name.as_str(), move |_: (), _| {
                let reply = reply.clone();
                async move { Ok(reply) }
            })
        })
        .build();
    for name in &names {
        let frame = format!(r#"{{"kind":"message","pattern":"{name}","payload":null}}"#);
        let reply = dispatch(&registry, &frame).unwrap().unwrap();
        assert!(reply.contains(&format!(r#""payload":"{name}""#)), "{reply}");
        assert!(!registry.has_message(&format!("{name}x")));
        assert!(!registry.has_event(name));
    }
}

#[test]
fn consecutive_replies_do_not_share_bytes() {
    let registry = MicroserviceRegistry::builder()
        .message("echo", |s: String, _| async move { Ok(s) })
        .build();
    let a = dispatch(
        &registry,
        r#"{"kind":"message","pattern":"echo","payload":"a"}"#,
    );
    let big = "b".repeat(100 * 1024);
    let b = dispatch(
        &registry,
        &format!(r#"{{"kind":"message","pattern":"echo","payload":"{big}"}}"#),
    );
    let c = dispatch(
        &registry,
        r#"{"kind":"message","pattern":"echo","payload":"c"}"#,
    );
    assert!(a.unwrap().unwrap().contains(r#""payload":"a""#));
    assert_eq!(b.unwrap().unwrap().len(), big.len() + 56);
    assert!(c.unwrap().unwrap().contains(r#""payload":"c""#));
}
