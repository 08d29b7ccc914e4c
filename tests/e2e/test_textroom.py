"""TextRoom end to end: aiortc peers answer the plugin's data-channel offer, join rooms and chat
over the channel the plugin created; management requests over the Janus and Admin APIs."""

import asyncio
import json
import os
import re
import tempfile
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from conftest import Server
from janus_client import WsJanus, tid

TR = "janus.plugin.textroom"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0000$")

CONFIG = """
[textroom]
[textroom.room-1234]
description = "Demo Room"
secret = "adminpwd"
is_private = false
history = 0

[textroom.room-4444]
description = "History Room"
pin = "1111"
history = 2

[textroom.room-7777]
description = "Hidden Room"
is_private = true
"""


@pytest.fixture(scope="module")
def tr_server():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "textroom.toml")
        with open(path, "w") as f:
            f.write(CONFIG)
        s = Server(extra_args=["-c", path])
        yield s
        s.stop()


def data(ev):
    return ev.get("plugindata", {}).get("data")


class Participant:
    """A Janus session with a TextRoom handle whose data channel an aiortc peer answered."""

    def __init__(self, server):
        self.server = server
        self.j = WsJanus(server.ws_url)
        self.pc = None
        self.dc = None
        self.offer_sdp = None
        self.inbox = asyncio.Queue()
        self.seen = []

    async def start(self):
        await self.j.__aenter__()
        await self.j.attach(TR)
        await self.negotiate()
        return self

    async def negotiate(self):
        r = await self.j.message({"request": "setup"})
        assert r["janus"] == "ack", r
        ev = await self.j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
        assert data(ev) == {"textroom": "event", "result": "ok"}
        assert ev["jsep"]["type"] == "offer"
        sdp = self.offer_sdp = ev["jsep"]["sdp"]
        assert "m=application" in sdp and "m=audio" not in sdp and "m=video" not in sdp, sdp
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        channels = asyncio.Queue()
        self.pc.on("datachannel", lambda ch: channels.put_nowait(ch))
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        r = await self.j.message({"request": "ack"}, {"type": "answer", "sdp": self.pc.localDescription.sdp})
        assert r["janus"] == "ack", r
        ok = await self.j.next_event(lambda e: e.get("janus") == "event" and "jsep" not in e)
        assert data(ok) == {"textroom": "event", "result": "ok"}
        await self.j.next_event(lambda e: e.get("janus") == "webrtcup")
        self.dc = await asyncio.wait_for(channels.get(), 10)
        assert self.dc.label == "JanusDataChannel"
        self.dc.on("message", lambda m: self.inbox.put_nowait(m))
        deadline = time.time() + 10
        while self.dc.readyState != "open":
            assert time.time() < deadline, "data channel never opened"
            await asyncio.sleep(0.05)

    def send(self, msg):
        self.dc.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))

    async def request(self, textroom, **fields):
        """Sends a data-channel request; returns the reply carrying its transaction."""
        t = tid()
        self.send(dict(fields, textroom=textroom, transaction=t))
        return await self.expect(lambda m: m.get("transaction") == t)

    async def expect(self, pred, timeout=10.0):
        """The next data-channel message matching `pred` (others are kept for later)."""
        for m in list(self.seen):
            if pred(m):
                self.seen.remove(m)
                return m
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no matching data-channel message; seen: {self.seen[-10:]}")
            raw = await asyncio.wait_for(self.inbox.get(), remaining)
            m = json.loads(raw)
            if pred(m):
                return m
            self.seen.append(m)

    async def drain(self, wait=0.3):
        """Everything received so far (after a short wait), emptied."""
        await asyncio.sleep(wait)
        while not self.inbox.empty():
            self.seen.append(json.loads(self.inbox.get_nowait()))
        out, self.seen = self.seen, []
        return out

    async def join(self, room, username, **fields):
        r = await self.request("join", room=room, username=username, **fields)
        assert r.get("textroom") == "success", r
        return r

    async def api(self, body):
        """A synchronous Janus API request: returns plugindata.data."""
        r = await self.j.message(body)
        assert r["janus"] == "success", r
        assert r["plugindata"]["plugin"] == TR
        return data(r)

    async def close(self):
        if self.pc:
            await self.pc.close()
        await self.j.__aexit__(None, None, None)


