"""EchoTest end to end: an aiortc peer negotiates through the Janus API (HTTP and WebSocket)
and checks that its own audio, video and data come back decoded."""

import asyncio
import re
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from janus_client import HttpJanus, WsJanus
from media import Counter, Pattern, Tone

ECHO = "janus.plugin.echotest"


def client(server, transport):
    return HttpJanus(server.http_url) if transport == "http" else WsJanus(server.ws_url)


class Peer:
    """An aiortc PeerConnection with a tone, a moving pattern and a data channel."""

    def __init__(self, data=True):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(Tone())
        self.pc.addTrack(Pattern())
        self.counters = {}
        self.received = asyncio.Queue()
        self.channel = self.pc.createDataChannel("JanusDataChannel") if data else None
        if self.channel:
            self.channel.on("message", lambda m: self.received.put_nowait(m))

        @self.pc.on("track")
        def on_track(track):
            self.counters[track.kind] = Counter(track)

    async def counter(self, kind, timeout=10.0):
        """The frame counter of the remote track of `kind`, once that track has arrived."""
        deadline = time.time() + timeout
        while kind not in self.counters:
            if time.time() > deadline:
                raise TimeoutError(f"no remote {kind} track after {timeout}s")
            await asyncio.sleep(0.1)
        return self.counters[kind]

    async def wait_frames(self, kind, n):
        """Waits until `n` frames of `kind` were decoded; returns the counter."""
        c = await self.counter(kind)
        await c.wait_for(n)
        return c

    async def offer(self):
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"type": "offer", "sdp": self.pc.localDescription.sdp}

    async def answer(self, jsep):
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type=jsep["type"]))

    async def close(self):
        for c in self.counters.values():
            c.stop()
        await self.pc.close()


async def negotiate(j, peer, body=None, trickle=False):
    await j.attach(ECHO)
    jsep = await peer.offer()
    jsep["trickle"] = trickle
    ack = await j.message(body or {"audio": True, "video": True}, jsep)
    assert ack["janus"] == "ack", ack
    ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
    assert ev["plugindata"]["data"] == {"echotest": "event", "result": "ok"}
    assert ev["jsep"]["type"] == "answer"
    assert "a=end-of-candidates" in ev["jsep"]["sdp"], "half-trickle: candidates in the answer"
    await peer.answer(ev["jsep"])
    return ev


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", ["http", "ws"])
async def test_media_and_data_come_back(server, transport):
    peer = Peer()
    async with client(server, transport) as j:
        await negotiate(j, peer)
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        kinds = set()
        while kinds != {"audio", "video"}:
            ev = await j.next_event(lambda e: e.get("janus") == "media")
            assert ev["receiving"] is True
            kinds.add(ev["type"])
        await peer.wait_frames("video", 15)
        await peer.wait_frames("audio", 25)
        assert (320, 240) in peer.counters["video"].sizes

        # Data: text and binary round trip.
        deadline = time.time() + 10
        while peer.channel.readyState != "open" and time.time() < deadline:
            await asyncio.sleep(0.05)
        peer.channel.send("echo-ping")
        assert await asyncio.wait_for(peer.received.get(), 10) == "echo-ping"
        peer.channel.send(b"\x00\x01binary\xff")
        assert await asyncio.wait_for(peer.received.get(), 10) == b"\x00\x01binary\xff"
        await peer.close()


@pytest.mark.asyncio
async def test_video_false_stops_video(server):
    peer = Peer(data=False)
    async with client(server, "ws") as j:
        await negotiate(j, peer)
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        video = await peer.wait_frames("video", 10)
        r = await j.message({"video": False})
        assert r["janus"] == "ack"
        await j.next_event(lambda e: e.get("janus") == "event" and e["plugindata"]["data"].get("result") == "ok")
        await asyncio.sleep(1.0)
        t = time.time()
        await asyncio.sleep(2.0)
        assert video.count_since(t) <= 2, f"video kept flowing: {video.count_since(t)} frames"
        audio = peer.counters["audio"]
        before = audio.count()
        await asyncio.sleep(1.0)
        assert audio.count() > before, "audio must keep flowing"
        await j.message({"video": True})
        await video.wait_for(video.count() + 5)
        await peer.close()


