"""VideoRoom end to end with independent aiortc peers: a publisher, subscribers that decode its
video, unpublish/leave notifications, RTP forwarding to a UDP socket, room management errors,
and a panicking room that takes no other room down."""

import asyncio
import random
import socket
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from conftest import Server
from janus_client import HttpJanus, WsJanus
from av import VideoFrame

from media import Counter, Pattern, Tone, wait_frames

VR = "janus.plugin.videoroom"


def client(server, transport="ws"):
    return HttpJanus(server.http_url) if transport == "http" else WsJanus(server.ws_url)


def data_of(ev):
    return ev["plugindata"]["data"]


def is_event(key, value=None):
    def pred(e):
        if e.get("janus") != "event":
            return False
        d = e.get("plugindata", {}).get("data", {})
        return key in d and (value is None or d[key] == value)

    return pred


async def sync(j, body):
    r = await j.message(body)
    assert r["janus"] == "success", r
    return r["plugindata"]["data"]


async def create_room(j, **props):
    room = random.randint(1, 2**40)
    d = await sync(j, dict({"request": "create", "room": room, "description": "e2e"}, **props))
    assert d == {"videoroom": "created", "room": room, "permanent": False}
    return room


class SmallPattern(Pattern):
    """A 160x120 picture, so a subscriber can tell which publisher it is watching."""

    async def recv(self):
        frame = await super().recv()
        small = VideoFrame.from_ndarray(frame.to_ndarray(format="bgr24")[:120, :160].copy(), format="bgr24")
        small.pts, small.time_base = frame.pts, frame.time_base
        return small


class Publisher:
    """An aiortc peer sending a tone and a moving pattern into a room."""

    def __init__(self, video=Pattern, data=False, e2ee=False):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(Tone())
        self.pc.addTrack(video())
        self.channel = self.pc.createDataChannel("JanusDataChannel") if data else None
        self.e2ee = e2ee

    async def publish(self, j, room, display="pub"):
        await self.pc.setLocalDescription(await self.pc.createOffer())
        jsep = {"type": "offer", "sdp": self.pc.localDescription.sdp, "trickle": False}
        if self.e2ee:
            jsep["e2ee"] = True
        body = {"request": "joinandconfigure", "ptype": "publisher", "room": room, "display": display,
                "descriptions": [{"mid": "0", "description": "mic"}]}
        ack = await j.message(body, jsep)
        assert ack["janus"] == "ack", ack
        ev = await j.next_event(is_event("videoroom", "joined"))
        assert "jsep" in ev and ev["jsep"]["type"] == "answer", ev
        assert ev["jsep"].get("e2ee") is (True if self.e2ee else None), ev["jsep"].keys()
        d = data_of(ev)
        assert d["room"] == room and isinstance(d["private_id"], int)
        assert all(p["id"] != d["id"] for p in d["publishers"])
        assert d["audio_codec"] == "opus" and d["video_codec"] == "vp8"
        assert [s["type"] for s in d["streams"]] == ["audio", "video"] + (["data"] if self.channel else [])
        assert d["streams"][0]["description"] == "mic"
        # Janus answers a publisher's media receive-only.
        media = ev["jsep"]["sdp"].split("m=application")[0]
        assert "a=sendrecv" not in media and "a=recvonly" in media
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type="answer"))
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        return d["id"]

    async def close(self):
        await self.pc.close()


