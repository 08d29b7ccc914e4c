"""Admin start_pcap / start_text2pcap on an EchoTest handle while media flows: the files hold the
plain RTP and RTCP of the call in both directions, told apart by the fake addresses. The error
paths are in tests/api/packet_dump.rs."""

import asyncio
import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from janus_client import WsJanus
from test_echotest import Peer, negotiate

# The fake ends written around every packet (see actors/src/media/capture/format.rs).
PEER_IP, SERVER_IP = bytes([10, 1, 1, 1]), bytes([10, 2, 2, 2])
PEER_PORT, SERVER_PORT = 1000, 2000


def is_rtcp(payload):
    # RFC 5761: RTCP packet types 192..223 sit where an RTP marker+PT would be 64..95.
    return len(payload) > 1 and 192 <= payload[1] <= 223


def read_pcap(path):
    """(inbound, payload) for every record of a classic pcap file with our fake framing."""
    data = open(path, "rb").read()
    magic = data[:4]
    endian = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
    assert struct.unpack(endian + "I", magic)[0] == 0xA1B2C3D4, magic
    _, _, _, _, snaplen, linktype = struct.unpack(endian + "HHiIII", data[4:24])
    assert linktype == 1 and snaplen == 65535
    out, off = [], 24
    while off < len(data):
        _, _, incl, orig = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        assert len(frame) == incl and orig >= incl
        off += 16 + incl
        assert frame[12:14] == b"\x08\x00"
        ip, udp = frame[14:34], frame[34:42]
        src, dst = ip[12:16], ip[16:20]
        sport, dport, ulen = struct.unpack("!HHH", udp[:6])
        assert struct.unpack("!H", ip[2:4])[0] == orig - 14 and ulen == orig - 34
        inbound = (src, dst, sport, dport) == (PEER_IP, SERVER_IP, PEER_PORT, SERVER_PORT)
        outbound = (src, dst, sport, dport) == (SERVER_IP, PEER_IP, SERVER_PORT, PEER_PORT)
        assert inbound or outbound, (src, dst, sport, dport)
        out.append((inbound, frame[42:]))
    return out


def read_text2pcap(path):
    """(inbound, payload) for every line of a text2pcap dump."""
    out = []
    for line in open(path):
        parts = line.split()
        assert parts[0] in ("I", "O") and parts[2] == "000000" and parts[-1] in ("RTP", "RTCP"), line
        assert len(parts[1]) == len("12:34:56.123456") and parts[1][2] == ":" and parts[1][8] == "."
        payload = bytes(int(b, 16) for b in parts[3:-1])
        assert (parts[-1] == "RTCP") == is_rtcp(payload), line
        out.append((parts[0] == "I", payload))
    return out


async def flow(peer):
    """Lets media run long enough for both ends' periodic RTCP (about one report a second)."""
    since = time.time()
    await asyncio.sleep(2.5)
    assert (await peer.counter("video")).count_since(since) > 10, "video kept flowing"


def rtp_ssrcs(packets, inbound):
    return {struct.unpack("!I", p[8:12])[0] for i, p in packets if i == inbound and len(p) >= 12 and not is_rtcp(p)}


@pytest.mark.asyncio
async def test_pcap_and_text2pcap_dumps_hold_the_call(server, tmp_path):
    peer = Peer(data=False)
    async with WsJanus(server.ws_url) as j:
        await negotiate(j, peer)
        ids = {"session_id": j.session_id, "handle_id": j.handle_id}
        await j.next_event(lambda e: e.get("janus") == "webrtcup")
        await peer.wait_frames("video", 5)

        folder = str(tmp_path / "dumps")
        r = await server.admin(dict(ids, janus="start_pcap", folder=folder, filename="call.pcap"))
        assert r == {"janus": "success", "transaction": r.get("transaction")} and r["transaction"], r
        info = (await server.admin(dict(ids, janus="handle_info")))["info"]
        assert info["dump-to-pcap"] is True and info["pcap-file"] == f"{folder}/call.pcap", info
        await flow(peer)
        r = await server.admin(dict(ids, janus="stop_pcap"))
        assert r == {"janus": "success", "transaction": r.get("transaction")} and r["transaction"], r
        info = (await server.admin(dict(ids, janus="handle_info")))["info"]
        assert "dump-to-pcap" not in info and "pcap-file" not in info

        r = await server.admin(dict(ids, janus="start_text2pcap", folder=folder, filename="call.txt", truncate=64))
        assert r["janus"] == "success", r
        info = (await server.admin(dict(ids, janus="handle_info")))["info"]
        assert info["dump-to-text2pcap"] is True and info["text2pcap-file"] == f"{folder}/call.txt", info
        await flow(peer)
        # Either stop request ends whichever dump runs (Janus keeps one per handle).
        r = await server.admin(dict(ids, janus="stop_pcap"))
        assert r["janus"] == "success", r

        media = info["webrtc"]["media"]
        ours = {m["ssrc"]["ssrc"] for m in media.values() if "ssrc" in m["ssrc"]}
        theirs = {m["ssrc"]["ssrc-peer"] for m in media.values() if "ssrc-peer" in m["ssrc"]}
        sent_by_peer = {s._ssrc for s in peer.pc.getSenders() if s.track}
        assert theirs == sent_by_peer, (theirs, sent_by_peer)
        await peer.close()

    packets = read_pcap(os.path.join(folder, "call.pcap"))
    assert rtp_ssrcs(packets, inbound=True) == theirs, packets[:3]
    # Every stream we send is there (the engine may add packets of its own, e.g. bandwidth probes).
    assert ours <= rtp_ssrcs(packets, inbound=False)
    assert any(is_rtcp(p) for i, p in packets if i), "the peer's RTCP is dumped too"
    assert any(is_rtcp(p) for i, p in packets if not i), "and ours"
    assert all(p[0] >> 6 == 2 for _, p in packets), "plain RTP/RTCP (version 2), not SRTP"

    text_path = os.path.join(folder, "call.txt")
    lines = read_text2pcap(text_path)
    assert rtp_ssrcs(lines, inbound=True) == theirs
    assert ours <= rtp_ssrcs(lines, inbound=False)
    assert max(len(p) for _, p in lines) <= 64, "truncate keeps the first 64 bytes"

    # Wireshark's own converter reads the text (when it is installed; tests/run.sh does not add it).
    text2pcap = shutil.which("text2pcap")
    if text2pcap:
        out = os.path.join(folder, "converted.pcapng")
        done = subprocess.run([text2pcap, "-D", "-l", "1", "-i", "17", "-u", "1000,2000", "-t", "%H:%M:%S.",
                               text_path, out], check=True, capture_output=True, text=True)
        wrote = re.search(r"wrote (\d+) packets", done.stderr + done.stdout)
        assert wrote and int(wrote.group(1)) == len(lines), done.stderr