@pytest.mark.asyncio
async def test_trickled_candidates(server):
    """Offer without candidates, then send them as trickle requests (array + completed)."""
    peer = Peer(data=False)
    async with client(server, "http") as j:
        await j.attach(ECHO)
        offer = await peer.offer()
        lines = offer["sdp"].splitlines()
        cands = [l[2:] for l in lines if l.startswith("a=candidate:")]
        stripped = "\r\n".join(l for l in lines if not l.startswith("a=candidate:") and l != "a=end-of-candidates") + "\r\n"
        assert cands, "aiortc gathered no candidate"
        ack = await j.message({"audio": True, "video": True}, {"type": "offer", "sdp": stripped})
        assert ack["janus"] == "ack"
        r = await j.request("trickle", candidates=[{"sdpMid": "0", "sdpMLineIndex": 0, "candidate": c} for c in cands])
        assert r["janus"] == "ack", r
        r = await j.request("trickle", candidate={"completed": True})
        assert r["janus"] == "ack", r
        ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
        await peer.answer(ev["jsep"])
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        await peer.wait_frames("video", 10)
        await peer.close()


@pytest.mark.asyncio
async def test_hangup_request_then_renegotiate(server):
    async with client(server, "ws") as j:
        peer = Peer(data=False)
        await negotiate(j, peer)
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        r = await j.request("hangup")
        assert r["janus"] == "success"
        done = await j.next_event(lambda e: e.get("janus") == "event" and e["plugindata"]["data"].get("result") == "done")
        assert done["sender"] == j.handle_id
        hang = await j.next_event(lambda e: e.get("janus") == "hangup")
        assert hang["reason"] == "Janus API"
        await peer.close()
        # The handle is usable for a new negotiation.
        peer2 = Peer(data=False)
        jsep = await peer2.offer()
        await j.message({"audio": True, "video": True}, jsep)
        ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
        await peer2.answer(ev["jsep"])
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        await peer2.close()


@pytest.mark.asyncio
async def test_hangup_when_peer_goes_away(server):
    async with client(server, "ws") as j:
        peer = Peer(data=False)
        await negotiate(j, peer)
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        await peer.close()
        # No close_notify from aiortc reaches the server (none in its DTLS log), so this is the
        # ICE agent's verdict: disconnected after 5 s without checks, failed 25 s later. A
        # 30 s wait sat exactly on that and failed under CI load.
        hang = await j.next_event(lambda e: e.get("janus") == "hangup", timeout=45)
        assert hang["reason"] in ("DTLS alert", "ICE failed")


@pytest.mark.asyncio
async def test_bad_sdp_is_refused_and_handle_survives(server):
    async with client(server, "http") as j:
        await j.attach(ECHO)
        r = await j.message({"audio": True}, {"type": "offer", "sdp": "garbage"})
        assert r["error"] == {"code": 465, "reason": "Invalid SDP (doesn't start with v=)"}
        peer = Peer(data=False)
        offer = await peer.offer()
        no_ice = "\r\n".join(l for l in offer["sdp"].splitlines() if not l.startswith("a=ice-ufrag")) + "\r\n"
        r = await j.message({"audio": True}, {"type": "offer", "sdp": no_ice})
        assert r["error"]["code"] == 465 and "ICE" in r["error"]["reason"], r
        no_fp = "\r\n".join(l for l in offer["sdp"].splitlines() if not l.startswith("a=fingerprint")) + "\r\n"
        r = await j.message({"audio": True}, {"type": "offer", "sdp": no_fp})
        assert r["error"]["code"] == 465 and "fingerprint" in r["error"]["reason"], r
        r = await j.message({"audio": True}, {"type": "answer", "sdp": offer["sdp"]})
        assert r["error"] == {"code": 469, "reason": "Unexpected ANSWER (did we offer?)"}
        # Still usable.
        ev_ack = await j.message({"audio": True, "video": True}, offer)
        assert ev_ack["janus"] == "ack"
        ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
        await peer.answer(ev["jsep"])
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        await peer.close()


