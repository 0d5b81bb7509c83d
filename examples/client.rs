//! The example client NestForge's docs mention: connects to `events_gateway`, prints the
//! banner, sends `app.info` (the banner's suggested frame, verbatim), prints the reply.
//!
//! ```text
//! cargo run --release --example client [ws://127.0.0.1:3002/ws]
//! ```

use async_tungstenite::tungstenite::Message;
use futures_lite::StreamExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:3002/ws".into());
    smol::block_on(async {
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .ok_or("bad url")?
            .to_string();
        let stream = smol::net::TcpStream::connect(&addr).await?;
        let (mut ws, _) = async_tungstenite::client_async(url.as_str(), stream).await?;
        let banner = ws.next().await.ok_or("no banner")??;
        println!("< {}", banner.to_text()?);
        let request = r#"{"kind":"message","pattern":"app.info","payload":null,"metadata":{}}"#;
        println!("> {request}");
        ws.send(Message::Text(request.into())).await?;
        let reply = ws.next().await.ok_or("no reply")??;
        println!("< {}", reply.to_text()?);
        ws.close(None).await?;
        Ok(())
    })
}