def is_event(kind, **fields):
    return lambda m: m.get("textroom") == kind and "transaction" not in m and all(m.get(k) == v for k, v in fields.items())


@pytest.mark.asyncio
async def test_chat_in_a_room(tr_server):
    alice = await Participant(tr_server).start()
    bob = await Participant(tr_server).start()
    carol = await Participant(tr_server).start()
    try:
        r = await alice.request("list")
        rooms = {x["room"]: x for x in r["list"]}
        assert r["textroom"] == "success"
        assert rooms[1234] == {"room": 1234, "description": "Demo Room", "pin_required": False, "num_participants": 0, "history": 0}
        assert rooms[4444]["pin_required"] is True and rooms[4444]["history"] == 2
        assert 7777 not in rooms, "private rooms are not listed"

        # Join: the joiner gets its own join event, then the others in the reply.
        r = await alice.request("join", room=1234, username="alice", display="Alice")
        assert r == {"textroom": "success", "participants": [], "transaction": r["transaction"]}
        assert await alice.expect(is_event("join")) == {"textroom": "join", "room": 1234, "username": "alice", "display": "Alice"}
        r = await bob.join(1234, "bob", display="Bob")
        assert r["participants"] == [{"username": "alice", "display": "Alice"}]
        assert await bob.expect(is_event("join")) == {"textroom": "join", "room": 1234, "username": "bob", "display": "Bob"}
        assert await alice.expect(is_event("join", username="bob")) == {"textroom": "join", "room": 1234, "username": "bob", "display": "Bob"}

        r = await alice.request("join", room=1234, username="alice2")
        assert r == {"textroom": "error", "error_code": 421, "error": "Already in room 1234", "transaction": r["transaction"]}
        r = await carol.request("join", room=1234, username="bob")
        assert (r["error_code"], r["error"]) == (420, "Username already taken")
        r = await carol.request("join", room=999999, username="carol")
        assert (r["error_code"], r["error"]) == (417, "No such room (999999)")
        r = await carol.request("message", room=1234, text="not yet")
        assert (r["error_code"], r["error"]) == (422, "Not in room 1234")
        await carol.join(1234, "carol")
        await alice.expect(is_event("join", username="carol"))
        await bob.expect(is_event("join", username="carol"))

        r = await carol.request("listparticipants", room=1234)
        assert r["textroom"] == "success" and r["room"] == 1234
        assert sorted(r["participants"], key=lambda p: p["username"]) == [
            {"username": "alice", "display": "Alice"}, {"username": "bob", "display": "Bob"}, {"username": "carol"}]
        r = await carol.request("exists", room=1234)
        assert (r["exists"], r["room"]) == (True, 1234)
        r = await carol.request("exists", room=4321)
        assert r["exists"] is False

        # A public message reaches everybody, the sender included.
        r = await alice.request("message", room=1234, text="hello")
        assert r == {"textroom": "success", "transaction": r["transaction"]}
        for p in (alice, bob, carol):
            m = await p.expect(is_event("message", text="hello"))
            assert (m["room"], m["from"]) == (1234, "alice")
            assert DATE.match(m["date"]), m["date"]
            assert "whisper" not in m

        # A whisper reaches only its target; the sender learns who got it.
        r = await alice.request("message", room=1234, text="psst", to="bob")
        assert r == {"textroom": "success", "sent": {"bob": True}, "transaction": r["transaction"]}
        m = await bob.expect(is_event("message", text="psst"))
        assert (m["from"], m["whisper"]) == ("alice", True)
        r = await alice.request("message", room=1234, text="both", tos=["carol", "nobody"])
        assert r["sent"] == {"carol": True, "nobody": False}
        m = await carol.expect(is_event("message", text="both"))
        assert m["whisper"] is True
        # `ack: false`: no reply, the message still goes out.
        alice.send({"textroom": "message", "transaction": "noack", "room": 1234, "text": "quiet", "ack": False})
        for p in (alice, bob, carol):
            await p.expect(is_event("message", text="quiet"))
        assert not any(m.get("text") == "psst" for m in await carol.drain())
        rest = await alice.drain()
        assert not any(m.get("text") in ("psst", "both") for m in rest), rest
        assert not any(m.get("transaction") == "noack" for m in rest), rest
        assert not any(m.get("text") == "both" for m in await bob.drain())

        # Announcements need the room secret.
        r = await bob.request("announcement", room=1234, text="notice")
        assert (r["error_code"], r["error"]) == (413, "Missing mandatory element (secret)")
        r = await bob.request("announcement", room=1234, text="notice", secret="nope")
        assert (r["error_code"], r["error"]) == (419, "Unauthorized (wrong secret)")
        r = await bob.request("announcement", room=1234, text="notice", secret="adminpwd")
        assert r["textroom"] == "success"
        for p in (alice, bob, carol):
            m = await p.expect(is_event("announcement"))
            assert m["room"] == 1234 and m["text"] == "notice" and DATE.match(m["date"]) and "from" not in m

        # Leave: the leaver and the others are told.
        r = await bob.request("leave", room=1234)
        assert r == {"textroom": "success", "transaction": r["transaction"]}
        assert await bob.expect(is_event("leave")) == {"textroom": "leave", "room": 1234, "username": "bob"}
        for p in (alice, carol):
            assert await p.expect(is_event("leave")) == {"textroom": "leave", "room": 1234, "username": "bob"}
        r = await bob.request("message", room=1234, text="gone")
        assert (r["error_code"], r["error"]) == (422, "Not in room 1234")

        # Kick (secret required): everybody, the kicked user included, gets `kicked`.
        r = await bob.request("kick", room=1234, secret="adminpwd", username="carol")
        assert r["textroom"] == "success"
        for p in (alice, carol):
            assert await p.expect(is_event("kicked")) == {"textroom": "kicked", "room": 1234, "username": "carol"}
        r = await bob.request("kick", room=1234, secret="adminpwd", username="carol")
        assert (r["error_code"], r["error"]) == (423, "No such user carol in room 1234")

        r = await bob.request("bogus")
        assert r == {"textroom": "error", "error_code": 415, "error": "Unsupported request bogus", "transaction": r["transaction"]}
    finally:
        for p in (alice, bob, carol):
            await p.close()