@pytest.mark.asyncio
async def test_renegotiation_keeps_media_flowing(server):
    """The client offers again on a live PeerConnection (update): media keeps coming back."""
    async with client(server, "ws") as j:
        peer = Peer(data=False)
        await negotiate(j, peer)
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        await peer.wait_frames("video", 10)
        jsep = await peer.offer()
        ack = await j.message({"audio": True, "video": True}, jsep)
        assert ack["janus"] == "ack", ack
        ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
        await peer.answer(ev["jsep"])
        video = peer.counters["video"]
        await video.wait_for(video.count() + 20)
        await peer.close()


@pytest.mark.asyncio
async def test_media_stops_then_resumes_events(server):
    """When the peer stops sending video, `media` says receiving:false after no_media_timer;
    when it sends again, receiving:true."""
    async with client(server, "ws") as j:
        peer = Peer(data=False)
        await negotiate(j, peer)
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        await j.next_event(lambda e: e.get("janus") == "media" and e["type"] == "video" and e["receiving"])
        sender = next(s for s in peer.pc.getSenders() if s.track and s.track.kind == "video")
        track = sender.track
        sender.replaceTrack(None)
        off = await j.next_event(lambda e: e.get("janus") == "media" and e["type"] == "video" and not e["receiving"], timeout=10)
        assert off["mid"] == "1" and "seconds" not in off, off
        sender.replaceTrack(track)
        await j.next_event(lambda e: e.get("janus") == "media" and e["type"] == "video" and e["receiving"], timeout=10)
        await peer.close()


def answered_codecs(sdp, kind):
    """The codec names of the first `kind` m-line of an SDP, in order."""
    section = sdp.split(f"m={kind} ")[1].split("\r\nm=")[0]
    pts = section.split("\r\n")[0].split()[2:]
    names = dict(line[len("a=rtpmap:"):].split(" ", 1) for line in section.split("\r\n")
                 if line.startswith("a=rtpmap:"))
    return [names[pt].split("/")[0].lower() for pt in pts if pt in names]


@pytest.mark.asyncio
async def test_codec_preferences_choose_the_answered_codecs(server):
    """`videocodec`/`audiocodec` with the offer: the answer lists only those codecs, so both
    directions use them, and frames still decode (aiortc offers VP8 before H.264, opus before PCMU)."""
    peer = Peer(data=False)
    async with client(server, "ws") as j:
        ev = await negotiate(j, peer, {"audio": True, "video": True, "videocodec": "h264", "audiocodec": "pcmu"})
        assert answered_codecs(ev["jsep"]["sdp"], "video") == ["h264"], ev["jsep"]["sdp"]
        assert answered_codecs(ev["jsep"]["sdp"], "audio") == ["pcmu"], ev["jsep"]["sdp"]
        await peer.wait_frames("video", 10)
        await peer.wait_frames("audio", 10)
    await peer.close()
    # `videoprofile` picks among the offered H.264 variants (aiortc: 42001f first, then 42e01f).
    peer = Peer(data=False)
    async with client(server, "ws") as j:
        ev = await negotiate(j, peer, {"audio": True, "video": True, "videocodec": "h264", "videoprofile": "42e01f"})
        assert "profile-level-id=42e01f" in ev["jsep"]["sdp"] and "42001f" not in ev["jsep"]["sdp"], ev["jsep"]["sdp"]
        await peer.wait_frames("video", 10)
    await peer.close()
    # A codec the offer lacks falls back to the first offered one we can send.
    peer = Peer(data=False)
    async with client(server, "ws") as j:
        ev = await negotiate(j, peer, {"audio": True, "video": True, "videocodec": "vp9"})
        assert answered_codecs(ev["jsep"]["sdp"], "video")[0] == "vp8", ev["jsep"]["sdp"]
        await peer.wait_frames("video", 10)
    await peer.close()