class Subscriber:
    """An aiortc peer answering the plugin's offer and decoding what it receives."""

    def __init__(self):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.counters = {}

        @self.pc.on("track")
        def on_track(track):
            self.counters[track.kind] = Counter(track)

    async def subscribe(self, j, room, feed, streams=None, legacy=None):
        """Joins with `streams` (default: all of `feed`), or in the legacy form (`feed` and the
        deprecated keys in `legacy`)."""
        body = {"feed": feed, **legacy} if legacy is not None else {"streams": streams or [{"feed": feed}]}
        ack = await j.message({"request": "join", "ptype": "subscriber", "room": room, **body})
        assert ack["janus"] == "ack", ack
        ev = await j.next_event(is_event("videoroom", "attached"))
        d = data_of(ev)
        self.offer = ev["jsep"]
        assert ev["jsep"]["type"] == "offer"
        media = ev["jsep"]["sdp"].split("m=application")[0]
        assert "a=sendonly" in media and "a=sendrecv" not in media
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        jsep = {"type": "answer", "sdp": self.pc.localDescription.sdp}
        r = await j.message({"request": "start"}, jsep)
        assert r["janus"] == "ack", r
        started = await j.next_event(is_event("started"))
        assert data_of(started) == {"videoroom": "event", "room": room, "started": "ok"}
        return d

    async def frames(self, kind, n, timeout=20.0):
        return await wait_frames(self.counters, kind, n, timeout)

    async def close(self):
        for c in self.counters.values():
            c.stop()
        await self.pc.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_publisher_to_two_subscribers(server, transport):
    pub, subs = Publisher(), [Subscriber(), Subscriber()]
    async with client(server, transport) as pj, client(server, transport) as oj, \
            client(server, transport) as s1, client(server, transport) as s2:
        await pj.attach(VR)
        room = await create_room(pj)
        # An observer joins first and is told about the publisher once its PC is up.
        await oj.attach(VR)
        await oj.message({"request": "join", "ptype": "publisher", "room": room, "display": "observer"})
        joined = data_of(await oj.next_event(is_event("videoroom", "joined")))
        assert joined["publishers"] == []
        observer_id = joined["id"]

        feed = await pub.publish(pj, room)
        ev = await oj.next_event(is_event("publishers"))
        announced = data_of(ev)["publishers"]
        assert [p["id"] for p in announced] == [feed] and announced[0]["display"] == "pub"

        for j, s in zip((s1, s2), subs):
            await j.attach(VR)
            attached = await s.subscribe(j, room, feed)
            streams = attached["streams"]
            assert [(x["type"], x["feed_id"], x["feed_mid"]) for x in streams] == [
                ("audio", feed, "0"), ("video", feed, "1")]
            assert streams[1]["feed_display"] == "pub" and all(x["active"] for x in streams)

        for s in subs:
            video = await s.frames("video", 30)
            assert video.sizes == {(320, 240)}
            await s.frames("audio", 20)

        parts = await sync(s1, {"request": "listparticipants", "room": room})
        by_id = {p["id"]: p for p in parts["participants"]}
        assert by_id[feed]["publisher"] is True and by_id[observer_id]["publisher"] is False

        # A subscriber turns video off: its video stops, the other subscriber's continues.
        await s1.message({"request": "configure", "streams": [{"mid": "1", "send": False}]})
        await s1.next_event(is_event("configured", "ok"))
        await asyncio.sleep(1.0)
        c1, c2 = subs[0].counters["video"], subs[1].counters["video"]
        t = time.time()
        await asyncio.sleep(1.5)
        assert c1.count_since(t) <= 2, "video still flowing after send:false"
        assert c2.count_since(t) > 10

        # And on again: the subscriber decodes video again within a few seconds (the packets it
        # missed leave no gap in its sequence numbers, and it restarts on a keyframe).
        await s1.message({"request": "configure", "streams": [{"mid": "1", "send": True}]})
        await s1.next_event(is_event("configured", "ok"))
        t = time.time()
        while c1.count_since(t) < 15 and time.time() < t + 5.0:
            await asyncio.sleep(0.1)
        assert c1.count_since(t) >= 15, f"{c1.count_since(t)} video frames in 5 s after send:true"
        # The same after pause and start.
        await s1.message({"request": "pause"})
        await s1.next_event(is_event("paused", "ok"))
        await asyncio.sleep(1.0)
        await s1.message({"request": "start"})
        await s1.next_event(is_event("started", "ok"))
        t = time.time()
        while c1.count_since(t) < 15 and time.time() < t + 5.0:
            await asyncio.sleep(0.1)
        assert c1.count_since(t) >= 15, f"{c1.count_since(t)} video frames in 5 s after pause and start"

        # Unpublish: subscribers see their streams go inactive, the observer is told, the
        # publisher's PC is closed by the plugin.
        await pj.message({"request": "unpublish"})
        assert data_of(await pj.next_event(is_event("unpublished", "ok")))["room"] == room
        hangup = await pj.next_event(lambda e: e.get("janus") == "hangup")
        assert hangup["reason"] == "Close PC"
        assert data_of(await oj.next_event(is_event("unpublished", feed)))["room"] == room
        updated = data_of(await s2.next_event(is_event("videoroom", "updated")))
        assert [x["active"] for x in updated["streams"]] == [False, False]

        await pj.message({"request": "leave"})
        assert data_of(await pj.next_event(is_event("leaving", "ok")))["room"] == room

        await s1.message({"request": "leave"})
        assert data_of(await s1.next_event(is_event("left", "ok"))) == {"videoroom": "event", "left": "ok"}

        await oj.message({"request": "leave"})
        await oj.next_event(is_event("leaving", "ok"))
        parts = await sync(s2, {"request": "listparticipants", "room": room})
        assert parts["participants"] == []
    for p in subs + [pub]:
        await p.close()


@pytest.mark.asyncio
async def test_subscriber_layers_out_of_range_are_refused(server):
    """Janus compat (8.2): a subscriber `configure` asking for a layer outside 0..2 gets 430 and
    changes nothing, not even the streams listed before the bad one; 0 to 2 are accepted."""
    pub, sub = Publisher(), Subscriber()
    async with client(server) as pj, client(server) as sj:
        await pj.attach(VR)
        room = await create_room(pj)
        feed = await pub.publish(pj, room)
        await sj.attach(VR)
        await sub.subscribe(sj, room, feed)
        video = await sub.frames("video", 10)
        # A negative or non-integer layer fails Janus's type check first (its parameter table
        # marks them JANUS_JSON_PARAM_POSITIVE), with the same code.
        cases = [
            ({"substream": 3}, "Invalid value (substream/spatial_layer should be 0, 1 or 2)"),
            ({"spatial_layer": -1}, "Invalid element type (spatial_layer should be a positive integer)"),
            ({"temporal": 5}, "Invalid value (temporal/temporal_layer should be 0, 1 or 2)"),
            ({"temporal_layer": 3}, "Invalid value (temporal/temporal_layer should be 0, 1 or 2)"),
            ({"substream": "1"}, "Invalid element type (substream should be a positive integer)"),
        ]
        for layer, why in cases:
            streams = [{"mid": "1", "send": False}, dict({"mid": "1"}, **layer)]
            await sj.message({"request": "configure", "streams": streams})
            ev = await sj.next_event(is_event("error_code"))
            assert data_of(ev) == {"videoroom": "event", "error_code": 430, "error": why}, ev
        # The `send: false` before each bad item was not applied: video still flows.
        t = time.time()
        await asyncio.sleep(1.5)
        assert video.count_since(t) > 10, "a refused configure changed the subscription"
        await sj.message({"request": "configure", "streams": [{"mid": "1", "substream": 2, "spatial_layer": 0}]})
        await sj.next_event(is_event("configured", "ok"))
    await sub.close()
    await pub.close()


