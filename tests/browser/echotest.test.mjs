// Headless Chromium runs tests/browser/echotest.html against a real Portunus binary and checks what
// a person would see: the echoed camera picture is there, moving and not black, over both the HTTP
// long-poll and the WebSocket transport. Run with `node --test tests/browser/`.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ARTIFACTS, CHROMIUM, sleep, startBrowser, startServer, startStatic, waitFor } from './harness.mjs';

// ---- what a person sees, measured in the page ----------------------------------------------------

/** Draws the remote <video> to a canvas: size, playback clock and a luma summary of the frame. */
function sampleRemote(page) {
  return page.evaluate(() => {
    const v = document.getElementById('remote');
    const out = { videoWidth: v.videoWidth, videoHeight: v.videoHeight, currentTime: v.currentTime, readyState: v.readyState, paused: v.paused };
    if (!v.videoWidth || !v.videoHeight) return out;
    const w = 160;
    const h = Math.max(1, Math.round((v.videoHeight / v.videoWidth) * w));
    const canvas = document.createElement('canvas');
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(v, 0, 0, w, h);
    const px = ctx.getImageData(0, 0, w, h).data;
    const luma = new Array(w * h);
    let sum = 0;
    for (let i = 0; i < w * h; i++) {
      const y = 0.299 * px[4 * i] + 0.587 * px[4 * i + 1] + 0.114 * px[4 * i + 2];
      luma[i] = y;
      sum += y;
    }
    const mean = sum / (w * h);
    let sq = 0;
    for (const y of luma) sq += (y - mean) * (y - mean);
    out.mean = mean;
    out.stddev = Math.sqrt(sq / (w * h));
    out.luma = luma.map((y) => Math.round(y));
    return out;
  });
}

/** Mean absolute luma difference between two samples. */
function frameDiff(a, b) {
  if (!a.luma || !b.luma || a.luma.length !== b.luma.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.luma.length; i++) d += Math.abs(a.luma[i] - b.luma[i]);
  return d / a.luma.length;
}

/** Inbound RTP counters of the PeerConnection, by kind. */
function inboundStats(page) {
  return page.evaluate(async () => {
    const out = {};
    if (!window.pc) return out;
    const report = await window.pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        out[s.kind] = {
          packetsReceived: s.packetsReceived,
          bytesReceived: s.bytesReceived,
          framesDecoded: s.framesDecoded,
          totalSamplesReceived: s.totalSamplesReceived,
          codecId: s.codecId,
        };
      }
    });
    return out;
  });
}

const state = (page) => page.evaluate(() => window.testState);