@pytest.mark.asyncio
async def test_janus_api_management(tr_server):
    mgr = await Participant(tr_server).start()
    member = await Participant(tr_server).start()
    try:
        d = await mgr.api({"request": "list"})
        assert d["textroom"] == "success" and any(r["room"] == 1234 for r in d["list"])
        d = await mgr.api({"request": "exists", "room": 1234})
        assert d == {"textroom": "success", "room": 1234, "exists": True}

        d = await mgr.api({"request": "create", "room": 5555, "description": "API room", "secret": "s3"})
        assert d == {"textroom": "created", "room": 5555, "permanent": False}
        d = await mgr.api({"request": "create", "room": 5555})
        assert d == {"textroom": "error", "error_code": 418, "error": "Room 5555 already exists"}
        d = await mgr.api({"request": "edit", "room": 5555, "secret": "s3", "new_description": "Edited"})
        assert d == {"textroom": "edited", "room": 5555, "permanent": False}
        d = await mgr.api({"request": "list"})
        assert {"room": 5555, "description": "Edited", "pin_required": False, "num_participants": 0, "history": 0} in d["list"]

        await member.join(5555, "m", display="Member")
        d = await mgr.api({"request": "listparticipants", "room": 5555})
        assert d == {"textroom": "success", "room": 5555, "participants": [{"username": "m", "display": "Member"}]}
        d = await mgr.api({"request": "announcement", "room": 5555, "secret": "s3", "text": "from the API"})
        assert d == {"textroom": "success"}
        m = await member.expect(is_event("announcement"))
        assert m["text"] == "from the API"

        d = await mgr.api({"request": "destroy", "room": 5555, "secret": "wrong"})
        assert d == {"textroom": "error", "error_code": 419, "error": "Unauthorized (wrong secret)"}
        d = await mgr.api({"request": "destroy", "room": 5555, "secret": "s3"})
        assert d == {"textroom": "destroyed", "room": 5555, "permanent": False}
        assert await member.expect(is_event("destroyed")) == {"textroom": "destroyed", "room": 5555}
        # Janus compat: the requester's own channel hears about it too.
        assert await mgr.expect(is_event("destroyed")) == {"textroom": "destroyed", "room": 5555}
        d = await mgr.api({"request": "exists", "room": 5555})
        assert d["exists"] is False
        r = await member.request("message", room=5555, text="x")
        assert (r["error_code"], r["error"]) == (417, "No such room (5555)")

        # Requests the processor never sees answer with "textroom":"event".
        d = await mgr.api({"request": "bogus"})
        assert d == {"textroom": "event", "error_code": 415, "error": "Unknown request 'bogus'"}
        d = await mgr.api({"request": "join", "room": 1234, "username": "x"})
        assert d == {"textroom": "event", "error_code": 415, "error": "Unknown request 'join'"}
        d = await mgr.api({})
        assert d == {"textroom": "event", "error_code": 413, "error": "Missing mandatory element (request)"}
        d = await mgr.api({"request": "exists", "room": "1234"})
        assert d == {"textroom": "error", "error_code": 414, "error": "Invalid element type (room should be a positive integer)"}

        # A second setup on the same handle is refused.
        r = await mgr.j.message({"request": "setup"})
        assert r["janus"] == "ack"
        ev = await mgr.j.next_event(lambda e: e.get("janus") == "event")
        assert data(ev) == {"textroom": "error", "error_code": 416, "error": "PeerConnection already setup"}
        assert "jsep" not in ev

        # The Admin API reaches the same requests.
        body = {"janus": "message_plugin", "plugin": TR, "request": {"request": "create", "room": 6666}}
        r = await tr_server.admin(body)
        assert r["janus"] == "success", r
        assert r["response"] == {"textroom": "created", "room": 6666, "permanent": False}
        r = await tr_server.admin(dict(body, request={"request": "destroy", "room": 6666}))
        assert r["response"] == {"textroom": "destroyed", "room": 6666, "permanent": False}
        r = await tr_server.admin(dict(body, request={"request": "kick", "room": 1234, "username": "x"}))
        assert r["response"] == {"textroom": "error", "error_code": 413, "error": "Missing mandatory element (secret)"}

        # restart: a new offer with new ICE credentials; refused before any setup.
        r = await mgr.j.message({"request": "restart"})
        assert r["janus"] == "ack"
        ev = await mgr.j.next_event(lambda e: e.get("janus") == "event")
        assert data(ev) == {"textroom": "event", "result": "ok"}
        assert ev["jsep"]["type"] == "offer" and "m=application" in ev["jsep"]["sdp"]

        def ufrag(sdp):
            return [line for line in sdp.splitlines() if line.startswith("a=ice-ufrag:")][0]

        assert ufrag(ev["jsep"]["sdp"]) != ufrag(mgr.offer_sdp)
        async with WsJanus(tr_server.ws_url) as fresh:
            await fresh.attach(TR)
            r = await fresh.message({"request": "restart"})
            assert r["janus"] == "ack"
            ev = await fresh.next_event(lambda e: e.get("janus") == "event")
            assert data(ev) == {"textroom": "error", "error_code": 416, "error": "PeerConnection not setup"}
    finally:
        await mgr.close()
        await member.close()