@pytest.mark.asyncio
async def test_subscriber_configure_refuses_unknown_or_missing_mids(server):
    """Janus compat (8.2): a subscriber `configure` naming a mid the subscription lacks gets 428,
    and one with an item without `mid` among several gets 430; either way nothing is applied, not
    even the items before the bad one."""
    pub, sub = Publisher(), Subscriber()
    async with client(server) as pj, client(server) as sj:
        await pj.attach(VR)
        room = await create_room(pj)
        feed = await pub.publish(pj, room)
        await sj.attach(VR)
        await sub.subscribe(sj, room, feed)
        video = await sub.frames("video", 10)
        off = {"mid": "1", "send": False}
        cases = [
            ([off, {"mid": "7", "send": False}], 428, "No such mid '7' in subscription"),
            ([off, {"send": False}], 430, "Invalid value (mid can't be null in a streams array)"),
        ]
        for streams, code, reason in cases:
            await sj.message({"request": "configure", "streams": streams})
            ev = await sj.next_event(is_event("error_code"))
            assert data_of(ev) == {"videoroom": "event", "error_code": code, "error": reason}, ev
        t = time.time()
        await asyncio.sleep(1.5)
        assert video.count_since(t) > 10, "a refused configure changed the subscription"
    await sub.close()
    await pub.close()


@pytest.mark.asyncio
async def test_subscriber_configure_legacy_form_and_items_without_mid(server):
    """Janus compat (8.2): a subscriber `configure` without `streams` takes the per-stream keys
    (`mid`, `send`, layers, ...) from the top level of the body, checked like a `streams` item; an
    item without `mid` (legacy or alone in `streams`) is for every stream."""
    pub, sub = Publisher(), Subscriber()
    async with client(server) as pj, client(server) as sj:
        await pj.attach(VR)
        room = await create_room(pj)
        feed = await pub.publish(pj, room)
        await sj.attach(VR)
        await sub.subscribe(sj, room, feed)
        video, audio = await sub.frames("video", 10), await sub.frames("audio", 10)

        async def configure(body, video_on, audio_on):
            await sj.message(dict({"request": "configure"}, **body))
            await sj.next_event(is_event("configured", "ok"))
            await asyncio.sleep(1.0)
            t = time.time()
            await asyncio.sleep(1.5)
            # Only audio is checked to resume: video resumed after `send: false` takes many seconds
            # to decode again in aiortc, so video is only checked to stop or to keep flowing.
            if video_on is not None:
                assert video.count_since(t) > 10 if video_on else video.count_since(t) <= 2, body
            assert audio.count_since(t) > 20 if audio_on else audio.count_since(t) <= 5, body

        await configure({"mid": "0", "send": False}, video_on=True, audio_on=False)
        await configure({"send": True}, video_on=True, audio_on=True)
        await configure({"send": False}, video_on=False, audio_on=False)
        await configure({"streams": [{"send": True}]}, video_on=None, audio_on=True)
        for body, code, reason in [
            ({"mid": "7", "send": False}, 428, "No such mid '7' in subscription"),
            ({"send": False, "substream": 3}, 430, "Invalid value (substream/spatial_layer should be 0, 1 or 2)"),
        ]:
            await sj.message(dict({"request": "configure"}, **body))
            ev = await sj.next_event(is_event("error_code"))
            assert data_of(ev) == {"videoroom": "event", "error_code": code, "error": reason}, ev
        t = time.time()
        await asyncio.sleep(1.5)
        assert audio.count_since(t) > 20, "a refused configure changed the subscription"
    await sub.close()
    await pub.close()


@pytest.mark.asyncio
async def test_subscriber_legacy_join(server):
    """Janus compat (8.2): the deprecated subscriber `join` with one `feed`: `offer_audio`/
    `offer_video`/`offer_data` false leave that kind out of the offer, `audio`/`video`/`data` false
    keep it in but do not send it."""
    pub = Publisher()
    only_audio, no_audio = Subscriber(), Subscriber()
    async with client(server) as pj, client(server) as aj, client(server) as nj:
        for j in (pj, aj, nj):
            await j.attach(VR)
        room = await create_room(pj)
        feed = await pub.publish(pj, room)

        d = await only_audio.subscribe(aj, room, feed, legacy={"offer_video": False})
        assert [(s["type"], s["send"]) for s in d["streams"]] == [("audio", True)], d["streams"]
        await only_audio.frames("audio", 20)
        assert "video" not in only_audio.counters

        d = await no_audio.subscribe(nj, room, feed, legacy={"audio": False})
        assert [(s["type"], s["send"]) for s in d["streams"]] == [("audio", False), ("video", True)], d["streams"]
        await no_audio.frames("video", 5)
        assert no_audio.counters["audio"].count_since(0) <= 5, "audio sent although audio:false"

        async with client(server) as bj:
            await bj.attach(VR)
            await bj.message({"request": "join", "ptype": "subscriber", "room": room, "feed": feed, "video": "yes"})
            ev = await bj.next_event(is_event("error_code"))
            assert data_of(ev) == {"videoroom": "event", "error_code": 430,
                                   "error": "Invalid element type (video should be a boolean)"}, ev
    for peer in (pub, only_audio, no_audio):
        await peer.close()


@pytest.mark.asyncio
async def test_e2ee_publisher_is_offered_to_subscribers_as_e2ee(server):
    """Janus compat (JSEP `e2ee`, Insertable Streams): a publisher whose offer is marked end-to-end
    encrypted is answered marked, and a subscription to its streams is offered marked (so the
    subscriber sets up its decryption); a subscription to a plain publisher is not."""
    secret, plain = Publisher(e2ee=True), Publisher()
    s1, s2 = Subscriber(), Subscriber()
    async with client(server) as pj, client(server) as qj, client(server) as aj, client(server) as bj:
        for j in (pj, qj, aj, bj):
            await j.attach(VR)
        room = await create_room(pj)
        e2ee_feed = await secret.publish(pj, room, display="secret")
        plain_feed = await plain.publish(qj, room, display="plain")
        await s1.subscribe(aj, room, e2ee_feed)
        assert s1.offer.get("e2ee") is True, s1.offer.keys()
        await s1.frames("video", 5)
        await s2.subscribe(bj, room, plain_feed)
        assert "e2ee" not in s2.offer, s2.offer.keys()
    for peer in (secret, plain, s1, s2):
        await peer.close()


