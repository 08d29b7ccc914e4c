"""VideoCall end to end: two independent aiortc peers register, call each other through Portunus
and decode each other's audio and video; data channels are relayed; `set` gates what is relayed;
hangups, detaches and refused calls behave as in Janus (reference 8.6, codes 2.2)."""

import asyncio
import random
import string
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from janus_client import HttpJanus, WsJanus
from media import Counter, Pattern, Tone, wait_frames

VC = "janus.plugin.videocall"


def client(server, transport="ws"):
    return HttpJanus(server.http_url) if transport == "http" else WsJanus(server.ws_url)


def name(prefix):
    """A username no other test of this module uses."""
    return prefix + "-" + "".join(random.choice(string.ascii_lowercase) for _ in range(6))


def vc_data(ev):
    return ev.get("plugindata", {}).get("data", {})


def vc_result(event):
    """Predicate: a VideoCall event whose result is `event` (e.g. "calling")."""

    def pred(e):
        if e.get("janus") != "event":
            return False
        r = vc_data(e).get("result")
        return isinstance(r, dict) and r.get("event") == event

    return pred


def vc_error(e):
    return e.get("janus") == "event" and "error_code" in vc_data(e)


async def ask(j, body, jsep=None, pred=None):
    """Sends a request (always acked) and returns the VideoCall event answering it."""
    r = await j.message(body, jsep)
    assert r["janus"] == "ack", r
    pred = pred or (lambda e: e.get("janus") == "event" and vc_data(e).get("videocall") == "event")
    return await j.next_event(pred)


async def expect_error(j, body, code, text, jsep=None):
    ev = await ask(j, body, jsep, vc_error)
    assert vc_data(ev) == {"videocall": "event", "error_code": code, "error": text}, ev
    return ev


async def register(j, username):
    await j.attach(VC)
    ev = await ask(j, {"request": "register", "username": username}, pred=vc_result("registered"))
    assert vc_data(ev) == {"videocall": "event", "result": {"event": "registered", "username": username}}


async def listed(j):
    ev = await ask(j, {"request": "list"}, pred=lambda e: "list" in (vc_data(e).get("result") or {}))
    return vc_data(ev)["result"]["list"]