@pytest.mark.asyncio
async def test_svc_requests_with_a_non_svc_sender(server):
    """SVC hints with a VP8 sender (aiortc cannot send VP9 SVC; Chromium does in tests/browser):
    the echo goes on untouched, `spatial_layer`/`temporal_layer` are accepted, and out-of-range
    layers get Janus's 413 error."""
    peer = Peer(data=False)
    async with client(server, "ws") as j:
        await j.attach(ECHO)
        jsep = await peer.offer()
        jsep["trickle"] = False
        jsep["svc"] = [{"mindex": 1, "mid": "1", "svc": "L3T3_KEY"}]
        await j.message({"audio": True, "video": True}, jsep)
        ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
        await peer.answer(ev["jsep"])
        video = await peer.wait_frames("video", 10)
        for body in ({"spatial_layer": 0}, {"temporal_layer": 1}):
            await j.message(body)
            ev = await j.next_event(lambda e: e.get("janus") == "event" and "plugindata" in e)
            assert ev["plugindata"]["data"] == {"echotest": "event", "result": "ok"}, ev
        await video.wait_for(video.count() + 10)
        for key in ("spatial_layer", "temporal_layer"):
            await assert_layer_out_of_range(j, key)
    await peer.close()


async def assert_layer_out_of_range(j, key):
    """Janus compat (8.1): a layer above 2 is refused with 413."""
    await j.message({key: 3})
    ev = await j.next_event(lambda e: e.get("janus") == "event" and "plugindata" in e)
    assert ev["plugindata"]["data"] == {
        "echotest": "event",
        "error_code": 413,
        "error": f"Invalid value ({key} should be 0, 1 or 2)",
    }, ev


@pytest.mark.asyncio
async def test_out_of_range_simulcast_layers_are_refused(server):
    """Janus compat (8.1): `substream`/`temporal` above 2 get error 413 and change nothing; 0 to 2
    are accepted (the layers themselves are switched in tests/browser/simulcast.test.mjs)."""
    async with client(server, "ws") as j:
        await j.attach(ECHO)
        for key in ("substream", "temporal"):
            await assert_layer_out_of_range(j, key)
            await j.message({key: 2})
            ev = await j.next_event(lambda e: e.get("janus") == "event" and "plugindata" in e)
            assert ev["plugindata"]["data"] == {"echotest": "event", "result": "ok"}, ev


@pytest.mark.asyncio
async def test_handle_info_reports_webrtc(server):
    """Admin handle_info carries the SDPs, the selected pair, per-mid packet counts and the NACK buffer."""
    peer = Peer(data=False)
    # The retransmission buffer of PeerConnections created from now on.
    assert (await server.admin({"janus": "set_min_nack_queue", "min_nack_queue": 500}))["min_nack_queue"] == 500
    async with client(server, "ws") as j:
        await negotiate(j, peer)
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        await peer.wait_frames("video", 10)
        reply = await server.admin({"janus": "handle_info", "session_id": j.session_id, "handle_id": j.handle_id})
        await server.admin({"janus": "set_min_nack_queue", "min_nack_queue": 200})
        info = reply["info"]
        assert info["plugin"] == ECHO
        assert info["sdps"]["remote"].startswith("v=0") and info["sdps"]["local"].startswith("v=0")
        # Candidates for component 1 only (RTCP is muxed), as Janus lists them.
        components = [l.split()[1] for l in info["sdps"]["local"].splitlines() if l.startswith("a=candidate:")]
        assert components and set(components) == {"1"}, components
        assert info["flags"]["ready"] is True
        media = info["webrtc"]["media"]
        video = media["1"]
        # Janus's layout of webrtc.media.<mid>.
        assert video["type"] == "video" and video["do_nacks"] is True and video["nack-queue-ms"] == 500, video
        assert video["ssrc"]["ssrc"] and video["ssrc"]["ssrc-peer"], video
        for way in ("in", "out"):
            st = video["stats"][way]
            assert st["packets"] > 0 and st["bytes"] > 0 and st["bytes_lastsec"] > 0, (way, video)
        assert media["0"]["type"] == "audio" and media["0"]["stats"]["in"]["bytes_lastsec"] > 0, media["0"]
        assert info["webrtc"]["ice"]["state"] == "ready"
        # Janus's layout: "<ip>:<port> [<type>,<protocol>] <-> <ip>:<port> [<type>,<protocol>]".
        pair = info["webrtc"]["ice"]["selected-pair"]
        assert re.fullmatch(r"127\.0\.0\.1:\d+ \[host,udp\] <-> 127\.0\.0\.1:\d+ \[(host|prflx),udp\]", pair or ""), pair
        await peer.close()