@pytest.mark.asyncio
async def test_require_e2ee_refuses_a_plain_publisher(server):
    """Janus compat: in a `require_e2ee` room an offer not marked `e2ee` is refused (433) and
    nothing is published; an end-to-end encrypted publisher gets in."""
    plain, secret = Publisher(), Publisher(e2ee=True)
    async with client(server) as pj, client(server) as qj:
        for j in (pj, qj):
            await j.attach(VR)
        room = await create_room(pj, require_e2ee=True)
        await plain.pc.setLocalDescription(await plain.pc.createOffer())
        jsep = {"type": "offer", "sdp": plain.pc.localDescription.sdp, "trickle": False}
        ack = await pj.message({"request": "joinandconfigure", "ptype": "publisher", "room": room}, jsep)
        assert ack["janus"] == "ack", ack
        ev = await pj.next_event(lambda e: e.get("janus") == "event")
        assert data_of(ev) == {"videoroom": "event", "error_code": 433,
                               "error": "Room requires end-to-end encrypted media"}, ev
        assert "jsep" not in ev
        feed = await secret.publish(qj, room, display="secret")
        listed = await sync(qj, {"request": "listparticipants", "room": room})
        # The refused one joined (as in Janus) but publishes nothing.
        publishing = {p["id"]: p["publisher"] for p in listed["participants"]}
        assert len(publishing) == 2 and publishing.pop(feed) is True and list(publishing.values()) == [False], listed
    for peer in (plain, secret):
        await peer.close()


@pytest.mark.asyncio
async def test_switch_to_another_publisher(server):
    big, small, sub = Publisher(), Publisher(SmallPattern), Subscriber()
    async with client(server) as a, client(server) as b, client(server) as s:
        await a.attach(VR)
        await b.attach(VR)
        await s.attach(VR)
        room = await create_room(a)
        feed_a = await big.publish(a, room, display="big")
        feed_b = await small.publish(b, room, display="small")
        await sub.subscribe(s, room, feed_a)
        video = await sub.frames("video", 15)
        assert video.sizes == {(320, 240)}

        await s.message({"request": "switch", "streams": [
            {"feed": feed_b, "mid": "1", "sub_mid": "1"}, {"feed": feed_b, "mid": "0", "sub_mid": "0"}]})
        d = data_of(await s.next_event(is_event("switched", "ok")))
        assert d["changes"] == 2 and {x["feed_id"] for x in d["streams"]} == {feed_b}
        # No renegotiation: the same m-lines now carry the other publisher, still decoding.
        t = time.time()
        deadline = t + 15
        while (160, 120) not in video.sizes and time.time() < deadline:
            await asyncio.sleep(0.2)
        assert (160, 120) in video.sizes
        t = time.time()
        await asyncio.sleep(2)
        assert video.count_since(t) > 15

        await s.message({"request": "switch", "streams": [{"feed": feed_b, "mid": "0", "sub_mid": "1"}]})
        d = data_of(await s.next_event(is_event("error_code")))
        assert d["error_code"] == 430, d
    for p in (big, small, sub):
        await p.close()


@pytest.mark.asyncio
async def test_subscribe_more_streams_and_moderate(server):
    big, small, sub = Publisher(), Publisher(SmallPattern), Subscriber()
    async with client(server) as a, client(server) as b, client(server) as s:
        for j in (a, b, s):
            await j.attach(VR)
        room = await create_room(a, secret="mod")
        feed_a = await big.publish(a, room)
        feed_b = await small.publish(b, room)
        await sub.subscribe(s, room, feed_a, streams=[{"feed": feed_a, "mid": "1"}])
        first = await sub.frames("video", 10)

        # Add the second publisher's video: a new offer with one more m-line, answered with `start`.
        await s.message({"request": "update", "subscribe": [{"feed": feed_b, "mid": "1"}]})
        ev = await s.next_event(is_event("videoroom", "updated"))
        streams = data_of(ev)["streams"]
        assert [(x["mid"], x["feed_id"]) for x in streams] == [("0", feed_a), ("1", feed_b)]
        assert ev["jsep"]["type"] == "offer"
        tracks = asyncio.Queue()
        sub.pc.on("track", lambda t: tracks.put_nowait(Counter(t)))
        await sub.pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type="offer"))
        await sub.pc.setLocalDescription(await sub.pc.createAnswer())
        await s.message({"request": "start"}, {"type": "answer", "sdp": sub.pc.localDescription.sdp})
        await s.next_event(is_event("started", "ok"))
        second = await asyncio.wait_for(tracks.get(), 10)
        await second.wait_for(10)
        assert second.sizes == {(160, 120)}

        # A moderator mutes publisher B's video: everyone is told and its frames stop.
        r = await sync(a, {"request": "moderate", "room": room, "secret": "mod", "id": feed_b, "mid": "1",
                           "mute": True})
        assert r == {"videoroom": "success"}
        d = data_of(await b.next_event(is_event("moderation")))
        assert (d["id"], d["mid"], d["moderation"]) == (feed_b, "1", "muted")
        await asyncio.sleep(1)
        t = time.time()
        await asyncio.sleep(1.5)
        assert second.count_since(t) <= 2
        assert first.count_since(t) > 10, "the other publisher keeps flowing"
        first.stop()
    for p in (big, small, sub):
        await p.close()


