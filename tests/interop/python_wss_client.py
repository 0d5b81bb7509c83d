"""Third-party client check over TLS: the workflow against Python's `websockets` on wss://.

usage: python3 python_wss_client.py wss://127.0.0.1:PORT/ws CERT.pem
The server is examples/tls_gateway with the self-signed certificate CERT.pem, which the
client trusts as its only CA (so the certificate and its 127.0.0.1 address are verified).
Exits non-zero on the first mismatch.
"""
import asyncio
import json
import ssl
import sys

import websockets


async def main(url: str, cert: str) -> None:
    # Without the certificate as CA the handshake must fail: this is real TLS.
    try:
        async with websockets.connect(url, ssl=ssl.create_default_context(), open_timeout=5):
            raise AssertionError("an untrusted certificate was accepted")
    except ssl.SSLCertVerificationError:
        pass

    trusted = ssl.create_default_context(cafile=cert)
    async with websockets.connect(url, ssl=trusted, open_timeout=5) as ws:
        tls = ws.transport.get_extra_info("ssl_object").version()
        banner = await ws.recv()
        assert banner.startswith("connected:"), banner
        suggested = banner.split("; send ", 1)[1]
        await ws.send(suggested)  # the banner's frame, verbatim: app.info
        reply = json.loads(await ws.recv())
        assert reply["pattern"] == "app.info", reply
        assert reply["payload"]["transport"] == "websocket", reply
        await ws.send(json.dumps({"kind": "message", "pattern": "app.info", "id": 1}))
        reply = json.loads(await ws.recv())
        assert reply["id"] == 1 and reply["pattern"] == "app.info", reply
        await ws.send("hello")  # not a request frame
        got = await ws.recv()
        assert got == "error:expected value at line 1 column 1", got
        pong = await ws.ping(b"p")
        await asyncio.wait_for(pong, 5)
        await ws.close()
        assert ws.close_code == 1000, ws.close_code
    print("python websockets", websockets.__version__, "over", url, tls, "ok")


asyncio.run(main(sys.argv[1], sys.argv[2]))