@pytest.mark.asyncio
async def test_e2ee_offer_is_answered_as_e2ee(server):
    """Janus compat (JSEP `e2ee`, Insertable Streams): a client that marks its offer end-to-end
    encrypted gets an answer marked so, handle_info's `e2ee` flag is set, and media still flows
    (the server relays the payloads as they are). The mark goes with the PeerConnection."""
    async with client(server, "ws") as j:
        peer = Peer(data=False)
        await j.attach(ECHO)
        jsep = dict(await peer.offer(), e2ee=True)
        await j.message({"audio": True, "video": True}, jsep)
        ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
        assert ev["jsep"]["type"] == "answer" and ev["jsep"].get("e2ee") is True, ev["jsep"].keys()
        await peer.answer(ev["jsep"])
        await peer.wait_frames("video", 5)
        info = await server.admin({"janus": "handle_info", "session_id": j.session_id, "handle_id": j.handle_id})
        assert info["info"]["flags"]["e2ee"] is True

        assert (await j.request("hangup"))["janus"] == "success"
        await j.next_event(lambda e: e.get("janus") == "hangup")
        await peer.close()
        peer = Peer(data=False)
        await j.message({"audio": True, "video": True}, await peer.offer())
        ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
        assert "e2ee" not in ev["jsep"], "a new PeerConnection without e2ee is not marked"
        info = await server.admin({"janus": "handle_info", "session_id": j.session_id, "handle_id": j.handle_id})
        assert info["info"]["flags"]["e2ee"] is False
        await peer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("password", [None, "s3cret"])