@pytest.mark.asyncio
async def test_h264_publisher_reaches_subscribers_as_h264(server):
    from aiortc import RTCRtpSender
    pub, sub = Publisher(), Subscriber()
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]
    for t in pub.pc.getTransceivers():
        if t.kind == "video":
            t.setCodecPreferences(h264)
    async with client(server) as pj, client(server) as sj:
        await pj.attach(VR)
        await sj.attach(VR)
        room = await create_room(pj, videocodec="h264,vp8")
        await pub.pc.setLocalDescription(await pub.pc.createOffer())
        jsep = {"type": "offer", "sdp": pub.pc.localDescription.sdp, "trickle": False}
        await pj.message({"request": "joinandconfigure", "ptype": "publisher", "room": room}, jsep)
        ev = await pj.next_event(is_event("videoroom", "joined"))
        assert data_of(ev)["video_codec"] == "h264"
        await pub.pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type="answer"))
        feed = data_of(ev)["id"]
        await pj.next_event(lambda e: e.get("janus") == "webrtcup")

        await sj.message({"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed, "mid": "1"}]})
        ev = await sj.next_event(is_event("videoroom", "attached"))
        video = ev["jsep"]["sdp"].split("m=video", 1)[1]
        # Only the publisher's codec is offered, so the subscriber cannot pick one it won't get.
        assert "H264/90000" in video and "VP8/90000" not in video
        await sub.pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type="offer"))
        await sub.pc.setLocalDescription(await sub.pc.createAnswer())
        await sj.message({"request": "start"}, {"type": "answer", "sdp": sub.pc.localDescription.sdp})
        counter = await sub.frames("video", 20)
        assert counter.sizes == {(320, 240)}
    await pub.close()
    await sub.close()


@pytest.mark.asyncio
async def test_room_codecs_decide_what_publishers_send(server):
    """A room whose `videocodec` is h264 (and `audiocodec` pcmu): a publisher offering VP8 and
    opus first is answered with only H.264 and PCMU, so it sends those and subscribers decode them."""
    pub, sub = Publisher(), Subscriber()
    async with client(server) as pj, client(server) as sj:
        await pj.attach(VR)
        await sj.attach(VR)
        room = await create_room(pj, videocodec="h264", audiocodec="pcmu")
        offer = await pub.pc.createOffer()
        assert offer.sdp.index("VP8/90000") < offer.sdp.index("H264/90000"), "aiortc prefers VP8"
        await pub.pc.setLocalDescription(offer)
        jsep = {"type": "offer", "sdp": pub.pc.localDescription.sdp, "trickle": False}
        await pj.message({"request": "joinandconfigure", "ptype": "publisher", "room": room}, jsep)
        ev = await pj.next_event(is_event("videoroom", "joined"))
        assert (data_of(ev)["video_codec"], data_of(ev)["audio_codec"]) == ("h264", "pcmu"), data_of(ev)
        answer = ev["jsep"]["sdp"]
        video, audio = answer.split("m=video", 1)[1], answer.split("m=audio", 1)[1].split("m=video")[0]
        assert "H264/90000" in video and "VP8/90000" not in video, video
        assert "PCMU/8000" in audio and "opus/48000" not in audio, audio
        await pub.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        feed = data_of(ev)["id"]
        await pj.next_event(lambda e: e.get("janus") == "webrtcup")
        await sub.subscribe(sj, room, feed)
        await sub.frames("video", 10)
        await sub.frames("audio", 10)
    await pub.close()
    await sub.close()


@pytest.mark.asyncio
async def test_join_then_configure_with_an_offer_publishes(server):
    pub, sub = Publisher(), Subscriber()
    async with client(server) as pj, client(server) as oj, client(server) as sj:
        for j in (pj, oj, sj):
            await j.attach(VR)
        room = await create_room(pj)
        await oj.message({"request": "join", "ptype": "publisher", "room": room})
        await oj.next_event(is_event("videoroom", "joined"))
        await pj.message({"request": "join", "ptype": "publisher", "room": room, "display": "late"})
        feed = data_of(await pj.next_event(is_event("videoroom", "joined")))["id"]
        await pub.pc.setLocalDescription(await pub.pc.createOffer())
        jsep = {"type": "offer", "sdp": pub.pc.localDescription.sdp, "trickle": False}
        await pj.message({"request": "configure", "audio": True, "video": True}, jsep)
        ev = await pj.next_event(is_event("configured", "ok"))
        assert ev["jsep"]["type"] == "answer"
        await pub.pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type="answer"))
        announced = data_of(await oj.next_event(is_event("publishers")))["publishers"]
        assert [p["id"] for p in announced] == [feed]
        await sub.subscribe(sj, room, feed)
        await sub.frames("video", 10)
    await pub.close()
    await sub.close()


