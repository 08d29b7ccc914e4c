"""Synthetic media for aiortc peers: a tone and a moving pattern, plus frame counters."""

import asyncio
import fractions
import math
import time

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import AUDIO_PTIME, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame


class Tone(MediaStreamTrack):
    """A 440 Hz sine at 48 kHz in 20 ms frames."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.rate = 48000
        self.samples = int(AUDIO_PTIME * self.rate)
        self.pts = 0
        self.t0 = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self.t0 is None:
            self.t0 = time.time()
        else:
            self.pts += self.samples
            delay = self.t0 + self.pts / self.rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        t = (np.arange(self.samples) + self.pts) / self.rate
        pcm = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, self.rate)
        return frame


class Pattern(VideoStreamTrack):
    """320x240 bars that move every frame, so decoded frames differ."""

    def __init__(self):
        super().__init__()
        self.n = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        img = np.zeros((240, 320, 3), dtype=np.uint8)
        x = (np.arange(320) + self.n * 4) % 64 < 32
        img[:, x, 1] = 200
        img[:, :, 2] = (self.n * 3) % 255
        self.n += 1
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class Counter:
    """Counts frames decoded from a remote track, with timestamps."""

    def __init__(self, track):
        self.track = track
        self.times = []
        self.sizes = set()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        try:
            while True:
                frame = await self.track.recv()
                self.times.append(time.time())
                if hasattr(frame, "width"):
                    self.sizes.add((frame.width, frame.height))
        except (MediaStreamError, asyncio.CancelledError):
            pass

    def count(self):
        return len(self.times)

    def count_since(self, t):
        return sum(1 for x in self.times if x >= t)

    async def wait_for(self, n, timeout=20.0):
        deadline = time.time() + timeout
        while self.count() < n:
            if time.time() > deadline:
                raise TimeoutError(f"only {self.count()} {self.track.kind} frames after {timeout}s")
            await asyncio.sleep(0.1)

    def stop(self):
        self.task.cancel()


async def wait_frames(counters, kind, n, timeout=20.0):
    """Waits until the remote track of `kind` shows up in `counters` (kind -> Counter, filled by a
    PeerConnection's track handler) and `n` of its frames were decoded; returns its Counter."""
    deadline = time.time() + timeout
    while kind not in counters:
        if time.time() > deadline:
            raise TimeoutError(f"no remote {kind} track after {timeout}s")
        await asyncio.sleep(0.1)
    await counters[kind].wait_for(n, timeout)
    return counters[kind]
