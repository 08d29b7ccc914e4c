"""VideoRoom remote publishers ("cascading", Janus 1.1+) with independent peers: a plain-RTP
sender in Python (VP8 from aiortc's encoder) feeding `add_remote_publisher`, a cascade of two
Portunus servers (`publish_remotely` on one, `add_remote_publisher` on the other) watched by an
aiortc subscriber, and the error paths of the six requests."""

import asyncio
import base64
import os
import random
import socket
import struct
import time

import pytest
from aiortc import RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder

from conftest import Server
from media import Pattern
from test_videoroom import Publisher, Subscriber, client, create_room, data_of, is_event, sync

VR = "janus.plugin.videoroom"

# Janus's remote-publisher SSRC scheme: 1000 + mindex * 10 + substream.
BASE_SSRC, SSRC_STEP = 1000, 10


def rtcp_keyframe_ssrcs(buf):
    """Media SSRCs of the PLIs (PT 206, FMT 1) in a compound RTCP packet."""
    out, at = [], 0
    while at + 4 <= len(buf):
        words = struct.unpack("!H", buf[at + 2:at + 4])[0]
        if buf[at + 1] == 206 and buf[at] & 0x1F == 1 and at + 12 <= len(buf):
            out.append(struct.unpack("!I", buf[at + 8:at + 12])[0])
        at += (words + 1) * 4
    return out


class RtpSender:
    """Sends a moving pattern as VP8 over plain RTP (aiortc's encoder and packetizer), with the SSRC
    a remote publisher expects for `mindex`, and answers the PLIs it gets with keyframes."""

    def __init__(self, port, rtcp_port, mindex):
        self.dest, self.rtcp_dest = ("127.0.0.1", port), ("127.0.0.1", rtcp_port)
        self.ssrc = BASE_SSRC + mindex * SSRC_STEP
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.bind(("127.0.0.1", 0))
        self.rtcp.setblocking(False)
        self.encoder = Vp8Encoder()
        self.seq = random.randint(0, 65535)
        self.plis = []
        self.sent = 0
        self.task = asyncio.ensure_future(self._run())

    def _latch(self):
        # An empty receiver report tells the server where to send its keyframe requests.
        self.rtcp.sendto(struct.pack("!BBHI", 0x80, 201, 1, 1), self.rtcp_dest)

    def _read_rtcp(self):
        while True:
            try:
                buf = self.rtcp.recv(1500)
            except BlockingIOError:
                return
            self.plis += rtcp_keyframe_ssrcs(buf)

    async def _run(self):
        pattern, n, keyframe_at = Pattern(), 0, 0
        while True:
            frame = await pattern.recv()
            if n % 30 == 0:
                self._latch()
            before = len(self.plis)
            self._read_rtcp()
            force = n == 0 or len(self.plis) > before
            payloads, ts = self.encoder.encode(frame, force)
            for i, payload in enumerate(payloads):
                marker = 0x80 if i == len(payloads) - 1 else 0
                header = struct.pack("!BBHII", 0x80, marker | 96, self.seq, ts, self.ssrc)
                self.seq = (self.seq + 1) % 65536
                self.sock.sendto(header + payload, self.dest)
                self.sent += 1
            n += 1

    def stop(self):
        self.task.cancel()
        self.sock.close()
        self.rtcp.close()


async def observer(j, room, display="watcher"):
    """A publisher that never publishes: it sees `publishers`, `unpublished` and `leaving` events."""
    await j.message({"request": "join", "ptype": "publisher", "room": room, "display": display})
    return data_of(await j.next_event(is_event("videoroom", "joined")))


async def participants(j, room):
    return (await sync(j, {"request": "listparticipants", "room": room}))["participants"]


def threads_named(server, prefix):
    """How many threads of the server process have a name starting with `prefix` (Linux)."""
    n = 0
    for tid in os.listdir(f"/proc/{server.proc.pid}/task"):
        try:
            with open(f"/proc/{server.proc.pid}/task/{tid}/comm") as f:
                n += f.read().strip().startswith(prefix)
        except OSError:
            pass
    return n


async def wait_threads(server, prefix, n, timeout=5.0):
    deadline = time.time() + timeout
    while threads_named(server, prefix) != n:
        if time.time() > deadline:
            raise AssertionError(f"{threads_named(server, prefix)} '{prefix}' threads, expected {n}")
        await asyncio.sleep(0.1)


