"""Third-party client check: the workflow against Python's `websockets`.

usage: python3 python_client.py ws://127.0.0.1:PORT APP_NAME
Waits are stretched by NESTFORGE_TEST_TIME_SCALE (default 1), as the Rust tests' bounds are.
The server runs examples/events_gateway.rs on /ws (NestForge error texts) and the test
patterns on /json (JSON error frames). Exits non-zero on the first mismatch.
"""
import asyncio
import json
import os
import sys

import websockets


SCALE = int(os.environ.get("NESTFORGE_TEST_TIME_SCALE", "1"))


async def main(base: str, app_name: str) -> None:
    info = {"app_name": app_name, "transport": "websocket"}
    async with websockets.connect(base + "/ws") as ws:
        banner = await ws.recv()
        assert banner.startswith(f"connected:{app_name}; send "), banner
        suggested = banner.split("; send ", 1)[1]
        await ws.send(suggested)  # the banner's frame, verbatim
        reply = json.loads(await ws.recv())
        assert reply == {"pattern": "app.info", "payload": info, "metadata": {"values": {}}}, reply
        # every row of the wire table
        await ws.send(json.dumps({"kind": "message", "pattern": "app.info", "payload": None,
                                  "metadata": {"values": {"k": "v"}}, "id": 1}))
        reply = json.loads(await ws.recv())
        assert reply == {"id": 1, "pattern": "app.info", "payload": info,
                         "metadata": {"values": {"k": "v"}}}, reply
        await ws.send(json.dumps({"kind": "event", "pattern": "app.ping", "payload": {"x": 1}}))
        await ws.send(b'{"kind":"message","pattern":"app.info","payload":null,"id":"b"}')  # binary
        reply = json.loads(await ws.recv())  # the event produced nothing
        assert reply["id"] == "b", reply
        # NestForge's error texts
        for frame, text in [
            ('{"kind":"message","pattern":"nope","payload":null}',
             "error:No message handler registered for `nope`"),
            ('{"kind":"event","pattern":"nope","payload":null}',
             "error:No event handler registered for `nope`"),
            ('{"kind":"message","pattern":"app.info","payload":{}}',
             "error:Failed to deserialize message payload"),
            ("hello", "error:expected value at line 1 column 1"),
            ('{"kind":"Message","pattern":"p","payload":null}',
             "error:unknown variant `Message`, expected `message` or `event` at line 1 column 17"),
            ('{"kind":"message","pattern":"app.info","payload":null,"metadata":{"values":{"k":1}}}',
             "error:invalid type: integer `1`, expected a string at line 1 column 81"),
        ]:
            await ws.send(frame)
            got = await ws.recv()
            assert got == text, (frame, got)
        pong = await ws.ping(b"p")
        await asyncio.wait_for(pong, 5 * SCALE)
        await ws.close()
        assert ws.close_code == 1000, ws.close_code

    async with websockets.connect(base + "/json") as ws:
        for frame, code in [
            ({"kind": "message", "pattern": "nope", "id": 7}, "unknown_pattern"),
            ({"kind": "message", "pattern": "app.greet", "payload": {}, "id": 8}, "bad_payload"),
            ({"kind": "message", "pattern": "app.boom", "id": 9}, "handler_error"),
            ({"kind": "message", "pattern": "app.missing", "id": 10}, "provider_missing"),
        ]:
            await ws.send(json.dumps(frame))
            err = json.loads(await ws.recv())
            assert err["id"] == frame["id"] and err["error"]["code"] == code, err
        await ws.send("{")
        err = json.loads(await ws.recv())
        assert err["error"]["code"] == "bad_frame", err
    print("python websockets", websockets.__version__, "ok")


asyncio.run(main(sys.argv[1], sys.argv[2]))