function saveDiagnostics(transport, name, st, consoleLines, server) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}-${transport}.json`);
  fs.writeFileSync(file, JSON.stringify({ testState: st, console: consoleLines, serverLog: server.logPath }, null, 2));
  return file;
}

/** Opens the page for `transport` and waits until the echo call is up with media both ways. */
async function connect(page, statik, server, transport) {
  const target = transport === 'http' ? `http=${encodeURIComponent(server.httpUrl)}` : `ws=${encodeURIComponent(server.wsUrl)}`;
  await page.goto(`${statik.base}/echotest.html?${target}&keepalive=2000`, { timeout: 15000 });
  const noErrors = async () => {
    const st = await state(page);
    if (st.errors.length) throw new Error(`page errors: ${st.errors.join(' | ')}`);
    return st;
  };
  await waitFor('the SDP answer to be applied', async () => (await noErrors()).answer !== null, { timeout: 20000 });
  await waitFor('webrtcup', async () => (await noErrors()).webrtcup, { timeout: 20000 });
  await waitFor('media events (audio and video receiving)', async () => {
    const st = await noErrors();
    const kinds = new Set(st.media.filter((m) => m.receiving).map((m) => m.type));
    return kinds.has('audio') && kinds.has('video');
  }, { timeout: 20000 });
}

/** Waits until the remote video shows a moving, non-black picture; returns the last sample. */
async function assertVideoVisible(page) {
  const first = await waitFor('the remote video to have a size', async () => {
    const s = await sampleRemote(page);
    return s.videoWidth > 0 && s.videoHeight > 0 && s.readyState >= 2 ? s : null;
  }, { timeout: 20000 });
  assert.equal(first.paused, false, 'remote video is playing');
  await waitFor('remote video currentTime to advance by 0.5 s', async () => {
    const s = await sampleRemote(page);
    return s.currentTime > first.currentTime + 0.5;
  }, { timeout: 10000 });
  // Not black: a bright enough, non-uniform picture (Chromium's fake camera draws a moving pattern).
  const bright = await waitFor('a non-black remote frame', async () => {
    const s = await sampleRemote(page);
    return s.mean > 20 && s.stddev > 5 ? s : null;
  }, { timeout: 10000 });
  // Moving: a later frame differs from this one.
  const moved = await waitFor('the remote picture to change', async () => {
    const s = await sampleRemote(page);
    return frameDiff(bright, s) > 0.5 ? s : null;
  }, { timeout: 10000 });
  return { first, bright, moved };
}

/**
 * When we sent each transport-wide CC feedback (RTCP RTPFB, FMT 15), in seconds of the day, from
 * a text2pcap dump (`O HH:MM:SS.ffffff 000000 <hex bytes> RTCP`, one compound packet a line).
 */
function sentTwccFeedback(file) {
  const times = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts[0] !== 'O' || parts[parts.length - 1] !== 'RTCP') continue;
    const bytes = parts.slice(3, -1).map((h) => parseInt(h, 16));
    const [hh, mm, ss] = parts[1].split(':');
    const at = Number(hh) * 3600 + Number(mm) * 60 + Number(ss);
    for (let i = 0; i + 4 <= bytes.length; i += 4 * (((bytes[i + 2] << 8) | bytes[i + 3]) + 1)) {
      if (bytes[i + 1] === 205 && (bytes[i] & 0x1f) === 15) times.push(at);
    }
  }
  return times;
}

// ---- the tests ----------------------------------------------------------------------------------

describe('EchoTest in headless Chromium', { timeout: 240000 }, () => {
  let server;
  let statik;

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (apt-get install chromium)`);
    server = await startServer();
    statik = await startStatic();
  });

  after(async () => {
    if (statik) await statik.close();
    if (server) await server.stop();
  });

  for (const transport of ['http', 'ws']) {
    test(`echoed camera video is visible (${transport})`, { timeout: 90000 }, async () => {
      const browser = await startBrowser();
      const { page } = browser;
      let ok = false;
      try {
        await connect(page, statik, server, transport);
        const { first, bright, moved } = await assertVideoVisible(page);
        assert.ok(first.videoWidth > 0, `videoWidth ${first.videoWidth}`);

        // Audio comes back too, and the data channel echoes.
        await waitFor('inbound audio packets', async () => {
          const st = await inboundStats(page);
          return st.audio && st.audio.packetsReceived > 10;
        }, { timeout: 10000 });
        await waitFor('the data channel echo', async () => (await state(page)).dataReceived.length > 0, { timeout: 10000 });

        // Keepalives are acknowledged (the page sends one every 2 s).
        await waitFor('a keepalive ack', async () => (await state(page)).keepaliveAcks > 0, { timeout: 8000 });

        const st = await state(page);
        assert.ok(st.webrtcup, 'webrtcup event');
        assert.ok(st.media.some((m) => m.type === 'audio' && m.receiving), 'media audio receiving');
        assert.ok(st.media.some((m) => m.type === 'video' && m.receiving), 'media video receiving');
        assert.ok(st.candidatesSent > 0 && st.completedSent, `trickled ${st.candidatesSent} candidates + completed`);
        await waitFor('an ack for every trickle (candidates + completed)', async () => {
          const s = await state(page);
          return s.trickleAcks === s.candidatesSent + 1;
        }, { timeout: 5000 });
        assert.deepEqual(st.dataReceived[0], 'echo-ping');
        assert.deepEqual(st.errors, []);

        fs.mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(ARTIFACTS, `echotest-${transport}.png`), timeout: 15000 });
        console.log(`# ${transport}: ${moved.videoWidth}x${moved.videoHeight}, luma mean ${bright.mean.toFixed(1)} ` +
          `stddev ${bright.stddev.toFixed(1)}, frame change ${frameDiff(bright, moved).toFixed(2)}`);

        // Hang up cleanly: the server confirms and reports the PeerConnection gone.
        const reply = await page.evaluate(() => window.echotest.hangup());
        assert.equal(reply.janus, 'success', JSON.stringify(reply));
        await waitFor('the hangup event', async () => (await state(page)).hangup !== null, { timeout: 10000 });
        await page.evaluate(() => window.echotest.destroy());
        ok = true;
      } finally {
        const st = await state(page).catch(() => null);
        const file = saveDiagnostics(transport, 'echotest', st, browser.consoleLines, server);
        if (!ok) console.log(`# diagnostics: ${file}\n# server log: ${server.logPath}\n${server.logTail(40)}`);
        await browser.close();
      }
    });
  }

  test('ICE restart from the client keeps the echo going (ws)', { timeout: 90000 }, async () => {
    const browser = await startBrowser();
    const { page } = browser;
    let ok = false;
    try {
      await connect(page, statik, server, 'ws');
      await assertVideoVisible(page);
      const ufrag = (sdp) => (/a=ice-ufrag:(\S+)/.exec(sdp || '') || [])[1];
      const first = await state(page);
      const oldRemote = ufrag(first.answer);
      const oldLocal = ufrag(first.offer);
      const reply = await page.evaluate(() => window.echotest.restartIce());
      assert.ok(['ack', 'success'].includes(reply.janus), JSON.stringify(reply));
      await waitFor('the answer to the restart offer', async () => {
        const st = await state(page);
        return st.answer && ufrag(st.answer) !== oldRemote ? st : null;
      }, { timeout: 15000 });
      const st = await state(page);
      assert.notEqual(ufrag(st.restartOffer), oldLocal, 'the restart offer has new credentials');
      const before = (await inboundStats(page)).video.framesDecoded;
      await waitFor('video frames after the ICE restart', async () => {
        const s = await inboundStats(page);
        return s.video.framesDecoded > before + 20;
      }, { timeout: 20000 });
      assert.equal((await state(page)).connectionState, 'connected');
      assert.deepEqual((await state(page)).errors, []);
      await page.evaluate(() => window.echotest.destroy());
      ok = true;
    } finally {
      const st = await state(page).catch(() => null);
      const file = saveDiagnostics('ws', 'echotest-ice-restart', st, browser.consoleLines, server);
      if (!ok) console.log(`# diagnostics: ${file}\n# server log: ${server.logPath}\n${server.logTail(40)}`);
      await browser.close();
    }
  });

  test('video:false stops the echoed video while audio keeps flowing (ws)', { timeout: 90000 }, async () => {
    const browser = await startBrowser();
    const { page } = browser;
    let ok = false;
    try {
      await connect(page, statik, server, 'ws');
      await assertVideoVisible(page);

      const events = (await state(page)).pluginEvents.length;
      const reply = await page.evaluate(() => window.echotest.message({ video: false }));
      assert.ok(['ack', 'success'].includes(reply.janus), JSON.stringify(reply));
      await waitFor('the plugin event for {video:false}', async () => {
        const st = await state(page);
        return st.pluginEvents.slice(events).some((e) => e.data && e.data.result === 'ok');
      }, { timeout: 10000 });

      // Frozen: a full second with no newly decoded video frame and an unchanged picture,
      // while audio packets keep arriving in that same second.
      const frozen = await waitFor('the echoed video to freeze', async () => {
        const s0 = await inboundStats(page);
        const p0 = await sampleRemote(page);
        await sleep(1000);
        const s1 = await inboundStats(page);
        const p1 = await sampleRemote(page);
        if (!s0.video || !s1.video || !s0.audio || !s1.audio) return null;
        const still = s1.video.framesDecoded === s0.video.framesDecoded && frameDiff(p0, p1) === 0;
        return still ? { s0, s1, audioDelta: s1.audio.packetsReceived - s0.audio.packetsReceived } : null;
      }, { timeout: 15000, interval: 10 });
      assert.ok(frozen.audioDelta > 10, `audio kept flowing while video was off (${frozen.audioDelta} packets in 1 s)`);
      await page.screenshot({ path: path.join(ARTIFACTS, 'echotest-video-off.png'), timeout: 15000 });

      // And back on: frames are decoded again and the picture moves.
      const before = (await inboundStats(page)).video.framesDecoded;
      await page.evaluate(() => window.echotest.message({ video: true }));
      await waitFor('video frames to be decoded again after {video:true}', async () => {
        const st = await inboundStats(page);
        return st.video.framesDecoded > before + 10;
      }, { timeout: 15000 });
      await assertVideoVisible(page);
      assert.deepEqual((await state(page)).errors, []);
      await page.evaluate(() => window.echotest.destroy());
      ok = true;
    } finally {
      const st = await state(page).catch(() => null);
      const file = saveDiagnostics('ws', 'echotest-toggle', st, browser.consoleLines, server);
      if (!ok) console.log(`# diagnostics: ${file}\n# server log: ${server.logPath}\n${server.logTail(40)}`);
      await browser.close();
    }
  });
});