async def wait_port_free(port, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("0.0.0.0", port))
            return
        except OSError:
            if time.time() > deadline:
                raise AssertionError(f"port {port} still bound after the remote publisher went away")
            await asyncio.sleep(0.1)
        finally:
            s.close()


@pytest.mark.asyncio
async def test_remote_publisher_fed_by_plain_rtp(server):
    sub = Subscriber()
    sender = None
    async with client(server) as oj, client(server) as sj, client(server) as mj:
        for j in (oj, sj, mj):
            await j.attach(VR)
        room = await create_room(mj, secret="s3")
        joined = await observer(oj, room)
        assert joined["publishers"] == []

        # Janus compat: mindex is the position in `streams` and mid its string, whatever is given.
        streams = [{"type": "audio", "mindex": 0, "mid": "a0", "codec": "opus", "description": "mic"},
                   {"type": "video", "mindex": 1, "mid": "v1", "codec": "vp8", "description": "cam"}]
        added = await sync(mj, {"request": "add_remote_publisher", "room": room, "secret": "s3", "id": 4242,
                                "display": "far away", "metadata": {"site": "b"}, "streams": streams,
                                "iface": "127.0.0.1"})
        assert added["videoroom"] == "success" and added["room"] == room and added["id"] == 4242
        assert added["ip"] == "127.0.0.1"
        assert added["port"] > 0 and added["rtcp_port"] > 0 and added["port"] != added["rtcp_port"]

        # Announced to the room like a local publisher, before any media.
        ev = data_of(await oj.next_event(is_event("publishers")))
        [p] = ev["publishers"]
        assert p["id"] == 4242 and p["display"] == "far away" and p["metadata"] == {"site": "b"}
        assert p["audio_codec"] == "opus" and p["video_codec"] == "vp8"
        assert [(s["type"], s["mindex"], s["mid"], s.get("description")) for s in p["streams"]] == [
            ("audio", 0, "0", "mic"), ("video", 1, "1", "cam")]
        listed = {x["id"]: x for x in await participants(mj, room)}
        assert listed[4242]["publisher"] is True and listed[4242]["display"] == "far away"

        sender = RtpSender(added["port"], added["rtcp_port"], mindex=1)
        attached = await sub.subscribe(sj, room, 4242, streams=[{"feed": 4242, "mid": "1"}])
        assert [(s["type"], s["feed_id"], s["feed_mid"]) for s in attached["streams"]] == [("video", 4242, "1")]
        video = await sub.frames("video", 15, timeout=30)
        assert (320, 240) in video.sizes
        # The subscriber's keyframe request reached the sender as an RTCP PLI for its SSRC.
        assert BASE_SSRC + 1 * SSRC_STEP in sender.plis, sender.plis

        # An update that repeats a stream keeps its subscribers; the room hears the new display.
        updated = await sync(mj, {"request": "update_remote_publisher", "room": room, "secret": "s3", "id": 4242,
                                  "display": "renamed", "streams": [streams[1]]})
        assert updated == {"videoroom": "success"}
        ev = data_of(await oj.next_event(is_event("publishers")))
        assert ev["publishers"][0]["display"] == "renamed" and len(ev["publishers"][0]["streams"]) == 2
        t = time.time()
        await asyncio.sleep(1.0)
        assert video.count_since(t) > 10

        # Packets with an SSRC for no stream (mindex 5) or below the base are dropped, not fatal.
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for ssrc in (BASE_SSRC + 5 * SSRC_STEP, 7, BASE_SSRC + 1 * SSRC_STEP + 3):
            junk.sendto(struct.pack("!BBHII", 0x80, 96, 1, 1, ssrc) + b"\x10\x00\x00", ("127.0.0.1", added["port"]))
        junk.sendto(b"\x00garbage", ("127.0.0.1", added["port"]))
        junk.close()
        t = time.time()
        await asyncio.sleep(1.0)
        assert video.count_since(t) > 10

        removed = await sync(mj, {"request": "remove_remote_publisher", "room": room, "secret": "s3", "id": 4242})
        assert removed == {"videoroom": "success"}
        assert data_of(await oj.next_event(is_event("unpublished", 4242)))["room"] == room
        assert data_of(await oj.next_event(is_event("leaving", 4242)))["room"] == room
        updated = data_of(await sj.next_event(is_event("videoroom", "updated")))
        assert [s["active"] for s in updated["streams"]] == [False]
        assert 4242 not in {x["id"] for x in await participants(mj, room)}
        # Its socket is closed with it.
        await wait_port_free(added["port"])
        sender.stop()
        await sub.close()