class CallPeer:
    """An aiortc PeerConnection sending a tone and a moving pattern, counting what it decodes."""

    def __init__(self):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.counters = {}
        self.received = asyncio.Queue()
        self.channel = None
        self.channels = asyncio.Queue()

        @self.pc.on("track")
        def on_track(track):
            self.counters[track.kind] = Counter(track)

        @self.pc.on("datachannel")
        def on_dc(dc):
            dc.on("message", lambda m: self.received.put_nowait(m))
            self.channels.put_nowait(dc)

    async def offer(self, data=True):
        self.pc.addTrack(Tone())
        self.pc.addTrack(Pattern())
        if data:
            self.channel = self.pc.createDataChannel("JanusDataChannel")
            self.channel.on("message", lambda m: self.received.put_nowait(m))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"type": "offer", "sdp": self.pc.localDescription.sdp, "trickle": False}

    async def answer_offer(self, jsep):
        """Answers a plugin offer, sending our own media on every offered transceiver."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="offer"))
        for t in self.pc.getTransceivers():
            t.sender.replaceTrack(Tone() if t.kind == "audio" else Pattern())
            t.direction = "sendrecv"
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return {"type": "answer", "sdp": self.pc.localDescription.sdp, "trickle": False}

    async def accept_answer(self, jsep):
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="answer"))

    async def open_channel(self, timeout=10):
        if self.channel is None:
            self.channel = await asyncio.wait_for(self.channels.get(), timeout)
        deadline = time.time() + timeout
        while self.channel.readyState != "open":
            assert time.time() < deadline, "data channel did not open"
            await asyncio.sleep(0.05)
        return self.channel

    async def wait_frames(self, kind, n, timeout=20.0):
        return await wait_frames(self.counters, kind, n, timeout)

    async def close(self):
        for c in self.counters.values():
            c.stop()
        await self.pc.close()


async def place_call(caller_j, caller, callee_j, callee, callee_name, caller_name):
    """caller calls callee, callee accepts; returns once both PeerConnections are up."""
    offer = await caller.offer()
    ev = await ask(caller_j, {"request": "call", "username": callee_name}, offer, vc_result("calling"))
    assert vc_data(ev)["result"]["username"] == callee_name
    inc = await callee_j.next_event(vc_result("incomingcall"))
    assert vc_data(inc) == {"videocall": "event", "result": {"event": "incomingcall", "username": caller_name}}
    assert inc["jsep"]["type"] == "offer"
    sdp = inc["jsep"]["sdp"]
    assert "m=audio" in sdp and "m=video" in sdp and "m=application" in sdp, sdp
    answer = await callee.answer_offer(inc["jsep"])
    ev = await ask(callee_j, {"request": "accept"}, answer, vc_result("accepted"))
    assert vc_data(ev) == {"videocall": "event", "result": {"event": "accepted"}}
    acc = await caller_j.next_event(vc_result("accepted"))
    assert vc_data(acc)["result"] == {"event": "accepted", "username": callee_name}
    assert acc["jsep"]["type"] == "answer"
    await caller.accept_answer(acc["jsep"])
    await caller_j.next_event(lambda e: e.get("janus") == "webrtcup", timeout=20)
    await callee_j.next_event(lambda e: e.get("janus") == "webrtcup", timeout=20)


@pytest.mark.asyncio
async def test_call_media_set_hangup_and_call_back(server):
    alice_name, bob_name = name("alice"), name("bob")
    async with client(server, "ws") as aj, client(server, "http") as bj:
        await register(aj, alice_name)
        await register(bj, bob_name)
        users = await listed(aj)
        assert alice_name in users and bob_name in users, users

        alice, bob = CallPeer(), CallPeer()
        await place_call(aj, alice, bj, bob, bob_name, alice_name)

        # Each side decodes the other's video and audio.
        bob_video = await bob.wait_frames("video", 15)
        await bob.wait_frames("audio", 25)
        alice_video = await alice.wait_frames("video", 15)
        await alice.wait_frames("audio", 25)
        assert (320, 240) in bob_video.sizes and (320, 240) in alice_video.sizes

        # Data channels are relayed both ways (the callee's channel is the one the server offered).
        (await alice.open_channel()).send("hello-bob")
        assert await asyncio.wait_for(bob.received.get(), 10) == "hello-bob"
        (await bob.open_channel()).send(b"\x00hello-alice\xff")
        assert await asyncio.wait_for(alice.received.get(), 10) == b"\x00hello-alice\xff"

        # Admin handle_info shows the call.
        info = await server.admin({"janus": "handle_info", "session_id": aj.session_id, "handle_id": aj.handle_id})
        ps = info["info"]["plugin_specific"]
        assert ps["state"] == "incall" and ps["username"] == alice_name and ps["peer"] == bob_name, ps
        assert ps["audio_active"] is True and ps["video_active"] is True

        # alice stops relaying her video: bob's video stops, his audio and alice's video go on.
        ev = await ask(aj, {"request": "set", "video": False, "bitrate": 256000}, pred=vc_result("set"))
        assert vc_data(ev) == {"videocall": "event", "result": {"event": "set"}}
        await asyncio.sleep(1.0)
        t = time.time()
        bob_audio = bob.counters["audio"]
        audio_before, alice_before = bob_audio.count(), alice_video.count()
        await asyncio.sleep(2.0)
        assert bob_video.count_since(t) <= 2, f"video kept flowing: {bob_video.count_since(t)} frames"
        assert bob_audio.count() > audio_before + 20, "bob must keep hearing alice"
        assert alice_video.count() > alice_before + 10, "alice must keep seeing bob"
        info = await server.admin({"janus": "handle_info", "session_id": aj.session_id, "handle_id": aj.handle_id})
        ps = info["info"]["plugin_specific"]
        assert ps["video_active"] is False and ps["bitrate"] == 256000, ps
        # Back on: a keyframe request gets bob's decoder going again.
        await ask(aj, {"request": "set", "video": True}, pred=vc_result("set"))
        await bob_video.wait_for(bob_video.count() + 10)

        # Recording is refused clearly, the call is unaffected.
        await expect_error(aj, {"request": "set", "record": True}, 474, "Recording is not available in this build yet")

        # alice hangs up: both get `hangup` with her username, both PeerConnections close.
        ev = await ask(aj, {"request": "hangup"}, pred=vc_result("hangup"))
        assert vc_data(ev)["result"] == {"event": "hangup", "username": alice_name, "reason": "Explicit hangup"}
        ev = await bj.next_event(vc_result("hangup"))
        assert vc_data(ev)["result"] == {"event": "hangup", "username": alice_name, "reason": "We did the hangup"}
        for j in (aj, bj):
            h = await j.next_event(lambda e: e.get("janus") == "hangup")
            assert h["reason"] == "Close PC"
        await alice.close()
        await bob.close()

        # Both can call again, the other way round, on the same handles.
        alice, bob = CallPeer(), CallPeer()
        await place_call(bj, bob, aj, alice, alice_name, bob_name)
        await alice.wait_frames("video", 10)
        await bob.wait_frames("video", 10)

        # bob's handle goes away mid-call: alice is told, her PeerConnection closes, bob's
        # username is free again.
        r = await bj.request("detach")
        assert r["janus"] == "success", r
        ev = await aj.next_event(vc_result("hangup"))
        assert vc_data(ev)["result"] == {"event": "hangup", "username": bob_name, "reason": "Remote WebRTC hangup"}
        h = await aj.next_event(lambda e: e.get("janus") == "hangup")
        assert h["reason"] == "Close PC"
        assert bob_name not in await listed(aj)
        await alice.close()
        await bob.close()

    # Nothing is left behind: no PeerConnection lingers once both sessions are gone.
    deadline = time.time() + 15
    while True:
        st = (await server.admin({"janus": "get_status"}))["status"]
        if st["peerconnections"] == 0:
            break
        assert time.time() < deadline, st
        await asyncio.sleep(0.2)


def video_codecs(sdp):
    """The codec names of the first video m-line of an SDP, in order."""
    section = sdp.split("m=video ")[1].split("\r\nm=")[0]
    pts = section.split("\r\n")[0].split()[2:]
    names = dict(line[len("a=rtpmap:"):].split(" ", 1) for line in section.split("\r\n")
                 if line.startswith("a=rtpmap:"))
    return [names[pt].split("/")[0].lower() for pt in pts if pt in names]


def prefer_av1(sdp):
    """The offer with AV1 (payload type 45) listed first on its video m-line."""
    head, video = sdp.split("m=video ", 1)
    mline, rest = video.split("\r\n", 1)
    port, proto, *pts = mline.split()
    return f"{head}m=video {port} {proto} 45 {' '.join(pts)}\r\na=rtpmap:45 AV1/90000\r\n{rest}"


@pytest.mark.asyncio
async def test_e2ee_call_is_offered_to_the_callee_as_e2ee(server):
    """Janus compat (JSEP `e2ee`, Insertable Streams): a caller whose offer is marked end-to-end
    encrypted gets its callee offered an e2ee JSEP (so the callee sets up its decryption), and
    the callee's answer reaches the caller marked too; an unmarked call stays unmarked."""
    a, b = name("ava"), name("bea")
    async with client(server) as aj, client(server) as bj:
        await register(aj, a)
        await register(bj, b)
        caller, callee = CallPeer(), CallPeer()
        offer = dict(await caller.offer(), e2ee=True)
        await ask(aj, {"request": "call", "username": b}, offer, vc_result("calling"))
        inc = await bj.next_event(vc_result("incomingcall"))
        assert inc["jsep"]["type"] == "offer" and inc["jsep"].get("e2ee") is True, inc["jsep"].keys()
        answer = dict(await callee.answer_offer(inc["jsep"]), e2ee=True)
        await ask(bj, {"request": "accept"}, answer, vc_result("accepted"))
        acc = await aj.next_event(vc_result("accepted"))
        assert acc["jsep"]["type"] == "answer" and acc["jsep"].get("e2ee") is True, acc["jsep"].keys()
        await ask(aj, {"request": "hangup"}, pred=vc_result("hangup"))
        await bj.next_event(vc_result("hangup"))
        await caller.close()
        await callee.close()

        caller = CallPeer()
        await ask(aj, {"request": "call", "username": b}, await caller.offer(), vc_result("calling"))
        inc = await bj.next_event(vc_result("incomingcall"))
        assert "e2ee" not in inc["jsep"], inc["jsep"].keys()
        await ask(aj, {"request": "hangup"}, pred=vc_result("hangup"))
        await bj.next_event(vc_result("hangup"))
        await caller.close()


