"""Third-party client check: permessage-deflate against Python's `websockets`.

usage: python3 python_deflate.py ws://127.0.0.1:PORT/ws
The server is examples/events_gateway built with the feature `deflate`. Python's client
offers permessage-deflate by default and compresses what it sends; the gateway's replies of
128 bytes or more come back compressed. Counts the frames that arrive with RSV1 set, checks
every reply, a restricted server window (replies longer than it come back plain) and a
client that offers nothing. Exits non-zero on the first mismatch.
"""
import asyncio
import json
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)

ACCEPTED = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
INFO = {"app_name": "NestForge WebSockets", "transport": "websocket"}

# Count the compressed frames (RSV1 set) the client inflates.
compressed = 0
_decode = PerMessageDeflate.decode


def counting_decode(self, frame, *, max_size=None):
    global compressed
    compressed += frame.rsv1
    return _decode(self, frame, max_size=max_size)


PerMessageDeflate.decode = counting_decode


async def request(ws, note: str, request_id: int) -> dict:
    """An app.info request whose reply carries `note` back in its metadata."""
    await ws.send(json.dumps({"kind": "message", "pattern": "app.info", "payload": None,
                              "metadata": {"values": {"note": note}}, "id": request_id}))
    reply = json.loads(await ws.recv())
    assert reply == {"id": request_id, "pattern": "app.info", "payload": INFO,
                     "metadata": {"values": {"note": note}}}, reply
    return reply


async def main(url: str) -> None:
    global compressed
    # The default offer (permessage-deflate; client_max_window_bits).
    async with connect(url) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"] == ACCEPTED, ws.response.headers
        assert any(isinstance(e, PerMessageDeflate) for e in ws.protocol.extensions)
        banner = await ws.recv()  # about 100 bytes: sent plain
        assert banner.startswith("connected:"), banner
        assert compressed == 0, compressed
        note = "temperature 21.5 C, humidity 40 %, " * 40  # ~1.4 KB each way
        for i in range(20):
            await request(ws, note, i)
        assert compressed == 20, compressed
        await ws.send('{"kind":"message","pattern":"nope","payload":null}')
        assert await ws.recv() == "error:No message handler registered for `nope`"
        assert compressed == 20, "a short error text goes plain"
        await ws.close()
        assert ws.close_code == 1000, ws.close_code

    # A restricted server window: 2^10 bytes. Longer replies go plain, shorter compressed.
    compressed = 0
    offer = ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=True)
    async with connect(url, extensions=[offer], compression=None) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"] == \
            ACCEPTED + "; server_max_window_bits=10", ws.response.headers
        await ws.recv()
        await request(ws, "x" * 2000, 1)
        assert compressed == 0, compressed
        await request(ws, "y" * 500, 2)
        assert compressed == 1, compressed

    # No offer: no extension, nothing compressed.
    compressed = 0
    async with connect(url, compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers, ws.response.headers
        assert not ws.protocol.extensions
        await ws.recv()
        await request(ws, "z" * 3000, 3)
    assert compressed == 0
    print("python websockets", websockets.__version__, "permessage-deflate ok")


asyncio.run(main(sys.argv[1]))
