// The EchoTest demo page (static/echotest.html, on our static/janus.js), served by Portunus itself
// on its web port and driven in headless Chromium like a person would: press Start, see yourself
// echoed (video playing, time advancing, picture not black and moving), toggle, stop. Both
// transports. Also: a dead server address gives a readable "Server unreachable" message.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { ARTIFACTS, CHROMIUM, startBrowser, startServer, waitFor } from './harness.mjs';
import { deadPort, demoState, errorBox, frameDiff, sampleRemote } from './demo_helpers.mjs';

describe('EchoTest demo page (static/echotest.html)', { timeout: 300000 }, () => {
  let server;

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (apt-get install chromium)`);
    server = await startServer();
    assert.ok(server.webUrl, 'Portunus serves static/ (PORTUNUS_READY has "web")');
  });

  after(async () => {
    if (server) await server.stop();
  });

  test('the page derives the server address from its host', async () => {
    const browser = await startBrowser();
    try {
      const { page } = browser;
      await page.goto(`${server.webUrl}echotest.html`);
      assert.equal(await page.textContent('#server'), 'ws://127.0.0.1:8188/');
      await page.goto(`${server.webUrl}echotest.html?transport=http`);
      assert.equal(await page.textContent('#server'), 'http://127.0.0.1:8088/janus');
      // janus.mjs is the same library as an ES module: importing it gives the page's global Janus.
      const same = await page.evaluate(async () => {
        const m = await import('./janus.mjs');
        return m.default === window.Janus && m.Janus === window.Janus && typeof m.default.init === 'function';
      });
      assert.equal(same, true, 'janus.mjs exports the global Janus');
      for (const file of ['janus.js', 'janus.mjs', 'demo.js']) {
        const res = await fetch(`${server.webUrl}${file}`);
        assert.match(res.headers.get('content-type'), /javascript/, `${file} MIME type`);
      }
      await page.goto(`${server.webUrl}`);
      assert.ok(await page.locator('a[href="echotest.html"]').count(), 'the landing page links the EchoTest demo');
    } finally {
      await browser.close();
    }
  });

  for (const transport of ['ws', 'http']) {
    test(`you see yourself echoed (${transport})`, { timeout: 120000 }, async () => {
      const url = transport === 'http' ? server.httpUrl : server.wsUrl;
      const browser = await startBrowser();
      const { page } = browser;
      let ok = false;
      try {
        await page.goto(`${server.webUrl}echotest.html?server=${encodeURIComponent(url)}`);
        await page.click('#start');
        const noErrors = async () => {
          const st = await demoState(page);
          if (st.errors.length) throw new Error(`page shows errors: ${st.errors.join(' | ')}`);
          return st;
        };
        await waitFor('webrtcup', async () => (await noErrors()).webrtcup, { timeout: 25000 });
        assert.match(await page.textContent('#status'), /you should see yourself/);

        // Playing, not just sized: once in CI the element had a size a moment before autoplay
        // started it.
        const first = await waitFor('the echoed video to have a size and play', async () => {
          await noErrors();
          const s = await sampleRemote(page);
          return s.videoWidth > 0 && !s.paused ? s : null;
        }, { timeout: 20000 });
        await waitFor('the echoed video clock to advance', async () => (await sampleRemote(page)).currentTime > first.currentTime + 0.5,
          { timeout: 10000 });
        const bright = await waitFor('a non-black echoed frame', async () => {
          const s = await sampleRemote(page);
          return s.mean > 20 && s.stddev > 5 ? s : null;
        }, { timeout: 10000 });
        const moved = await waitFor('the echoed picture to move', async () => {
          const s = await sampleRemote(page);
          return frameDiff(bright, s) > 0.5 ? s : null;
        }, { timeout: 10000 });
        // The local preview shows too, the data channel echoes, the bitrate label fills in.
        assert.ok(await page.evaluate(() => document.getElementById('local').videoWidth > 0), 'local preview');
        await waitFor('the data channel echo', async () => ((await demoState(page)).dataReceived || []).length > 0, { timeout: 10000 });
        await waitFor('a bitrate reading', async () => /^[1-9]\d* kbits\/sec$/.test(await page.textContent('#rate')), { timeout: 10000 });

        fs.mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(ARTIFACTS, `demo-echotest-${transport}.png`) });
        console.log(`# ${transport}: ${moved.videoWidth}x${moved.videoHeight}, luma ${bright.mean.toFixed(1)}±${bright.stddev.toFixed(1)}, ` +
          `rate ${await page.textContent('#rate')}`);

        // Toggles and the bitrate cap reach the plugin and are accepted.
        const before = (await demoState(page)).events.length;
        await page.uncheck('#video');
        await page.selectOption('#bitrate', '256');
        await waitFor('two plugin acknowledgements', async () => {
          const st = await noErrors();
          return st.events.slice(before).filter((e) => e.message && e.message.result === 'ok').length >= 2;
        }, { timeout: 10000 });
        await page.check('#video');

        // A plugin error is shown, not swallowed (a body EchoTest does not understand: 413).
        await page.evaluate(() => echo.send({ message: { foo: true } }));
        const shown = await waitFor('the plugin error on the page', () => errorBox(page), { timeout: 10000 });
        assert.match(shown, /EchoTest plugin error 413: /);

        // Stop: the call ends, the buttons reset, nothing else is reported as an error.
        await page.click('#stop');
        await waitFor('the page to be stopped', async () => (await demoState(page)).phase === 'stopped', { timeout: 5000 });
        assert.equal(await page.isEnabled('#start'), true);
        assert.equal((await demoState(page)).errors.length, 1, 'only the provoked plugin error');
        ok = true;
      } finally {
        if (!ok) {
          fs.mkdirSync(ARTIFACTS, { recursive: true });
          await page.screenshot({ path: path.join(ARTIFACTS, `demo-echotest-${transport}-failed.png`) }).catch(() => {});
          console.log(`# console:\n${browser.consoleLines.join('\n')}\n# server log: ${server.logPath}\n${server.logTail(30)}`);
        }
        await browser.close();
      }
    });
  }

  for (const transport of ['ws', 'http']) {
    test(`an unreachable server is reported on the page (${transport})`, { timeout: 60000 }, async () => {
      const port = await deadPort();
      const url = transport === 'http' ? `http://127.0.0.1:${port}/janus` : `ws://127.0.0.1:${port}/`;
      const browser = await startBrowser();
      const { page } = browser;
      try {
        await page.goto(`${server.webUrl}echotest.html?server=${encodeURIComponent(url)}`);
        await page.click('#start');
        const text = await waitFor('the error box', () => errorBox(page), { timeout: 15000 });
        assert.match(text, /Server unreachable/);
        assert.ok(text.includes(url), `the message names ${url}: ${text}`);
        assert.equal(await page.isEnabled('#start'), true, 'Start can be pressed again');
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(ARTIFACTS, `demo-echotest-unreachable-${transport}.png`) });
      } finally {
        await browser.close();
      }
    });
  }

  // Not the demo but the library under it: janus.js's tracks API in the browser, on the VideoRoom
  // plugin (which makes the client answer an offer): a simulcast publisher, a receive-only
  // subscriber via createAnswer, mute, DTMF, replaceTracks, getBitrate, hangup/detach/destroy.
  test('janus.js in the browser: VideoRoom publisher (simulcast) and subscriber (createAnswer)', { timeout: 90000 }, async () => {
    const browser = await startBrowser();
    const { page } = browser;
    try {
      await page.goto(`${server.webUrl}index.html`);
      await page.addScriptTag({ url: 'janus.js' });
      const result = await page.evaluate(async (wsUrl) => {
        const log = [];
        const until = (what, fn, ms = 15000) => new Promise((resolve, reject) => {
          const t0 = Date.now();
          const tick = () => {
            const v = fn();
            if (v) return resolve(v);
            if (Date.now() - t0 > ms) return reject(new Error('timed out waiting for ' + what + '; log: ' + log.join(' | ')));
            setTimeout(tick, 50);
          };
          tick();
        });
        await new Promise((r) => Janus.init({ debug: false, callback: r }));
        const janus = await new Promise((resolve, reject) => {
          const j = new Janus({ server: wsUrl, iceServers: [], success: () => resolve(j), error: reject });
        });
        const attach = (name) => new Promise((resolve, reject) => {
          const st = { events: [], local: [], remote: [], up: false };
          janus.attach({
            plugin: 'janus.plugin.videoroom',
            success: (h) => { st.handle = h; resolve(st); },
            error: reject,
            onmessage: (msg, jsep) => { log.push(name + ':' + JSON.stringify(msg).slice(0, 80)); st.events.push({ msg, jsep }); },
            webrtcState: (up) => { st.up = up; },
            onlocaltrack: (track, added) => st.local.push({ kind: track.kind, id: track.id, added }),
            onremotetrack: (track, mid, added) => st.remote.push({ track, mid, added }),
          });
        });
        const send = (h, message, jsep) => new Promise((resolve, reject) => h.send({ message, jsep, success: resolve, error: reject }));
        const event = (st, pred) => until('an event', () => st.events.find((e) => pred(e.msg)));

        const room = 1 + Math.floor(Math.random() * 1e9);
        const pub = await attach('pub');
        await send(pub.handle, { request: 'create', room, publishers: 2 });
        const offer = await new Promise((resolve, reject) => pub.handle.createOffer({
          tracks: [
            { type: 'audio', capture: true, recv: false },
            { type: 'video', capture: { width: 1280, height: 720 }, recv: false, simulcast: true },
          ],
          success: resolve, error: reject,
        }));
        await send(pub.handle, { request: 'joinandconfigure', ptype: 'publisher', room, display: 'lib' }, offer);
        const joined = await event(pub, (m) => m.videoroom === 'joined');
        const answered = await until('the publisher answer', () => pub.events.find((e) => e.jsep));
        await new Promise((resolve, reject) => pub.handle.handleRemoteJsep({ jsep: answered.jsep, success: resolve, error: reject }));
        await until('publisher webrtcup', () => pub.up);
        const videoSender = pub.handle.getPeerConnection().getSenders().find((s) => s.track && s.track.kind === 'video');
        const encodings = videoSender.getParameters().encodings.map((e) => e.rid);

        const sub = await attach('sub');
        await send(sub.handle, { request: 'join', ptype: 'subscriber', room, streams: [{ feed: joined.msg.id }] });
        const offered = await until('the subscriber offer', () => sub.events.find((e) => e.jsep));
        const answer = await new Promise((resolve, reject) => sub.handle.createAnswer({ jsep: offered.jsep, tracks: [], success: resolve, error: reject }));
        await send(sub.handle, { request: 'start' }, answer);
        await until('subscriber webrtcup', () => sub.up);
        const remote = await until('a remote video track', () => sub.remote.find((r) => r.added && r.track.kind === 'video'));
        const video = document.createElement('video');
        video.muted = true;
        document.body.appendChild(video);
        Janus.attachMediaStream(video, new MediaStream([remote.track]));
        await video.play().catch(() => {});
        await until('subscriber video frames', () => video.videoWidth > 0, 20000);
        await until('a subscriber bitrate', () => /^[1-9]\d* kbits\/sec$/.test(sub.handle.getBitrate()), 10000);

        // The publisher's audio-level header extension reaches the subscriber (rewritten to the
        // subscriber's id): Chromium reports a level only from that extension, for audio it plays.
        const audioReceiver = sub.handle.getPeerConnection().getReceivers().find((r) => r.track && r.track.kind === 'audio');
        const audio = document.createElement('audio');
        document.body.appendChild(audio);
        audio.srcObject = new MediaStream([audioReceiver.track]);
        await audio.play().catch(() => {});
        let lastSources = 'none';
        const audioLevel = await until('an audio level from the extension', () => {
          const sources = audioReceiver.getSynchronizationSources();
          lastSources = JSON.stringify(sources);
          return sources.length && typeof sources[0].audioLevel === 'number' ? 'number' : null;
        }, 10000).catch(() => `no level; sources ${lastSources}`);

        // Plugin-initiated ICE restart: `configure` with `restart` brings a new offer with new ICE
        // credentials; once answered, the subscription keeps decoding.
        const ufrag = (sdp) => (sdp.match(/a=ice-ufrag:(\S+)/) || [])[1];
        const decoded = async () => {
          const stats = await sub.handle.getPeerConnection().getStats();
          let n = 0;
          stats.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') n += r.framesDecoded || 0; });
          return n;
        };
        const offers = sub.events.filter((e) => e.jsep).length;
        await send(sub.handle, { request: 'configure', restart: true });
        const restarted = await until('the restart offer', () => sub.events.filter((e) => e.jsep)[offers]);
        const reanswer = await new Promise((resolve, reject) => sub.handle.createAnswer({ jsep: restarted.jsep, tracks: [], success: resolve, error: reject }));
        await send(sub.handle, { request: 'start' }, reanswer);
        const framesAtRestart = await decoded();
        const t0 = Date.now();
        while (await decoded() < framesAtRestart + 20) {
          if (Date.now() - t0 > 15000) throw new Error('no frames after the ICE restart; log: ' + log.join(' | '));
          await new Promise((r) => setTimeout(r, 200));
        }
        const restart = {
          event: restarted.msg.configured,
          newUfrag: ufrag(restarted.jsep.sdp) !== ufrag(offered.jsep.sdp),
          ourNewUfrag: ufrag(reanswer.sdp) !== ufrag(answer.sdp),
        };

        const devices = await new Promise((resolve) => Janus.listDevices(resolve));
        const kinds = [...new Set(devices.map((d) => d.kind))].sort();
        const muted = [pub.handle.isVideoMuted(), pub.handle.muteVideo(), pub.handle.isVideoMuted(), pub.handle.unmuteVideo(), pub.handle.isVideoMuted()];
        const dtmf = await new Promise((resolve) => pub.handle.dtmf({ dtmf: { tones: '1#' }, success: () => resolve('ok'), error: resolve }));
        const before = videoSender.track.id;
        await new Promise((resolve, reject) => pub.handle.replaceTracks({ tracks: [{ type: 'video', capture: true }], success: resolve, error: reject }));
        const replaced = videoSender.track && videoSender.track.id !== before;
        const localTracks = pub.handle.getLocalTracks().map((t) => t.type).sort();

        let cleaned = 0;
        pub.handle.hangup(true);
        await new Promise((resolve, reject) => sub.handle.detach({ success: resolve, error: reject }));
        await new Promise((resolve) => janus.destroy({ success: resolve }));
        cleaned = janus.isConnected() ? 0 : 1;
        return {
          encodings, muted, dtmf, kinds, replaced, localTracks, cleaned, restart, audioLevel,
          subSize: [video.videoWidth, video.videoHeight],
          localEvents: pub.local.map((l) => `${l.kind}:${l.added}`),
        };
      }, server.wsUrl);
      console.log(`# library: ${JSON.stringify(result)}`);
      assert.deepEqual(result.encodings, ['h', 'm', 'l'], 'three simulcast encodings');
      assert.ok(result.kinds.includes('audioinput') && result.kinds.includes('videoinput'), `listDevices: ${result.kinds}`);
      assert.deepEqual(result.muted, [false, true, true, true, false], 'isVideoMuted/muteVideo/unmuteVideo');
      // The server negotiates telephone-event next to Opus, so the browser can send DTMF.
      assert.equal(result.dtmf, 'ok', `dtmf: ${result.dtmf}`);
      assert.equal(result.replaced, true, 'replaceTracks swapped the video track');
      assert.deepEqual(result.localTracks, ['audio', 'video']);
      assert.ok(result.subSize[0] > 0, 'the subscriber sees video');
      assert.deepEqual(result.restart, { event: 'ok', newUfrag: true, ourNewUfrag: true }, 'plugin-initiated ICE restart');
      assert.equal(result.audioLevel, 'number', 'audio level relayed to the subscriber');
      assert.ok(result.localEvents.includes('video:true') && result.localEvents.includes('video:false'), 'onlocaltrack added and removed');
      assert.equal(result.cleaned, 1);
    } finally {
      await browser.close();
    }
  });

  // trickle:false over HTTP, through custom dependencies that record every request: the offer
  // carries its candidates, says trickle:false, and no trickle request is sent; the echo works.
  test('janus.js in the browser: trickle:false over HTTP with custom dependencies (EchoTest)', { timeout: 60000 }, async () => {
    const browser = await startBrowser();
    const { page } = browser;
    try {
      await page.goto(`${server.webUrl}index.html`);
      await page.addScriptTag({ url: 'janus.js' });
      const result = await page.evaluate(async (httpUrl) => {
        const sent = [];
        const deps = Janus.useDefaultDependencies();
        const plain = deps.httpAPICall;
        deps.httpAPICall = (url, options) => { if (options.body) sent.push(options.body.janus); plain(url, options); };
        await new Promise((r) => Janus.init({ debug: false, dependencies: deps, callback: r }));
        const janus = await new Promise((resolve, reject) => {
          const j = new Janus({ server: httpUrl, iceServers: [], success: () => resolve(j), error: reject });
        });
        const st = { up: false, video: null };
        const handle = await new Promise((resolve, reject) => janus.attach({
          plugin: 'janus.plugin.echotest',
          success: resolve,
          error: reject,
          webrtcState: (up) => { st.up = up; },
          onmessage: (msg, jsep) => { if (jsep) st.handle.handleRemoteJsep({ jsep }); },
          onremotetrack: (track, mid, added) => { if (added) st[track.kind] = track; },
        }));
        st.handle = handle;
        const jsep = await new Promise((resolve, reject) => handle.createOffer({
          tracks: [{ type: 'audio', capture: true, recv: true }, { type: 'video', capture: true, recv: true }],
          trickle: false, success: resolve, error: reject,
        }));
        await new Promise((resolve, reject) => handle.send({ message: { audio: true, video: true }, jsep, success: resolve, error: reject }));
        const t0 = Date.now();
        while (!(st.up && st.video) && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 100));
        const v = document.createElement('video');
        v.muted = true;
        document.body.appendChild(v);
        Janus.attachMediaStream(v, new MediaStream([st.video, st.audio].filter(Boolean)));
        await v.play().catch(() => {});
        while (!v.videoWidth && Date.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 100));
        // Chromium's fake microphone beeps, so the local level rises above silence. Headless
        // Chromium reports audioLevel 0 for every received track (no playout device; the same
        // with two PeerConnections in one page and no server), so remote is only checked for shape.
        const levels = { local: 0, remote: 0 };
        const until = Date.now() + 10000;
        while (!levels.local && Date.now() < until) {
          levels.local = Math.max(levels.local, await new Promise((r) => handle.getLocalVolume(r)));
          levels.remote = Math.max(levels.remote, await new Promise((r) => handle.getRemoteVolume(r)));
          await new Promise((r) => setTimeout(r, 100));
        }
        const info = await new Promise((resolve, reject) => janus.getInfo({ success: resolve, error: reject }));
        await new Promise((resolve) => janus.destroy({ success: resolve }));
        return { trickle: jsep.trickle, candidatesInSdp: (jsep.sdp.match(/a=candidate:/g) || []).length, sent, up: st.up, width: v.videoWidth, levels, info: info.janus };
      }, server.httpUrl);
      console.log(`# trickle:false: ${JSON.stringify(result)}`);
      assert.equal(result.trickle, false);
      assert.ok(result.candidatesInSdp > 0, 'the offer carries its candidates');
      assert.ok(!result.sent.includes('trickle'), `no trickle requests: ${result.sent}`);
      assert.ok(result.width > 0, 'echoed video arrives');
      assert.ok(result.levels.local > 0 && typeof result.levels.remote === 'number', `audio levels ${JSON.stringify(result.levels)}`);
      assert.equal(result.info, 'server_info', 'getInfo');
    } finally {
      await browser.close();
    }
  });
});