@pytest.mark.asyncio
async def test_publisher_data_channel_reaches_subscribers(server):
    """A publisher's data channel is a stream of its feed: subscribers to it get a data channel
    in the plugin's offer and receive what the publisher sends, text and binary."""
    pub, sub = Publisher(data=True), Subscriber()
    channel = pub.channel
    opened = asyncio.Event()
    channel.on("open", opened.set)
    received = asyncio.Queue()

    @sub.pc.on("datachannel")
    def on_channel(ch):
        ch.on("message", received.put_nowait)

    async with client(server) as pj, client(server) as sj:
        await pj.attach(VR)
        await sj.attach(VR)
        room = await create_room(pj)
        feed = await pub.publish(pj, room)
        await asyncio.wait_for(opened.wait(), 10)
        d = await sub.subscribe(sj, room, feed)
        assert [s["type"] for s in d["streams"]] == ["audio", "video", "data"], d["streams"]
        await sub.frames("video", 5)
        # The subscriber's channel opens once SCTP is up; send until the first message lands.
        for _ in range(50):
            channel.send("hello subscribers")
            try:
                first = await asyncio.wait_for(received.get(), 0.2)
                break
            except asyncio.TimeoutError:
                continue
        else:
            raise AssertionError("no data reached the subscriber")
        assert first == "hello subscribers"
        channel.send(b"\x00\x01binary")
        while (msg := await asyncio.wait_for(received.get(), 5)) == "hello subscribers":
            pass
        assert msg == b"\x00\x01binary"

        # The deprecated per-kind toggle `data` (as `audio`/`video`) stops and resumes the data.
        await sj.message({"request": "configure", "data": False})
        await sj.next_event(is_event("configured", "ok"))
        for _ in range(5):
            channel.send("while off")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        while not received.empty():
            assert received.get_nowait() != "while off", "data reached the subscriber after data:false"
        await sj.message({"request": "configure", "data": True})
        await sj.next_event(is_event("configured", "ok"))
        channel.send("on again")
        assert await asyncio.wait_for(received.get(), 5) == "on again"
    await pub.close()
    await sub.close()


@pytest.mark.asyncio
async def test_talking_events_from_the_audio_level(server):
    pub = Publisher()
    async with client(server) as pj, client(server) as oj:
        await pj.attach(VR)
        await oj.attach(VR)
        room = await create_room(pj, audiolevel_event=True, audio_active_packets=25, audio_level_average=40)
        await oj.message({"request": "join", "ptype": "publisher", "room": room})
        await oj.next_event(is_event("videoroom", "joined"))
        feed = await pub.publish(pj, room)
        # The publisher's tone is loud: within a window of packets everyone hears it talking.
        d = data_of(await oj.next_event(is_event("videoroom", "talking")))
        assert (d["room"], d["id"], d["mid"]) == (room, feed, "0")
        assert 0 <= d["audio-level-dBov-avg"] < 40
        d = data_of(await pj.next_event(is_event("videoroom", "talking")))
        assert d["id"] == feed
        parts = await sync(oj, {"request": "listparticipants", "room": room})
        assert [p["talking"] for p in parts["participants"] if p["id"] == feed] == [True]
    await pub.close()


@pytest.mark.asyncio
async def test_rtp_forward_to_udp(server):
    pub = Publisher()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    async with client(server) as pj:
        await pj.attach(VR)
        room = await create_room(pj, secret="s3")
        feed = await pub.publish(pj, room)
        fwd = await sync(pj, {"request": "rtp_forward", "room": room, "publisher_id": feed, "secret": "s3",
                              "host": "127.0.0.1", "streams": [{"mid": "1", "port": port, "ssrc": 4242, "pt": 100}]})
        assert fwd["videoroom"] == "rtp_forward" and fwd["publisher_id"] == feed
        [f] = fwd["forwarders"]
        assert (f["type"], f["port"], f["ssrc"], f["pt"]) == ("video", port, 4242, 100)

        loop = asyncio.get_running_loop()
        packets = []
        deadline = time.time() + 10
        while len(packets) < 20 and time.time() < deadline:
            try:
                packets.append(await asyncio.wait_for(loop.sock_recv(sock, 2048), 1))
            except asyncio.TimeoutError:
                pass
        assert len(packets) >= 20
        for p in packets:
            assert p[0] >> 6 == 2, "RTP version 2"
            assert p[1] & 0x7F == 100
            assert int.from_bytes(p[8:12], "big") == 4242
        seqs = [int.from_bytes(p[2:4], "big") for p in packets]
        assert len(set(seqs)) == len(seqs)
        # The publisher's header extensions go on with its own ids (Janus forwards them too):
        # aiortc puts abs-send-time/mid on its video, in the one-byte (0xBEDE) profile.
        assert all(p[0] & 0x10 and p[12:14] == b"\xbe\xde" for p in packets), packets[0][:16].hex()

        # The operator sees the media plane and the rooms in /metrics.
        values = await server.metrics()
        assert float(values["portunus_rtp_in_packets_total"]) > 20
        assert float(values["portunus_rtp_in_bytes_total"]) > 1000
        assert float(values["portunus_peerconnections"]) >= 1
        assert float(values['portunus_plugin_rooms{plugin="janus.plugin.videoroom"}']) >= 2  # demo room + ours
        assert float(values['portunus_plugin_participants{plugin="janus.plugin.videoroom"}']) >= 1

        listed = await sync(pj, {"request": "listforwarders", "room": room, "secret": "s3"})
        assert listed["publishers"][0]["publisher_id"] == feed
        assert listed["publishers"][0]["forwarders"][0]["stream_id"] == f["stream_id"]

        stop = await sync(pj, {"request": "stop_rtp_forward", "room": room, "publisher_id": feed,
                               "stream_id": f["stream_id"], "secret": "s3"})
        assert stop == {"videoroom": "stop_rtp_forward", "room": room, "publisher_id": feed,
                        "stream_id": f["stream_id"]}
        listed = await sync(pj, {"request": "listforwarders", "room": room, "secret": "s3"})
        assert listed["publishers"] == []
    sock.close()
    await pub.close()