@pytest.mark.asyncio
async def test_cascade_between_two_servers(server):
    far = Server()
    pub, sub = Publisher(data=True), Subscriber()
    opened = asyncio.Event()
    pub.channel.on("open", opened.set)
    received = asyncio.Queue()

    @sub.pc.on("datachannel")
    def on_channel(ch):
        ch.on("message", received.put_nowait)

    try:
        async with client(server) as aj, client(server) as mj, client(far) as bj, client(far) as sj:
            for j in (aj, mj, bj, sj):
                await j.attach(VR)
            room_a = await create_room(mj, secret="sa")
            room_b = await create_room(bj, secret="sb")
            # What an orchestrator would do: publish on A, describe its streams to B, then remotize.
            await aj.message({"request": "join", "ptype": "publisher", "room": room_a, "display": "alice"})
            feed = data_of(await aj.next_event(is_event("videoroom", "joined")))["id"]
            await pub.pc.setLocalDescription(await pub.pc.createOffer())
            await aj.message({"request": "publish"}, {"type": "offer", "sdp": pub.pc.localDescription.sdp,
                                                      "trickle": False})
            ev = await aj.next_event(is_event("configured", "ok"))
            await pub.pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type="answer"))
            await aj.next_event(lambda e: e.get("janus") == "webrtcup")
            streams = [{k: s[k] for k in ("type", "mindex", "mid", "codec") if k in s} for s in data_of(ev)["streams"]]
            assert [s["type"] for s in streams] == ["audio", "video", "data"]

            # The hop is SRTP-protected with the same key on both sides.
            srtp = {"srtp_suite": 80, "srtp_crypto": base64.b64encode(bytes(range(30))).decode()}
            added = await sync(bj, dict({"request": "add_remote_publisher", "room": room_b, "secret": "sb",
                                         "display": "alice@a", "streams": streams}, **srtp))
            remote_feed = added["id"]
            remotized = await sync(mj, {"request": "publish_remotely", "room": room_a, "secret": "sa",
                                        "publisher_id": feed, "remote_id": "to-b", "host": "127.0.0.1",
                                        "port": added["port"], "rtcp_port": added["rtcp_port"], **srtp})
            assert remotized == {"videoroom": "success", "room": room_a, "id": feed, "remote_id": "to-b"}
            remotes = await sync(mj, {"request": "listremotes", "room": room_a, "secret": "sa", "publisher_id": feed})
            assert remotes == {"videoroom": "success", "room": room_a, "id": feed, "list": [
                {"remote_id": "to-b", "host": "127.0.0.1", "port": added["port"], "rtcp_port": added["rtcp_port"]}]}
            again = await sync(mj, {"request": "publish_remotely", "room": room_a, "secret": "sa",
                                    "publisher_id": feed, "remote_id": "to-b", "host": "127.0.0.1",
                                    "port": added["port"]})
            assert again["error_code"] == 436

            # B's subscriber joins late: its keyframe request must cross back to A's publisher.
            await sub.subscribe(sj, room_b, remote_feed)
            video = await sub.frames("video", 15, timeout=30)
            assert (320, 240) in video.sizes
            audio = await sub.frames("audio", 20, timeout=20)
            assert audio.count() >= 20
            # Data-channel messages cross too, in Janus's bare-RTP envelope.
            await asyncio.wait_for(opened.wait(), 10)
            for _ in range(50):
                pub.channel.send("hello from a")
                try:
                    first = await asyncio.wait_for(received.get(), 0.2)
                    break
                except asyncio.TimeoutError:
                    continue
            else:
                raise AssertionError("no data crossed the cascade")
            assert first == "hello from a"
            pub.channel.send(b"\x00\x01binary")
            while (msg := await asyncio.wait_for(received.get(), 5)) == "hello from a":
                pass
            assert msg == b"\x00\x01binary"

            assert threads_named(server, "vr-remotize") == 1
            assert threads_named(far, "vr-remote-") == 1
            gone = await sync(mj, {"request": "unpublish_remotely", "room": room_a, "secret": "sa",
                                   "publisher_id": feed, "remote_id": "to-b"})
            assert gone == {"videoroom": "success", "room": room_a, "id": feed}
            # Its RTCP listener ends with it.
            await wait_threads(server, "vr-remotize", 0)
            await asyncio.sleep(0.5)
            t = time.time()
            await asyncio.sleep(1.5)
            assert video.count_since(t) == 0, "video still flows after unpublish_remotely"
            remotes = await sync(mj, {"request": "listremotes", "room": room_a, "secret": "sa", "publisher_id": feed})
            assert remotes["list"] == []
            err = await sync(mj, {"request": "unpublish_remotely", "room": room_a, "secret": "sa",
                                  "publisher_id": feed, "remote_id": "to-b"})
            assert err["error_code"] == 428
            # A remotization also ends when its publisher stops publishing.
            again = await sync(mj, {"request": "publish_remotely", "room": room_a, "secret": "sa",
                                    "publisher_id": feed, "remote_id": "again", "host": "127.0.0.1",
                                    "port": added["port"], "rtcp_port": added["rtcp_port"]})
            assert again["remote_id"] == "again"
            await wait_threads(server, "vr-remotize", 1)
            await aj.message({"request": "unpublish"})
            await aj.next_event(is_event("unpublished", "ok"))
            await wait_threads(server, "vr-remotize", 0)
            # B still lists the remote publisher until it is removed there.
            assert remote_feed in {p["id"] for p in await participants(bj, room_b)}
            assert await sync(bj, {"request": "remove_remote_publisher", "room": room_b, "secret": "sb",
                                   "id": remote_feed}) == {"videoroom": "success"}
            await wait_threads(far, "vr-remote-", 0)
    finally:
        await sub.close()
        await pub.close()
        far.stop()