// The VideoRoom demo page (static/videoroom.html), kept in this file for now (it belongs in its own
// demo_videoroom.test.mjs): two participants in room 1234, one over WebSocket and one over HTTP,
// each sees the other's moving video with the other's name; when one leaves, the other's tile goes.
// The Admin page (static/admin.html), kept here for now as well: while the EchoTest demo runs in
// one page, the Admin page lists its handle with the EchoTest plugin and a PeerConnection up,
// and shows its live handle_info.
describe('Admin page (static/admin.html)', { timeout: 120000 }, () => {
  let server;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    if (server) await server.stop();
  });

  test('the running EchoTest shows up with its handle_info', { timeout: 90000 }, async () => {
    const browser = await startBrowser();
    const echo = browser.page;
    const adminPage = await echo.context().newPage();
    try {
      await echo.goto(`${server.webUrl}echotest.html?server=${encodeURIComponent(server.wsUrl)}`);
      await echo.click('#start');
      await waitFor('the echo to be up', async () => (await echo.evaluate(() => window.demoState)).webrtcup, { timeout: 25000 });
      await adminPage.goto(`${server.webUrl}admin.html?admin=${encodeURIComponent(server.adminUrl)}`);
      const row = await waitFor('an EchoTest handle that is up', async () => {
        const st = await adminPage.evaluate(() => window.demoState);
        if (st.errors.length) throw new Error(`page errors: ${st.errors.join(' | ')}`);
        return st.rows.find((r) => r.plugin === 'janus.plugin.echotest' && r.ready);
      }, { timeout: 15000 });
      await adminPage.click(`tr[data-handle="${row.handle}"]`);
      const info = JSON.parse(await adminPage.textContent('#info'));
      assert.equal(info.plugin, 'janus.plugin.echotest');
      assert.equal(info.flags.ready, true);
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await adminPage.screenshot({ path: path.join(ARTIFACTS, 'demo-admin.png') });
      await echo.click('#stop');
      await waitFor('the handle to disappear', async () => {
        const st = await adminPage.evaluate(() => window.demoState);
        return !st.rows.some((r) => r.handle === row.handle);
      }, { timeout: 10000 });
    } finally {
      await browser.close();
    }
  });

  test('janus.js destroys its sessions when the page goes away (destroyOnUnload, http and ws)', async () => {
    const sessions = async () => (await (await fetch(server.adminUrl, {
      method: 'POST', body: JSON.stringify({ janus: 'list_sessions', transaction: 'unload' }),
    })).json()).sessions;
    const browser = await startBrowser();
    try {
      const { page } = browser;
      for (const url of [server.httpUrl, server.wsUrl]) {
        await page.goto(`${server.webUrl}index.html`);
        await page.addScriptTag({ url: 'janus.js' });
        await page.evaluate((u) => new Promise((resolve) => Janus.init({ callback: () => { window.j = new Janus({ server: u, success: resolve }); } })), url);
        const id = await page.evaluate(() => window.j.getSessionId());
        assert.ok((await sessions()).includes(id), `session ${id} exists`);
        await page.goto(`${server.webUrl}index.html?next`);
        await waitFor(`session ${id} to be destroyed after unload (${url})`, async () => !(await sessions()).includes(id), { timeout: 5000 });
      }
    } finally {
      await browser.close();
    }
  });

  test('an unreachable Admin API is reported on the page', async () => {
    const browser = await startBrowser();
    try {
      const port = await deadPort();
      await browser.page.goto(`${server.webUrl}admin.html?admin=${encodeURIComponent(`http://127.0.0.1:${port}/admin`)}`);
      const text = await waitFor('the error box', () => errorBox(browser.page), { timeout: 10000 });
      assert.match(text, /Admin API unreachable at http:\/\/127\.0\.0\.1:/);
    } finally {
      await browser.close();
    }
  });
});

// The VideoCall demo page (static/videocall.html), kept here for now as well: erin (WebSocket)
// calls frank (HTTP long-poll); he answers; each sees the other's moving video; he hangs up.