async def test_dtls_certificate_from_standard_pem_files(tmp_path, password):
    """Janus's `cert_pem`/`cert_key` (and `cert_pwd` for an encrypted PKCS#8 key): the answer
    carries that certificate's fingerprint and media flows."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from conftest import Server

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portunus-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    assert (b"ENCRYPTED PRIVATE KEY" in key_pem) == bool(password)
    key_file.write_bytes(key_pem)
    expected = ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))

    env = {"PORTUNUS__CERTIFICATES__CERT_PEM": str(cert_file), "PORTUNUS__CERTIFICATES__CERT_KEY": str(key_file)}
    if password:
        env["PORTUNUS__CERTIFICATES__CERT_PWD"] = password
    server = Server(extra_env=env)
    peer = Peer(data=False)
    try:
        async with client(server, "ws") as j:
            ev = await negotiate(j, peer)
            assert f"a=fingerprint:sha-256 {expected}" in ev["jsep"]["sdp"]
            await peer.wait_frames("video", 10)
    finally:
        await peer.close()
        server.stop()


@pytest.mark.asyncio
async def test_a_call_leaves_no_engine_warnings_in_the_log():
    """At Janus's warning level (3) a whole call (with data channel), its hangup and the peer's
    going away log nothing from the media engine's crates: their internals (skipped DTLS
    extensions, packets before the keys exist, ...) are debugging detail, shown from level 5."""
    from conftest import Server

    server = Server(extra_env={"PORTUNUS__GENERAL__DEBUG_LEVEL": "3"})
    try:
        async with client(server, "ws") as j:
            peer = Peer()
            await negotiate(j, peer)
            await j.next_event(lambda e: e.get("janus") == "webrtcup")
            await peer.wait_frames("video", 10)
            await peer.close()
            await j.next_event(lambda e: e.get("janus") == "hangup", timeout=30)
    finally:
        server.stop()
    with open(server.log_path) as f:
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in f]
    engine = [line for line in lines if re.search(r"\bWARN\s+rtc[a-z_]*::", line)]
    assert not engine, engine[:5]


@pytest.mark.asyncio
async def test_slowlink_when_the_peer_loses_packets():
    """With `slowlink_threshold` set, media lost on the way in is reported as `slowlink` (uplink false)."""
    from conftest import Server

    server = Server(extra_env={"PORTUNUS__MEDIA__SLOWLINK_THRESHOLD": "2"})
    peer = Peer(data=False)
    try:
        async with client(server, "ws") as j:
            await negotiate(j, peer)
            await j.next_event(lambda e: e.get("janus") == "webrtcup")
            # A lossy path from the peer: every RTP packet (audio and video share the bundled
            # transport) whose sequence number is a multiple of 4 never leaves, retransmissions
            # included, so the loss is not repaired by NACKs; RTCP goes through.
            sender = next(t.sender for t in peer.pc.getTransceivers() if t.kind == "video")
            transport = sender.transport
            real_send = transport._send_rtp

            async def lossy(data):
                is_rtcp = len(data) > 1 and 192 <= data[1] <= 223
                if is_rtcp or int.from_bytes(data[2:4], "big") % 4:
                    await real_send(data)

            transport._send_rtp = lossy
            for media, mid in (("audio", "0"), ("video", "1")):
                ev = await j.next_event(lambda e: e.get("janus") == "slowlink" and e.get("media") == media, timeout=20)
                assert ev["uplink"] is False and ev["lost"] >= 2, ev
                assert ev["mid"] == mid and ev["sender"] == j.handle_id
            # The plugin hears it too (EchoTest tells the client, as Janus's does).
            ev = await j.next_event(lambda e: e.get("plugindata", {}).get("data", {}).get("event") == "slow_link")
            assert ev["plugindata"]["data"]["media"] in ("audio", "video")
            # Lost video is NACKed; the operator sees that in /metrics.
            values = await server.metrics()
            assert values["portunus_nacks_out_total"] >= 2, values
    finally:
        await peer.close()
        server.stop()


@pytest.mark.asyncio
async def test_full_trickle_sends_candidates_as_events_with_nat_mapping():
    """`full_trickle`: the answer carries no candidates, they come as `trickle` events (then
    `completed`), with host addresses replaced by `nat_1_1_mapping` as in the SDP."""
    from aiortc.sdp import candidate_from_sdp

    from conftest import Server

    # 127.0.0.2 reaches the loopback interface, but not the socket bound to 127.0.0.1: the peer's
    # checks to it go nowhere, and ICE succeeds through our checks (peer-reflexive on its side).
    server = Server(extra_env={"PORTUNUS__NAT__FULL_TRICKLE": "true", "PORTUNUS__NAT__NAT_1_1_MAPPING": "127.0.0.2"})
    peer = Peer(data=False)
    try:
        async with client(server, "ws") as j:
            await j.attach(ECHO)
            jsep = await peer.offer()
            await j.message({"audio": True, "video": True}, jsep)
            ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
            assert "a=candidate:" not in ev["jsep"]["sdp"], "full trickle: no candidates in the answer"
            await peer.answer(ev["jsep"])
            candidates = []
            while True:
                t = await j.next_event(lambda e: e.get("janus") == "trickle")
                assert t["sender"] == j.handle_id
                if t["candidate"].get("completed"):
                    break
                candidates.append(t["candidate"])
            assert candidates, "no trickled candidates"
            for c in candidates:
                assert c["candidate"].startswith("candidate:") and " 127.0.0.2 " in c["candidate"], c
                assert "sdpMid" in c and "sdpMLineIndex" in c, c
                parsed = candidate_from_sdp(c["candidate"].split(":", 1)[1])
                parsed.sdpMid, parsed.sdpMLineIndex = c["sdpMid"], c["sdpMLineIndex"]
                await peer.pc.addIceCandidate(parsed)
            await j.next_event(lambda e: e.get("janus") == "webrtcup", timeout=20)
            await peer.wait_frames("video", 10)
    finally:
        await peer.close()
        server.stop()


class StunResponder(asyncio.DatagramProtocol):
    """A STUN server on loopback that answers every Binding request with a fixed mapped address
    (as if the server sat behind a NAT)."""

    MAPPED = ("192.0.2.77", 40000)

    def __init__(self):
        self.requests = 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        from aioice import stun

        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if request.message_method != stun.Method.BINDING or request.message_class != stun.Class.REQUEST:
            return
        self.requests += 1
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = self.MAPPED
        self.transport.sendto(bytes(response), addr)


@pytest.mark.asyncio
async def test_stun_server_adds_a_server_reflexive_candidate():
    """`nat.stun_server`: the answer carries, next to the host candidate, the server-reflexive
    one the STUN server reported (with the host address as its base), and media flows."""
    from conftest import Server

    loop = asyncio.get_running_loop()
    transport, stun_server = await loop.create_datagram_endpoint(StunResponder, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    server = Server(extra_env={"PORTUNUS__NAT__STUN_SERVER": "127.0.0.1", "PORTUNUS__NAT__STUN_PORT": str(port)})
    peer = Peer(data=False)
    try:
        async with client(server, "ws") as j:
            ev = await negotiate(j, peer, {"audio": True, "video": True})
            sdp = ev["jsep"]["sdp"]
            mapped_ip, mapped_port = StunResponder.MAPPED
            assert f"{mapped_ip} {mapped_port} typ srflx raddr 127.0.0.1" in sdp, sdp
            assert " typ host" in sdp and "a=end-of-candidates" in sdp, sdp
            assert stun_server.requests >= 1
            await j.next_event(lambda e: e.get("janus") == "webrtcup", timeout=20)
            await peer.wait_frames("video", 10)
    finally:
        await peer.close()
        server.stop()
        transport.close()


def free_udp_port():
    """A loopback UDP port nothing listens on (bound, then released)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Coturn:
    """Debian's coturn (`turnserver`) on a loopback UDP port, long-term credentials u:p."""

    USER, PASSWORD = "u", "p"

    def __init__(self, tmp_path):
        import shutil
        import subprocess

        binary = shutil.which("turnserver")
        if binary is None:
            pytest.skip("coturn (turnserver) is not installed; tests/run.sh installs it")
        self.port = free_udp_port()
        self.log_path = tmp_path / "coturn.log"
        self.proc = subprocess.Popen(
            [binary, "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(self.port),
             "--min-port", "40000", "--max-port", "60000", "--lt-cred-mech",
             "--user", f"{self.USER}:{self.PASSWORD}", "--realm", "portunus", "--no-tls", "--no-dtls", "--no-tcp",
             "--no-cli", "--allow-loopback-peers", "--userdb", str(tmp_path / "turndb"),
             "--pidfile", str(tmp_path / "turnserver.pid"), "--log-file", "stdout", "--no-stdout-log",
             "--simple-log"],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)

    async def ready(self, timeout=10.0):
        """Waits until the server answers a STUN Binding request."""
        import os
        import socket

        from aioice import stun

        deadline = time.time() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"turnserver exited; see {self.log_path}")
                request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST,
                                       transaction_id=os.urandom(12))
                s.sendto(bytes(request), ("127.0.0.1", self.port))
                await asyncio.sleep(0.1)
                try:
                    s.recvfrom(2048)
                    return
                except BlockingIOError:
                    continue
        raise TimeoutError(f"turnserver not answering on 127.0.0.1:{self.port}; see {self.log_path}")

    def settings(self):
        return {
            "PORTUNUS__NAT__TURN_SERVER": "127.0.0.1",
            "PORTUNUS__NAT__TURN_PORT": str(self.port),
            "PORTUNUS__NAT__TURN_TYPE": "udp",
            "PORTUNUS__NAT__TURN_USER": self.USER,
            "PORTUNUS__NAT__TURN_PWD": self.PASSWORD,
        }

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except Exception:
            self.proc.kill()