@pytest.mark.asyncio
async def test_history_and_pin(tr_server):
    alice = await Participant(tr_server).start()
    bob = await Participant(tr_server).start()
    try:
        r = await alice.request("join", room=4444, username="alice")
        assert (r["error_code"], r["error"]) == (413, "Missing mandatory element (pin)")
        r = await alice.request("join", room=4444, username="alice", pin="0000")
        assert (r["error_code"], r["error"]) == (419, "Unauthorized (wrong pin)")
        await alice.join(4444, "alice", display="Alice", pin="1111")
        for i in range(3):
            await alice.request("message", room=4444, text=f"m{i}")
        await bob.join(4444, "bob", pin="1111")
        info = await tr_server.admin({"janus": "handle_info", "session_id": alice.j.session_id, "handle_id": alice.j.handle_id})
        assert info["info"]["plugin_specific"] == {
            "setup": True, "rooms": [{"room": 4444, "username": "alice", "display": "Alice"}], "destroyed": 0}
        got = [m for m in await bob.drain() if m.get("textroom") == "message"]
        # Only the last two (the room's history size), with the sender's display name. (Sorted:
        # the core may reorder data-channel sends, see test_messages_keep_their_order.)
        assert sorted(m["text"] for m in got) == ["m1", "m2"]
        assert all(m["from"] == "alice" and m["display"] == "Alice" for m in got)
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.asyncio
async def test_messages_keep_their_order(tr_server):
    alice = await Participant(tr_server).start()
    bob = await Participant(tr_server).start()
    try:
        await alice.join(1234, "alice-o")
        await bob.join(1234, "bob-o")
        for i in range(40):
            alice.send({"textroom": "message", "transaction": f"o{i}", "room": 1234, "text": f"o{i}", "ack": False})
        got = []
        while len(got) < 40:
            m = await bob.expect(is_event("message", **{"from": "alice-o"}))
            got.append(m["text"])
        assert got == [f"o{i}" for i in range(40)]
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.asyncio
async def test_participant_leaves_when_session_goes(tr_server):
    alice = await Participant(tr_server).start()
    bob = await Participant(tr_server).start()
    try:
        await alice.join(1234, "alice-s")
        await bob.join(1234, "bob-s")
        r = await alice.request("listparticipants", room=1234)
        assert {p["username"] for p in r["participants"]} == {"alice-s", "bob-s"}
        await bob.close()
        assert await alice.expect(is_event("leave", username="bob-s")) == {"textroom": "leave", "room": 1234, "username": "bob-s"}
        r = await alice.request("listparticipants", room=1234)
        assert [p["username"] for p in r["participants"]] == ["alice-s"]
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.asyncio
async def test_hangup_leaves_rooms_and_setup_works_again(tr_server):
    alice = await Participant(tr_server).start()
    bob = await Participant(tr_server).start()
    try:
        await alice.join(1234, "alice-h")
        await bob.join(1234, "bob-h")
        r = await bob.j.request("hangup")
        assert r["janus"] == "success"
        await bob.j.next_event(lambda e: e.get("janus") == "hangup")
        assert await alice.expect(is_event("leave", username="bob-h")) == {"textroom": "leave", "room": 1234, "username": "bob-h"}
        await bob.pc.close()
        bob.inbox, bob.seen = asyncio.Queue(), []
        await bob.negotiate()
        await bob.join(1234, "bob-h")
        await alice.expect(is_event("join", username="bob-h"))
        r = await bob.request("message", room=1234, text="back")
        assert r["textroom"] == "success"
        await alice.expect(is_event("message", text="back"))
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.asyncio
async def test_malformed_data_channel_input(tr_server):
    p = await Participant(tr_server).start()
    try:
        p.send("[1, 2, 3]")
        m = await p.expect(lambda m: m.get("textroom") == "error")
        assert m == {"textroom": "error", "error_code": 413, "error": "Missing mandatory element (textroom)"}
        p.send({"textroom": "list"})
        m = await p.expect(lambda m: m.get("textroom") == "error")
        assert m == {"textroom": "error", "error_code": 413, "error": "Missing mandatory element (transaction)"}
        p.send({"textroom": 5, "transaction": "x"})
        m = await p.expect(lambda m: m.get("textroom") == "error")
        assert m == {"textroom": "error", "error_code": 414, "error": "Invalid element type (textroom should be a string)"}
        p.send("this is not json")
        p.send(b"\x00\x01binary")
        p.send("\"just a string\"")
        m = await p.expect(lambda m: m.get("textroom") == "error")
        assert m["error_code"] == 413
        r = await p.request("join", room="abc", username="u")
        assert (r["error_code"], r["error"]) == (414, "Invalid element type (room should be a positive integer)")
        r = await p.request("join", room=1234, username=["u"])
        assert (r["error_code"], r["error"]) == (414, "Invalid element type (username should be a string)")
        r = await p.request("message", room=1234, text="x", to="a", tos=["b"])
        assert r["error_code"] == 422, r  # not in the room: checked before to/tos
        await p.join(1234, "mal")
        r = await p.request("message", room=1234, text="x", to="a", tos=["b"])
        assert (r["error_code"], r["error"]) == (414, "Both to and tos array provided")
        r = await p.request("message", room=1234, text="x", tos=[1])
        assert (r["error_code"], r["error"]) == (414, "Invalid tos provided")
        r = await p.request("allowed", room=1234, action="ban", secret="adminpwd")
        assert (r["error_code"], r["error"]) == (414, "Unsupported action 'ban' (allowed)")
        # The unparsable and binary messages got no answer; the handle still works.
        rest = await p.drain()
        assert not any(m.get("textroom") == "error" for m in rest), rest
        r = await p.request("exists", room=1234)
        assert r["exists"] is True
    finally:
        await p.close()