@pytest.mark.asyncio
async def test_rtp_forward_with_srtp(server):
    """`srtp_suite`/`srtp_crypto`: the forwarded packets are SRTP that libsrtp (pylibsrtp, as aiortc
    uses) decrypts with the same key; a bad key is refused before anything is forwarded."""
    import base64
    import os

    from pylibsrtp import Policy, Session

    pub = Publisher()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    key = os.urandom(30)
    async with client(server) as pj:
        await pj.attach(VR)
        room = await create_room(pj, secret="s3")
        feed = await pub.publish(pj, room)
        base = {"request": "rtp_forward", "room": room, "publisher_id": feed, "secret": "s3", "host": "127.0.0.1",
                "streams": [{"mid": "1", "port": port, "ssrc": 4343}]}
        bad = await sync(pj, dict(base, srtp_suite=80, srtp_crypto=base64.b64encode(key[:16]).decode()))
        assert "Invalid SRTP settings" in bad["error"], bad
        missing = await sync(pj, dict(base, srtp_suite=80))
        assert missing["error"] == "Missing mandatory element (srtp_crypto)", missing
        assert (await sync(pj, {"request": "listforwarders", "room": room, "secret": "s3"}))["publishers"] == []

        fwd = await sync(pj, dict(base, srtp_suite=80, srtp_crypto=base64.b64encode(key).decode()))
        [f] = fwd["forwarders"]
        assert f["srtp"] is True and f["ssrc"] == 4343, f
        session = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND,
                                        srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
        loop = asyncio.get_running_loop()
        plain = []
        deadline = time.time() + 10
        while len(plain) < 10 and time.time() < deadline:
            try:
                packet = await asyncio.wait_for(loop.sock_recv(sock, 2048), 1)
            except asyncio.TimeoutError:
                continue
            plain.append(session.unprotect(packet))  # raises if the tag or key is wrong
            assert len(packet) == len(plain[-1]) + 10, "an 80-bit tag"
        assert len(plain) >= 10
        assert all(int.from_bytes(p[8:12], "big") == 4343 for p in plain)
    sock.close()
    await pub.close()


@pytest.mark.asyncio
async def test_room_management_and_errors(server):
    async with client(server) as a, client(server) as b:
        await a.attach(VR)
        await b.attach(VR)
        room = await create_room(a, secret="adm", pin="1234", publishers=6, is_private=False)

        err = await sync(a, {"request": "create", "room": room})
        assert (err["error_code"], err["error"]) == (427, f"Room {room} already exists")
        assert await sync(a, {"request": "exists", "room": room}) == {
            "videoroom": "success", "room": room, "exists": True}
        listed = [r for r in (await sync(a, {"request": "list"}))["list"] if r["room"] == room]
        assert listed and listed[0]["pin_required"] is True and listed[0]["max_publishers"] == 6

        err = await sync(a, {"request": "bogus"})
        assert (err["error_code"], err["error"]) == (423, "Unknown request 'bogus'")
        err = await sync(a, {"nothing": 1})
        assert (err["error_code"], err["error"]) == (429, "Missing mandatory element (request)")
        err = await sync(a, {"request": "exists"})
        assert (err["error_code"], err["error"]) == (429, "Missing mandatory element (room)")
        err = await sync(a, {"request": "exists", "room": "x"})
        assert err["error_code"] == 430

        err = await sync(a, {"request": "destroy", "room": room, "secret": "nope"})
        assert (err["error_code"], err["error"]) == (433, "Unauthorized (wrong secret)")
        err = await sync(a, {"request": "edit", "room": room})
        assert (err["error_code"], err["error"]) == (429, "Missing mandatory element (secret)")
        edited = await sync(a, {"request": "edit", "room": room, "secret": "adm", "new_description": "renamed"})
        assert edited == {"videoroom": "edited", "room": room}

        async def async_error(j, body):
            await j.message(body)
            ev = await j.next_event(is_event("error_code"))
            d = data_of(ev)
            return d["error_code"], d["error"]

        assert await async_error(a, {"request": "configure"}) == (424, "Invalid request on unconfigured participant")
        assert await async_error(a, {"request": "join", "ptype": "publisher", "room": 1}) == (426, "No such room (1)")
        assert await async_error(a, {"request": "join", "ptype": "publisher", "room": room}) == (
            429, "Missing mandatory element (pin)")
        assert await async_error(a, {"request": "join", "ptype": "publisher", "room": room, "pin": "0"}) == (
            433, "Unauthorized (wrong pin)")
        assert await async_error(a, {"request": "join", "ptype": "nope", "room": room, "pin": "1234"}) == (
            430, "Invalid element (ptype)")

        await a.message({"request": "join", "ptype": "publisher", "room": room, "pin": "1234", "id": 77, "display": "a"})
        joined = data_of(await a.next_event(is_event("videoroom", "joined")))
        assert joined["id"] == 77 and joined["description"] == "renamed"
        assert await async_error(a, {"request": "join", "ptype": "publisher", "room": room, "pin": "1234"}) == (
            425, "Already in as a publisher on this handle")
        assert await async_error(b, {"request": "join", "ptype": "publisher", "room": room, "pin": "1234",
                                     "id": 77}) == (436, "User ID 77 already exists")
        assert await async_error(b, {"request": "join", "ptype": "subscriber", "room": room,
                                     "streams": [{"feed": 77}]}) == (428, "No such feed (77)")
        assert await async_error(a, {"request": "unpublish"}) == (435, "Can't unpublish, not published")

        # Kick: the kicked participant is told, and is no longer in the room.
        kicked = await sync(b, {"request": "kick", "room": room, "secret": "adm", "id": 77})
        assert kicked == {"videoroom": "success"}
        ev = data_of(await a.next_event(is_event("leaving", "ok")))
        assert ev["reason"] == "kicked"
        assert await async_error(a, {"request": "configure"}) == (424, "Invalid request on unconfigured participant")

        allowed = await sync(a, {"request": "allowed", "room": room, "secret": "adm", "action": "add",
                                 "allowed": ["t1"]})
        assert allowed == {"videoroom": "success", "room": room, "allowed": ["t1"]}
        assert await async_error(b, {"request": "join", "ptype": "publisher", "room": room, "pin": "1234",
                                     "token": "t2"}) == (433, "Unauthorized (not in the allowed list)")

        # The Admin API reaches the synchronous requests, answered by the room itself.
        import aiohttp
        import json as _json
        admin = {"janus": "message_plugin", "transaction": "mp", "plugin": VR,
                 "request": {"request": "listparticipants", "room": room}}
        async with aiohttp.ClientSession() as http:
            async with http.post(server.admin_url, data=_json.dumps(admin)) as r:
                reply = _json.loads(await r.text())
        assert reply["janus"] == "success", reply
        assert reply["response"] == {"videoroom": "participants", "room": room, "participants": []}

        destroyed = await sync(a, {"request": "destroy", "room": room, "secret": "adm"})
        assert destroyed["videoroom"] == "destroyed" and destroyed["room"] == room
        assert (await sync(a, {"request": "exists", "room": room}))["exists"] is False
        err = await sync(a, {"request": "listparticipants", "room": room})
        assert (err["error_code"], err["error"]) == (426, f"No such room ({room})")