def only_relay_candidates(sdp):
    """`sdp` without its host and server-reflexive candidates."""
    keep = [l for l in sdp.split("\r\n") if not (l.startswith("a=candidate:") and " typ relay" not in l)]
    return "\r\n".join(keep)


@pytest.mark.asyncio
async def test_turn_server_adds_a_relay_candidate_media_flows_through_it(tmp_path):
    """`nat.turn_*`: the answer carries a relay candidate allocated on coturn; a peer that is
    given only that candidate gets its media back through the relay."""
    from conftest import Server

    coturn = Coturn(tmp_path)
    server = None
    peer = Peer(data=True)
    try:
        await coturn.ready()
        server = Server(extra_env=coturn.settings())
        async with client(server, "ws") as j:
            await j.attach(ECHO)
            jsep = await peer.offer()
            # As if our host address were unreachable: the peer hears ICE checks only from the
            # relayed address (else it learns the host address as peer-reflexive from our checks
            # and, priorities being what they are, nominates it). Our checks start with the offer.
            connection = peer.pc.getTransceivers()[0].sender.transport.transport.iceGatherer._connection
            heard, allowed = connection.request_received, []

            def from_relay_only(message, addr, protocol):
                if (addr[0], str(addr[1])) in allowed:
                    heard(message, addr, protocol)

            connection.request_received = from_relay_only
            jsep["trickle"] = False
            assert (await j.message({"audio": True, "video": True}, jsep))["janus"] == "ack"
            ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
            sdp = ev["jsep"]["sdp"]
            assert " typ relay raddr 127.0.0.1" in sdp and "a=end-of-candidates" in sdp, sdp
            relayed = [l for l in sdp.split("\r\n") if " typ relay" in l]
            assert all(" 127.0.0.1 " in l for l in relayed), relayed
            stripped = only_relay_candidates(sdp)
            assert " typ host" not in stripped and " typ relay" in stripped
            relayed_addr = tuple(relayed[0].split()[4:6])
            allowed.append(relayed_addr)
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=stripped, type="answer"))
            await j.next_event(lambda e: e.get("janus") == "webrtcup", timeout=20)
            await peer.wait_frames("video", 10)
            await peer.wait_frames("audio", 10)
            # Media went through the relay: the peer nominated the relayed address.
            nominated = [p.remote_candidate for p in connection._nominated.values()]
            assert nominated and all((c.host, str(c.port)) == relayed_addr for c in nominated), (nominated, relayed)
    finally:
        await peer.close()
        if server:
            server.stop()
        coturn.stop()


