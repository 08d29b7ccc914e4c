"""Opening and closing many PeerConnections returns the server to its baseline: sockets (file
descriptors), PeerConnections, tasks of the media runtime and the handles' media ports."""

import asyncio
import json
import os
import time

import aiohttp
import pytest

from janus_client import WsJanus
from test_echotest import ECHO, Peer

ROUNDS = int(os.environ.get("PORTUNUS_LEAK_ROUNDS", "200"))
PARALLEL = 10


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


async def status(server):
    async with aiohttp.ClientSession() as http:
        body = {"janus": "get_status", "transaction": "leak"}
        async with http.post(server.admin_url, data=json.dumps(body)) as r:
            return json.loads(await r.text())["status"]


async def one_call(j):
    peer = Peer(data=False)
    await j.attach(ECHO)
    handle = j.handle_id
    jsep = await peer.offer()
    await j.message({"audio": True, "video": True}, jsep)
    ev = await j.next_event(lambda e: e.get("janus") == "event" and "jsep" in e and e.get("sender") == handle)
    await peer.answer(ev["jsep"])
    await j.next_event(lambda e: e.get("janus") == "webrtcup" and e.get("sender") == handle)
    await peer.close()
    await j.request("detach")


@pytest.mark.asyncio
async def test_open_close_many_peerconnections(server):
    pid = server.proc.pid

    async def worker(n):
        async with WsJanus(server.ws_url) as j:
            for _ in range(n):
                await one_call(j)

    # Warm up first: worker threads and their pollers start lazily and stay.
    await asyncio.wait_for(asyncio.gather(*(worker(1) for _ in range(PARALLEL))), timeout=120)
    await asyncio.sleep(2)
    base_fds = fd_count(pid)
    base = await status(server)
    assert base["peerconnections"] == 0

    per = ROUNDS // PARALLEL
    await asyncio.wait_for(asyncio.gather(*(worker(per) for _ in range(PARALLEL))), timeout=600)

    deadline = time.time() + 20
    while True:
        now = await status(server)
        fds = fd_count(pid)
        settled = (
            now["peerconnections"] == 0
            and now["media_ports"] == 0
            and fds <= base_fds + 2
            and now["media_tasks"] <= base["media_tasks"] + 2
        )
        if settled or time.time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert now["peerconnections"] == 0, now
    assert fds <= base_fds + 2, f"file descriptors: {base_fds} before, {fds} after {ROUNDS} PeerConnections"
    assert now["media_tasks"] <= base["media_tasks"] + 2, f"media tasks: {base['media_tasks']} -> {now['media_tasks']}"
    assert now["handles"] == 0 and now["sessions"] == 0, now
    # Each handle's media port (and the EchoTest state its sink holds) goes with the handle.
    assert now["media_ports"] == 0, f"media ports outlived their handles: {now}"