@pytest.mark.asyncio
async def test_video_svc_only_in_vp9_or_av1_rooms(server):
    """`video_svc` holds for rooms whose one video codec is VP9 (`list` shows it), else it is
    dropped as Janus does; AV1-only rooms keep it too (beyond Janus 1.1). (The SVC media path is
    tested with Chromium in tests/browser.)"""
    async with client(server) as a:
        await a.attach(VR)
        svc_room = await create_room(a, videocodec="vp9", video_svc=True)
        av1_room = await create_room(a, videocodec="av1", video_svc=True)
        vp8_room = await create_room(a, videocodec="vp8", video_svc=True)
        mixed_room = await create_room(a, videocodec="av1,vp9", video_svc=True)
        rooms = {r["room"]: r for r in (await sync(a, {"request": "list"}))["list"]}
        assert rooms[svc_room].get("video_svc") is True, rooms[svc_room]
        assert rooms[av1_room].get("video_svc") is True, rooms[av1_room]
        assert rooms[av1_room]["videocodec"] == "av1", rooms[av1_room]
        assert "video_svc" not in rooms[vp8_room], rooms[vp8_room]
        assert "video_svc" not in rooms[mixed_room], rooms[mixed_room]


@pytest.mark.asyncio
async def test_permanent_rooms_survive_a_restart(tmp_path):
    import json as _json
    rooms_file = tmp_path / "videoroom-rooms.json"
    env = {"PORTUNUS__VIDEOROOM__ROOMS_FILE": str(rooms_file)}
    first = Server(extra_env=env)
    try:
        async with client(first) as j:
            await j.attach(VR)
            room = random.randint(1, 2**40)
            d = await sync(j, {"request": "create", "room": room, "permanent": True, "secret": "p",
                               "description": "kept", "publishers": 4})
            assert d == {"videoroom": "created", "room": room, "permanent": True}
            edited = await sync(j, {"request": "edit", "room": room, "secret": "p", "new_description": "kept2",
                                    "permanent": True})
            assert edited == {"videoroom": "edited", "room": room}
        saved = _json.loads(rooms_file.read_text())
        assert saved[f"room-{room}"]["description"] == "kept2" and saved[f"room-{room}"]["publishers"] == 4
    finally:
        first.stop()
    second = Server(extra_env=env)
    try:
        async with client(second) as j:
            await j.attach(VR)
            listed = [r for r in (await sync(j, {"request": "list"}))["list"] if r["room"] == room]
            assert listed and listed[0]["description"] == "kept2" and listed[0]["max_publishers"] == 4
            d = await sync(j, {"request": "destroy", "room": room, "secret": "p", "permanent": True})
            assert d == {"videoroom": "destroyed", "room": room, "permanent": True}
        assert f"room-{room}" not in _json.loads(rooms_file.read_text())
    finally:
        second.stop()


@pytest.mark.asyncio
async def test_a_panicking_room_ends_alone(fault_server):
    pubs, subs = [Publisher(), Publisher()], [Subscriber(), Subscriber()]
    async with client(fault_server) as pa, client(fault_server) as pb, \
            client(fault_server) as sa, client(fault_server) as sb:
        rooms = []
        for j, p, sj, s in ((pa, pubs[0], sa, subs[0]), (pb, pubs[1], sb, subs[1])):
            await j.attach(VR)
            await sj.attach(VR)
            room = await create_room(j)
            feed = await p.publish(j, room)
            await s.subscribe(sj, room, feed)
            await s.frames("video", 10)
            rooms.append(room)

        err = await sync(pa, {"request": "portunus_fault", "room": rooms[0]})
        assert err["error_code"] == 499, err
        # Everyone in the broken room is told and loses media; the room is gone.
        for j in (pa, sa):
            ev = await j.next_event(is_event("videoroom", "destroyed"))
            assert data_of(ev)["room"] == rooms[0]
        await sa.next_event(lambda e: e.get("janus") == "hangup")
        assert (await sync(pb, {"request": "exists", "room": rooms[0]}))["exists"] is False

        # The other room keeps forwarding.
        t = time.time()
        await asyncio.sleep(2)
        assert subs[1].counters["video"].count_since(t) > 20
        assert (await sync(pb, {"request": "listparticipants", "room": rooms[1]}))["participants"]

        # The broken room can be created again and used.
        again = await sync(pb, {"request": "create", "room": rooms[0]})
        assert again["videoroom"] == "created"
    for p in pubs + subs:
        await p.close()