describe('Transport-wide CC feedback to Chromium', { timeout: 120000 }, () => {
  test('is sent every media.twcc_period', { timeout: 90000 }, async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (apt-get install chromium)`);
    const server = await startServer({ env: { PORTUNUS__MEDIA__TWCC_PERIOD: '500' } });
    const statik = await startStatic();
    const browser = await startBrowser();
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'portunus-twcc-'));
    try {
      await connect(browser.page, statik, server, 'ws');
      await assertVideoVisible(browser.page);
      const { sessionId, handleId } = await state(browser.page);
      const admin = async (body) => (await fetch(server.adminUrl, {
        method: 'POST',
        body: JSON.stringify({ transaction: 'twcc', session_id: sessionId, handle_id: handleId, ...body }),
      })).json();
      const started = await admin({ janus: 'start_text2pcap', folder, filename: 'call.txt' });
      assert.equal(started.janus, 'success', JSON.stringify(started));
      await sleep(6000);
      assert.equal((await admin({ janus: 'stop_text2pcap' })).janus, 'success');

      const times = sentTwccFeedback(path.join(folder, 'call.txt'));
      assert.ok(times.length >= 2, `feedback was sent (${times.length} packets)`);
      // Packets per period over the span they cover: about one per 500 ms. The engine's own
      // default (100 ms) or Janus's (200 ms) would send two and a half to five times as many.
      const span = times[times.length - 1] - times[0];
      const perPeriod = (times.length - 1) / (span / 0.5);
      console.log(`# ${times.length} feedback packets over ${span.toFixed(2)} s: ${perPeriod.toFixed(2)} per 500 ms`);
      assert.ok(perPeriod > 0.6 && perPeriod < 1.4, `one feedback per 500 ms, got ${perPeriod.toFixed(2)}`);
      await browser.page.evaluate(() => window.echotest.destroy());
    } finally {
      await browser.close();
      await statik.close();
      await server.stop();
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});
