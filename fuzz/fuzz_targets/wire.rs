//! Fuzzes the JSON wire format: `RequestFrame::decode` over arbitrary bytes, then a full
//! dispatch through a small registry (typed message and event handlers, handler errors).
//! Every reply and every error frame must be JSON that serde_json parses back, echoing the
//! request's `id` and `pattern`.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use futures_lite::future::block_on;
use libfuzzer_sys::fuzz_target;
use nestforge_edge::{
    handle_websocket_microservice_message, Error, ErrorCode, Kind, Message, MicroserviceContext,
    MicroserviceRegistry, Providers, RequestFrame, WebSocketContext,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Shape {
    Circle { r: f64 },
    Rect { w: f32, h: f32 },
}

#[derive(Deserialize)]
struct Reading {
    sensor: String,
    values: Vec<f64>,
    #[serde(default)]
    unit: Option<char>,
}

/// The registry every input is dispatched through (built once).
fn registry() -> &'static MicroserviceRegistry {
    static REGISTRY: OnceLock<MicroserviceRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        MicroserviceRegistry::builder()
            .message("app.info", |_: (), ctx: MicroserviceContext| async move {
                Ok(ctx.transport().to_string())
            })
            .message("math.add", |p: Add, _| async move {
                p.a.checked_add(p.b).ok_or_else(|| "overflow".into())
            })
            .message("echo", |p: Value, _| async move { Ok(p) })
            .message(
                "text.len",
                |p: String, _| async move { Ok(p.chars().count()) },
            )
            .message("shape", |p: Shape, _| async move { Ok(p) })
            .message("reading", |p: Reading, _| async move {
                // May be NaN or infinite: serde_json writes those as `null`.
                Ok((p.sensor, p.values.iter().sum::<f64>(), p.unit))
            })
            .message(
                "meta",
                |_: Option<u8>, ctx: MicroserviceContext| async move {
                    Ok(ctx.metadata().values.clone())
                },
            )
            .message("map", |p: BTreeMap<String, i32>, _| async move {
                Ok(p.into_keys().collect::<Vec<_>>())
            })
            .message("fail", |_: Value, _| async move {
                Err::<(), _>("boom \"quoted\"\n".into())
            })
            .message("provider", |_: (), ctx: MicroserviceContext| async move {
                // Nothing is provided: a `provider_missing` error.
                Ok(*ctx.resolve::<u32>()?)
            })
            .event("app.ping", |_: Value, _| async move { Ok(()) })
            .event("reading", |_: Reading, _| async move { Ok(()) })
            .event("fail", |_: (), _| async move { Err("event failed".into()) })
            .build()
    })
}

fuzz_target!(|data: &[u8]| {
    let decoded = RequestFrame::decode(data);
    if let Ok(frame) = &decoded {
        // A decoded id is a JSON number or string.
        if let Some(id) = frame.id {
            assert!(matches!(id.get().as_bytes()[0], b'"' | b'-' | b'0'..=b'9'));
        }
        let _ = frame.payload_json();
    }

    let ctx = WebSocketContext::detached(Providers::default());
    let binary = block_on(handle_websocket_microservice_message(
        &ctx,
        registry(),
        Message::Binary(data.to_vec().into()),
    ));
    let outcome = check_outcome(decoded.as_ref().ok(), &binary);

    // A Text frame with the same bytes gives the same answer (decoded with `from_str`,
    // the bytes of a Binary one with `from_slice`).
    if let Ok(text) = std::str::from_utf8(data) {
        match (&decoded, &RequestFrame::decode_str(text)) {
            (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("decode {a:?} but decode_str {b:?}"),
        }
        let text = block_on(handle_websocket_microservice_message(
            &ctx,
            registry(),
            Message::Text(text.into()),
        ));
        assert_eq!(outcome, check_outcome(decoded.as_ref().ok(), &text));
    }
});

/// Checks one dispatch result against the decoded frame; returns the JSON text sent back.
fn check_outcome(
    frame: Option<&RequestFrame<'_>>,
    result: &Result<Option<Message>, Error>,
) -> Option<String> {
    match result {
        Ok(Some(reply)) => {
            let text = reply.to_text().expect("replies are Text frames");
            let json: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {text}"));
            if json.get("error").is_some() {
                // A failed request that carried an id, answered: the id comes first.
                assert!(text.starts_with("{\"id\":"), "{text}");
                match frame {
                    None => {
                        assert_eq!(json["error"]["code"], "bad_frame", "{text}");
                        assert!(json.get("pattern").is_none());
                    }
                    Some(frame) => {
                        assert_ne!(json["error"]["code"], "bad_frame", "{text}");
                        assert_eq!(json["pattern"].as_str(), Some(&*frame.pattern));
                        let id = frame.id.expect("an answered error has an id");
                        assert!(text.starts_with(&format!("{{\"id\":{},", id.get())));
                    }
                }
                return Some(text.to_owned());
            }
            let frame = frame.expect("a reply for an undecodable frame");
            assert_eq!(frame.kind, Kind::Message);
            assert_eq!(json["pattern"].as_str(), Some(&*frame.pattern));
            assert_eq!(json.get("id").is_some(), frame.id.is_some(), "{text}");
            if let Some(id) = frame.id {
                // Echoed verbatim, first.
                assert!(text.starts_with(&format!("{{\"id\":{},", id.get())), "{text}");
            }
            assert!(json.get("payload").is_some() && json["metadata"]["values"].is_object());
            Some(text.to_owned())
        }
        Ok(None) => {
            let frame = frame.expect("an event for an undecodable frame");
            assert_eq!(frame.kind, Kind::Event);
            None
        }
        Err(err) => {
            let text = err.to_json();
            let json: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("error frame is not JSON ({e}): {text}"));
            assert_eq!(json["error"]["code"].as_str(), Some(err.code().as_str()));
            let _ = format!("{err} {err:#} {err:?}");
            match frame {
                None => {
                    assert_eq!(err.code(), ErrorCode::BadFrame, "{text}");
                    assert!(json.get("pattern").is_none() && json.get("id").is_none());
                }
                Some(frame) => {
                    assert_ne!(err.code(), ErrorCode::BadFrame, "decoded, then {err}");
                    assert_eq!(json["pattern"].as_str(), Some(&*frame.pattern));
                    // With an id the failure would have been answered.
                    assert!(frame.id.is_none() && json.get("id").is_none(), "{text}");
                }
            }
            Some(text)
        }
    }
}