@pytest.mark.asyncio
async def test_public_messages_are_posted_to_the_backend(tr_server):
    from aiohttp import web

    received = asyncio.Queue()

    async def backend(request):
        received.put_nowait((request.headers.get("Content-Type"), await request.text()))
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_post("/chat", backend)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    alice = await Participant(tr_server).start()
    try:
        room = 7000 + os.getpid() % 1000
        created = await alice.api({"request": "create", "room": room, "post": f"http://127.0.0.1:{port}/chat"})
        assert created["textroom"] == "created"
        await alice.join(room, "alice-p")
        await alice.request("message", room=room, text="to everyone")
        await alice.request("message", room=room, text="just me", to="alice-p")
        ctype, body = await asyncio.wait_for(received.get(), 10)
        assert ctype == "application/json"
        posted = json.loads(body)
        assert (posted["textroom"], posted["room"], posted["from"], posted["text"]) == (
            "message", room, "alice-p", "to everyone")
        # Whispers stay private.
        await asyncio.sleep(0.5)
        assert received.empty()
    finally:
        await alice.close()
        await runner.cleanup()


@pytest.mark.asyncio
async def test_permanent_rooms_survive_a_restart(tmp_path):
    rooms_file = tmp_path / "textroom-rooms.json"
    env = {"PORTUNUS__TEXTROOM__ROOMS_FILE": str(rooms_file)}
    room = 8000 + os.getpid() % 1000
    first = Server(extra_env=env)
    try:
        async with WsJanus(first.ws_url) as j:
            await j.attach(TR)
            r = await j.message({"request": "create", "room": room, "description": "kept", "secret": "s",
                                 "history": 3, "permanent": True})
            assert data(r) == {"textroom": "created", "room": room, "permanent": True}
        saved = json.loads(rooms_file.read_text())
        assert saved[f"room-{room}"]["description"] == "kept" and saved[f"room-{room}"]["history"] == 3
    finally:
        first.stop()
    second = Server(extra_env=env)
    try:
        async with WsJanus(second.ws_url) as j:
            await j.attach(TR)
            listed = data(await j.message({"request": "list"}))["list"]
            assert [r["description"] for r in listed if r["room"] == room] == ["kept"]
            r = await j.message({"request": "destroy", "room": room, "secret": "s", "permanent": True})
            assert data(r) == {"textroom": "destroyed", "room": room, "permanent": True}
        assert f"room-{room}" not in json.loads(rooms_file.read_text())
    finally:
        second.stop()