@pytest.mark.asyncio
async def test_dead_turn_server_does_not_stop_a_call():
    """A configured TURN server that does not answer: the answer comes within the gathering
    timeout without a relay candidate, and the call connects over the host candidate."""
    from conftest import Server

    port = free_udp_port()
    server = Server(extra_env={
        "PORTUNUS__NAT__TURN_SERVER": "127.0.0.1",
        "PORTUNUS__NAT__TURN_PORT": str(port),
        "PORTUNUS__NAT__TURN_USER": "u",
        "PORTUNUS__NAT__TURN_PWD": "p",
    })
    peer = Peer(data=False)
    try:
        async with client(server, "ws") as j:
            started = time.monotonic()
            ev = await negotiate(j, peer, {"audio": True, "video": True})
            assert time.monotonic() - started < 4.0, "the answer waited for the TURN server too long"
            sdp = ev["jsep"]["sdp"]
            assert " typ host" in sdp and " typ relay" not in sdp, sdp
            await j.next_event(lambda e: e.get("janus") == "webrtcup", timeout=20)
            await peer.wait_frames("video", 10)
    finally:
        await peer.close()
        server.stop()


@pytest.mark.asyncio
async def test_full_trickle_sends_the_relay_candidate_as_an_event(tmp_path):
    """`full_trickle` with `nat.turn_*`: the relay candidate comes as a `trickle` event before
    `completed`, like the host one."""
    from conftest import Server

    coturn = Coturn(tmp_path)
    server = None
    peer = Peer(data=False)
    try:
        await coturn.ready()
        server = Server(extra_env={**coturn.settings(), "PORTUNUS__NAT__FULL_TRICKLE": "true"})
        async with client(server, "ws") as j:
            await j.attach(ECHO)
            await j.message({"audio": True, "video": True}, await peer.offer())
            ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
            assert "a=candidate:" not in ev["jsep"]["sdp"], "full trickle: no candidates in the answer"
            candidates = []
            while True:
                t = await j.next_event(lambda e: e.get("janus") == "trickle", timeout=10)
                if t["candidate"].get("completed"):
                    break
                candidates.append(t["candidate"]["candidate"])
            assert any(" typ relay raddr 127.0.0.1 " in c for c in candidates), candidates
            assert any(" typ host" in c for c in candidates), candidates
    finally:
        await peer.close()
        if server:
            server.stop()
        coturn.stop()