@pytest.mark.asyncio
async def test_av1_offer_reaches_the_callee_as_av1(server):
    """AV1 is relayed like VP8, H.264 and VP9 (as VideoRoom and EchoTest take it): a caller whose
    offer prefers AV1 is answered with AV1, so the callee is offered AV1 too, not another codec."""
    a, b = name("ava"), name("bea")
    async with client(server) as aj, client(server) as bj:
        await register(aj, a)
        await register(bj, b)
        caller = CallPeer()
        offer = await caller.offer()
        offer["sdp"] = prefer_av1(offer["sdp"])
        assert video_codecs(offer["sdp"])[0] == "av1"
        await ask(aj, {"request": "call", "username": b}, offer, vc_result("calling"))
        inc = await bj.next_event(vc_result("incomingcall"))
        offered = video_codecs(inc["jsep"]["sdp"])
        assert offered[0] == "av1" and "vp8" not in offered, inc["jsep"]["sdp"]
        await ask(aj, {"request": "hangup"}, pred=vc_result("hangup"))
        await bj.next_event(vc_result("hangup"))
        await caller.close()


@pytest.mark.asyncio
async def test_errors(server):
    a, b, c = name("ann"), name("ben"), name("cat")
    async with client(server) as aj, client(server) as bj, client(server) as cj, client(server) as xj:
        # Not registered yet.
        await xj.attach(VC)
        await expect_error(xj, {"request": "call", "username": a}, 473, "Register a username first")
        await expect_error(xj, {}, 475, "Missing mandatory element (request)")
        await expect_error(xj, {"request": 3}, 474, "Invalid element type (request should be a string)")
        await expect_error(xj, {"request": "dance"}, 472, "Unknown request (dance)")
        await expect_error(xj, {"request": "register"}, 475, "Missing mandatory element (username)")

        await register(aj, a)
        await register(bj, b)
        await register(cj, c)
        await expect_error(aj, {"request": "register", "username": "other"}, 477, f"Already registered ({a})")
        await expect_error(xj, {"request": "register", "username": a}, 476, f"Username '{a}' already taken")
        await expect_error(aj, {"request": "call", "username": a}, 479,
                           "You can't call yourself... use the EchoTest for that")
        await expect_error(aj, {"request": "call", "username": "nobody-here"}, 478,
                           "Username 'nobody-here' doesn't exist")
        await expect_error(aj, {"request": "call", "username": b}, 482, "Missing SDP")
        await expect_error(bj, {"request": "accept"}, 481, "No incoming call to accept")
        await expect_error(aj, {"request": "set", "substream": 5}, 474, "Invalid value (substream should be 0, 1 or 2)")
        await expect_error(aj, {"request": "set", "bitrate": "fast"}, 474,
                           "Invalid element type (bitrate should be a positive integer)")

        # A refused call with an offer also closes the caller's PeerConnection (Janus compat).
        p = CallPeer()
        await expect_error(xj, {"request": "call", "username": b}, 473, "Register a username first", await p.offer())
        h = await xj.next_event(lambda e: e.get("janus") == "hangup")
        assert h["reason"] == "Close PC"
        await p.close()

        # ann calls ben: ringing. cat calling ben finds him busy; ann can't call twice.
        pa = CallPeer()
        await ask(aj, {"request": "call", "username": b}, await pa.offer(), vc_result("calling"))
        inc = await bj.next_event(vc_result("incomingcall"))
        assert inc["jsep"]["type"] == "offer"
        pc = CallPeer()
        ev = await ask(cj, {"request": "call", "username": b}, await pc.offer(), vc_result("hangup"))
        assert vc_data(ev)["result"] == {"event": "hangup", "username": c, "reason": "User busy"}
        await pc.close()
        await expect_error(aj, {"request": "call", "username": c}, 480, "Already in a call")
        # ... which, as in Janus, also closed ann's PeerConnection: the call attempt is over
        # for ben too.
        ev = await bj.next_event(vc_result("hangup"), timeout=20)
        assert vc_data(ev)["result"]["username"] == a
        await pa.close()

        # A fresh attempt that ben declines with a reason of his own.
        pa = CallPeer()
        await ask(aj, {"request": "call", "username": b}, await pa.offer(), vc_result("calling"))
        await bj.next_event(vc_result("incomingcall"))
        ev = await ask(bj, {"request": "hangup", "reason": "Not now"}, pred=vc_result("hangup"))
        assert vc_data(ev)["result"] == {"event": "hangup", "username": b, "reason": "Explicit hangup"}
        ev = await aj.next_event(vc_result("hangup"))
        assert vc_data(ev)["result"] == {"event": "hangup", "username": b, "reason": "Not now"}
        await expect_error(bj, {"request": "accept"}, 481, "No incoming call to accept")
        await pa.close()


