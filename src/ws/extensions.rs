//! The extensions a connection runs with (RFC 6455 §9): what its upgrade agreed, under its
//! gateway's configuration. The one extension is `permessage-deflate` (RFC 7692), with the
//! feature `deflate`; without it every offer is declined, as RFC 6455 §9.1 lets a server
//! do, and a connection runs with none.

#[cfg(feature = "deflate")]
use super::compression::Compression;
#[cfg(feature = "deflate")]
use super::deflate::{negotiate, Deflate};
use super::{Headers, WebSocketConfig};

/// What a connection agreed to in its upgrade: nothing (and no bytes) without the feature
/// `deflate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Extensions {
    /// `permessage-deflate` was agreed.
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<Deflating>,
}

/// A `permessage-deflate` agreement, with the gateway's threshold for compressing.
#[cfg(feature = "deflate")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deflating {
    pub(crate) agreement: Deflate,
    /// See `Compression::Deflate`.
    pub(crate) min_size: usize,
}

#[cfg(feature = "deflate")]
impl Extensions {
    /// The extensions `config` accepts of the offers in `headers`.
    pub(crate) fn negotiate(config: &WebSocketConfig, headers: &Headers) -> Self {
        let deflate = match config.compression {
            Compression::Off => None,
            Compression::Deflate { min_size } => negotiate(headers).map(|agreement| Deflating {
                agreement,
                min_size,
            }),
        };
        Extensions { deflate }
    }

    /// The `Sec-WebSocket-Extensions` value of the `101`, when something was agreed.
    pub(crate) fn response(&self) -> Option<&'static str> {
        self.deflate.map(|d| d.agreement.response())
    }
}

#[cfg(not(feature = "deflate"))]
impl Extensions {
    /// None: every offer is declined.
    pub(crate) fn negotiate(_: &WebSocketConfig, _: &Headers) -> Self {
        Extensions {}
    }

    /// None.
    pub(crate) fn response(&self) -> Option<&'static str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "deflate")]
    use crate::ws::Compression;

    fn offering(line: &str) -> Headers {
        Headers::from_pairs([("Sec-WebSocket-Extensions", line)])
    }

    #[test]
    fn no_offer_agrees_nothing() {
        let ext = Extensions::negotiate(&WebSocketConfig::default(), &Headers::new());
        assert_eq!(ext, Extensions::default());
        assert_eq!(ext.response(), None);
    }

    #[cfg(not(feature = "deflate"))]
    #[test]
    fn without_the_feature_every_offer_is_declined() {
        let ext = Extensions::negotiate(
            &WebSocketConfig::default(),
            &offering("permessage-deflate; client_max_window_bits"),
        );
        assert_eq!(ext.response(), None);
        assert_eq!(std::mem::size_of::<Extensions>(), 0);
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn an_offer_is_accepted_unless_compression_is_off() {
        let offer = offering("permessage-deflate; client_max_window_bits");
        let ext = Extensions::negotiate(&WebSocketConfig::default(), &offer);
        assert_eq!(
            ext.response(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(ext.deflate.map(|d| d.min_size), Some(128));
        let config = WebSocketConfig::default().compression(Compression::Deflate { min_size: 7 });
        let ext = Extensions::negotiate(&config, &offer);
        assert_eq!(ext.deflate.map(|d| d.min_size), Some(7));
        let off = WebSocketConfig::default().compression(Compression::Off);
        assert_eq!(Extensions::negotiate(&off, &offer), Extensions::default());
    }
}