@pytest.mark.asyncio
async def test_remote_publisher_errors(server):
    async with client(server) as j:
        await j.attach(VR)
        room = await create_room(j, secret="s3", videocodec="vp8")
        streams = [{"type": "video", "codec": "vp8"}]

        def req(name, **fields):
            return dict({"request": name, "room": room, "secret": "s3"}, **fields)

        async def error(body):
            d = await sync(j, body)
            return d.get("error_code"), d.get("error")

        valid = {
            "add_remote_publisher": {"streams": streams},
            "update_remote_publisher": {"id": 1},
            "remove_remote_publisher": {"id": 1},
            "publish_remotely": {"publisher_id": 1, "remote_id": "x", "host": "127.0.0.1", "port": 5000},
            "unpublish_remotely": {"publisher_id": 1, "remote_id": "x"},
            "listremotes": {"publisher_id": 1},
        }
        for name, fields in valid.items():
            assert await error(dict(req(name, **fields), room=1)) == (426, "No such room (1)")
            assert await error(dict(req(name, **fields), secret="nope")) == (433, "Unauthorized (wrong secret)")
            no_secret = req(name, **fields)
            del no_secret["secret"]
            assert await error(no_secret) == (429, "Missing mandatory element (secret)")
        assert await error(dict(req("list_remotes"))) == (423, "Unknown request 'list_remotes'")

        # Janus checks the request before it looks for the room.
        assert await error(dict(req("add_remote_publisher"), room=1)) == (429, "Missing mandatory element (streams)")
        assert await error(req("add_remote_publisher", streams=[])) == (
            430, "Invalid element value (streams can't be empty)")
        assert (await error(req("add_remote_publisher", streams="x")))[0] == 430
        assert await error(req("add_remote_publisher", streams=[{"codec": "vp8"}])) == (
            429, "Missing mandatory element (type)")
        assert await error(req("add_remote_publisher", streams=[{"type": "bogus"}])) == (
            430, "Invalid element value (type)")
        assert await error(req("add_remote_publisher", streams=[{"type": "video"}])) == (
            429, "Missing mandatory element (codec)")
        assert await error(req("add_remote_publisher", streams=[{"type": "video", "codec": "mpeg2"}])) == (
            429, "Invalid element value (unsupported codec)")
        assert await error(req("add_remote_publisher", streams=streams, srtp_suite=81, srtp_crypto="x")) == (
            430, "Invalid SRTP suite (81)")
        assert (await error(req("add_remote_publisher", streams=streams, port=70000)))[0] == 430
        assert await error(req("add_remote_publisher", streams=streams, iface="no-such-if0")) == (
            499, "Invalid network interface configuration for remote publisher")

        # `iface` may name an interface, as in Janus: its address is bound and reported.
        on_lo = await sync(j, req("add_remote_publisher", streams=streams, iface="lo"))
        assert on_lo["ip"] == "127.0.0.1", on_lo
        assert await sync(j, req("remove_remote_publisher", id=on_lo["id"])) == {"videoroom": "success"}

        # A codec the room does not allow, or an unusable SRTP key, disables streams instead.
        odd = await sync(j, req("add_remote_publisher", streams=[{"type": "video", "codec": "h264"},
                                                                  {"type": "audio", "codec": "opus"}]))
        badkey = await sync(j, req("add_remote_publisher", streams=streams, srtp_suite=80, srtp_crypto="short"))
        async with client(server) as w:
            await w.attach(VR)
            seen = {p["id"]: p for p in (await observer(w, room))["publishers"]}
        assert [(s["type"], s["mindex"], s["mid"]) for s in seen[odd["id"]]["streams"]] == [("audio", 1, "1")]
        assert seen[badkey["id"]]["streams"] == []
        for gone in (odd, badkey):
            assert await sync(j, req("remove_remote_publisher", id=gone["id"])) == {"videoroom": "success"}

        added = await sync(j, req("add_remote_publisher", id=9, streams=streams, srtp_suite=32,
                                  srtp_crypto="YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0"))
        assert added["id"] == 9 and "ip" not in added
        assert await error(req("add_remote_publisher", id=9, streams=streams)) == (436, "User ID 9 already exists")
        # The port is taken while the remote publisher exists.
        assert await error(req("add_remote_publisher", streams=streams, port=added["port"])) == (
            499, "Could not open UDP socket for RTP stream")

        updated = await sync(j, req("update_remote_publisher", id=9, display="renamed",
                                    streams=[{"type": "audio", "mindex": 1, "codec": "opus"}]))
        assert updated == {"videoroom": "success"}
        [p] = [x for x in await participants(j, room) if x["id"] == 9]
        assert p["display"] == "renamed"

        assert await error(req("remove_remote_publisher", id=12345)) == (428, "No such remote publisher (12345)")
        assert await error(req("update_remote_publisher", id=12345)) == (428, "No such remote publisher (12345)")
        assert await error(req("remove_remote_publisher")) == (429, "Missing mandatory element (id)")
        remotize = {"remote_id": "x", "host": "127.0.0.1", "port": 5000}
        assert await error(req("publish_remotely", publisher_id=9, **remotize)) == (
            430, "Only local publishers can be remotized")
        assert await error(req("publish_remotely", publisher_id=777, **remotize)) == (428, "No such feed (777)")
        assert await error(req("publish_remotely", publisher_id=777, remote_id="x", host="127.0.0.1", port=0)) == (
            430, "Invalid element (port must be a non-zero positive integer)")
        assert await error(req("publish_remotely", publisher_id=9, host="127.0.0.1", port=5000)) == (
            429, "Missing mandatory element (remote_id)")
        assert await sync(j, req("listremotes", publisher_id=9)) == {
            "videoroom": "success", "room": room, "id": 9, "list": []}
        assert await error(req("listremotes", publisher_id=777)) == (428, "No such publisher (777)")
        assert await error(req("unpublish_remotely", publisher_id=9, remote_id="x")) == (
            428, "No such remotization (x)")

        assert await sync(j, req("remove_remote_publisher", id=9)) == {"videoroom": "success"}
        await wait_port_free(added["port"])
        assert await error(req("remove_remote_publisher", id=9)) == (428, "No such remote publisher (9)")

        # Destroying the room closes the sockets of its remote publishers.
        added = await sync(j, req("add_remote_publisher", streams=streams))
        destroyed = await sync(j, {"request": "destroy", "room": room, "secret": "s3"})
        assert destroyed["videoroom"] == "destroyed"
        await wait_port_free(added["port"])
