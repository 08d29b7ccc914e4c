"""A small Janus API client over HTTP (long poll) and WebSocket, written for these tests."""

import asyncio
import json
import random
import string

import aiohttp
import websockets


def tid():
    return "".join(random.choice(string.ascii_letters) for _ in range(12))


class JanusSession:
    """One session with one handle. `events` collects every asynchronous message."""

    def __init__(self):
        self.session_id = None
        self.handle_id = None
        self.events = asyncio.Queue()
        self.seen = []

    async def next_event(self, predicate, timeout=15.0):
        """The next collected event matching `predicate` (others are kept in `seen`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for ev in list(self.seen):
            if predicate(ev):
                self.seen.remove(ev)
                return ev
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no matching event within {timeout}s; seen: {self.seen[-10:]}")
            ev = await asyncio.wait_for(self.events.get(), remaining)
            if predicate(ev):
                return ev
            self.seen.append(ev)


class HttpJanus(JanusSession):
    def __init__(self, base):
        super().__init__()
        self.base = base
        self.http = None
        self.poller = None

    async def __aenter__(self):
        self.http = aiohttp.ClientSession()
        r = await self.post(self.base, {"janus": "create"})
        self.session_id = r["data"]["id"]
        self.poller = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc):
        if self.poller:
            self.poller.cancel()
        try:
            await self.post(f"{self.base}/{self.session_id}", {"janus": "destroy"})
        except Exception:
            pass
        await self.http.close()

    async def post(self, url, body):
        body = dict(body, transaction=tid())
        async with self.http.post(url, data=json.dumps(body)) as resp:
            text = await resp.text()
            return json.loads(text)

    async def _poll(self):
        while True:
            try:
                async with self.http.get(f"{self.base}/{self.session_id}?maxev=10") as resp:
                    if resp.status != 200:
                        await asyncio.sleep(0.2)
                        continue
                    for ev in json.loads(await resp.text()):
                        if ev.get("janus") != "keepalive":
                            await self.events.put(ev)
            except asyncio.CancelledError:
                return
            except Exception:
                await asyncio.sleep(0.2)

    async def attach(self, plugin):
        r = await self.post(f"{self.base}/{self.session_id}", {"janus": "attach", "plugin": plugin})
        self.handle_id = r["data"]["id"]
        return r

    async def request(self, janus, **fields):
        return await self.post(f"{self.base}/{self.session_id}/{self.handle_id}", dict(fields, janus=janus))

    async def message(self, body, jsep=None):
        msg = {"body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        return await self.request("message", **msg)


class WsJanus(JanusSession):
    def __init__(self, url):
        super().__init__()
        self.url = url
        self.ws = None
        self.reader = None
        self.pending = {}

    async def __aenter__(self):
        self.ws = await websockets.connect(self.url, subprotocols=["janus-protocol"])
        self.reader = asyncio.create_task(self._read())
        r = await self.send({"janus": "create"})
        self.session_id = r["data"]["id"]
        return self

    async def __aexit__(self, *exc):
        try:
            await self.send({"janus": "destroy", "session_id": self.session_id}, timeout=3)
        except Exception:
            pass
        self.reader.cancel()
        await self.ws.close()

    async def _read(self):
        async for text in self.ws:
            msg = json.loads(text)
            t = msg.get("transaction")
            kind = msg.get("janus")
            if t in self.pending and kind in ("success", "error", "ack", "server_info", "pong"):
                fut = self.pending.pop(t)
                if not fut.done():
                    fut.set_result(msg)
                if kind != "ack" or not msg.get("hint"):
                    continue
                continue
            await self.events.put(msg)

    async def send(self, body, timeout=10):
        t = tid()
        fut = asyncio.get_running_loop().create_future()
        self.pending[t] = fut
        await self.ws.send(json.dumps(dict(body, transaction=t)))
        return await asyncio.wait_for(fut, timeout)

    async def attach(self, plugin):
        r = await self.send({"janus": "attach", "plugin": plugin, "session_id": self.session_id})
        self.handle_id = r["data"]["id"]
        return r

    async def request(self, janus, **fields):
        return await self.send(dict(fields, janus=janus, session_id=self.session_id, handle_id=self.handle_id))

    async def message(self, body, jsep=None):
        msg = {"body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        return await self.request("message", **msg)