@pytest.mark.asyncio
async def test_renegotiation_and_peer_going_away(server):
    a, b = name("rita"), name("rob")
    async with client(server) as aj, client(server, "http") as bj:
        await register(aj, a)
        await register(bj, b)
        alice, bob = CallPeer(), CallPeer()
        await place_call(aj, alice, bj, bob, b, a)
        await bob.wait_frames("video", 10)
        await alice.wait_frames("video", 10)

        # alice renegotiates with `set` + offer: bob gets `update` with an offer of ours, answers
        # with `set` + answer, then alice gets `update` with the answer (Janus's flow).
        await alice.pc.setLocalDescription(await alice.pc.createOffer())
        offer = {"type": "offer", "sdp": alice.pc.localDescription.sdp, "trickle": False}
        ev = await ask(aj, {"request": "set"}, offer, vc_result("set"))
        assert "jsep" not in ev
        upd = await bj.next_event(vc_result("update"))
        assert vc_data(upd) == {"videocall": "event", "result": {"event": "update"}}
        assert upd["jsep"]["type"] == "offer"
        await bob.pc.setRemoteDescription(RTCSessionDescription(sdp=upd["jsep"]["sdp"], type="offer"))
        await bob.pc.setLocalDescription(await bob.pc.createAnswer())
        answer = {"type": "answer", "sdp": bob.pc.localDescription.sdp, "trickle": False}
        await ask(bj, {"request": "set"}, answer, vc_result("set"))
        upd = await aj.next_event(vc_result("update"))
        assert upd["jsep"]["type"] == "answer"
        await alice.accept_answer(upd["jsep"])
        for peer in (alice, bob):
            c = peer.counters["video"]
            await c.wait_for(c.count() + 10)
        info = await server.admin({"janus": "handle_info", "session_id": bj.session_id, "handle_id": bj.handle_id})
        assert info["info"]["plugin_specific"]["peer"] == a

        # bob's peer vanishes without a word: alice gets `hangup` once the server notices.
        await bob.close()
        ev = await aj.next_event(vc_result("hangup"), timeout=40)
        assert vc_data(ev)["result"] == {"event": "hangup", "username": b, "reason": "Remote WebRTC hangup"}
        h = await aj.next_event(lambda e: e.get("janus") == "hangup")
        assert h["reason"] == "Close PC"
        h = await bj.next_event(lambda e: e.get("janus") == "hangup")
        assert h["reason"] in ("DTLS alert", "ICE failed")
        await alice.close()
        # Both are free again.
        info = await server.admin({"janus": "handle_info", "session_id": aj.session_id, "handle_id": aj.handle_id})
        assert info["info"]["plugin_specific"]["state"] == "idle"
