"""Plugin-initiated negotiation: the plugin offers, an aiortc peer answers, media and data come
back. Uses the test plugin (built with the `fault-injection` feature), so it runs against the
binary given by PORTUNUS_TEST_PLUGIN_BIN (tests/run.sh points it at the debug build)."""

import asyncio
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from janus_client import WsJanus
from media import Counter, Pattern, Tone


@pytest.mark.asyncio
async def test_plugin_offer_answered_by_peer(fault_server):
    async with WsJanus(fault_server.ws_url) as j:
        await j.attach("portunus.plugin.faulty")
        r = await j.message({"offer": {"audio": True, "video": True, "data": True}})
        assert r["janus"] == "ack", r
        ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e)
        assert ev["plugindata"]["data"] == {"faulty": "offer"}
        assert ev["jsep"]["type"] == "offer"
        sdp = ev["jsep"]["sdp"]
        assert "m=audio" in sdp and "m=video" in sdp and "m=application" in sdp
        assert "a=end-of-candidates" in sdp

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        counters = {}
        channels = asyncio.Queue()

        @pc.on("track")
        def on_track(track):
            counters[track.kind] = Counter(track)

        @pc.on("datachannel")
        def on_dc(dc):
            channels.put_nowait(dc)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        # Send our own media back on the offered transceivers: the plugin echoes it.
        for t in pc.getTransceivers():
            t.sender.replaceTrack(Tone() if t.kind == "audio" else Pattern())
            t.direction = "sendrecv"
        await pc.setLocalDescription(await pc.createAnswer())
        r = await j.message({}, {"type": "answer", "sdp": pc.localDescription.sdp})
        assert r["janus"] == "success", r
        await j.next_event(lambda e: e.get("janus") == "webrtcup")

        dc = await asyncio.wait_for(channels.get(), 10)
        got = asyncio.Queue()
        dc.on("message", lambda m: got.put_nowait(m))
        deadline = time.time() + 10
        while dc.readyState != "open" and time.time() < deadline:
            await asyncio.sleep(0.05)
        dc.send("ping-from-answerer")
        assert await asyncio.wait_for(got.get(), 10) == "ping-from-answerer"

        deadline = time.time() + 10
        while "video" not in counters and time.time() < deadline:
            await asyncio.sleep(0.1)
        await counters["video"].wait_for(10)
        await counters["audio"].wait_for(10)
        for c in counters.values():
            c.stop()
        await pc.close()


@pytest.mark.asyncio
async def test_answer_without_offer_is_refused(fault_server):
    async with WsJanus(fault_server.ws_url) as j:
        await j.attach("portunus.plugin.faulty")
        r = await j.message({}, {"type": "answer", "sdp": "v=0\r\n"})
        assert r["janus"] == "error"
        assert r["error"]["code"] == 469
