// VP9 and AV1 SVC in headless Chromium: the page sends VP9 (or AV1, whose layers travel in the
// Dependency Descriptor header extension) L3T3_KEY of a 1280x720 fake camera (spatial layers 320,
// 640 and 1280 wide) through the EchoTest, or a VideoRoom with `video_svc` (publisher and
// subscriber), and receives it; asking for `spatial_layer` 0 shrinks the picture the
// receiver's <video> shows to the base layer and brings a `spatial_layer` event, asking for 2
// brings the full size back; `temporal_layer` 0 cuts the frame rate to a quarter, 2 restores it.
// Run with `node --test tests/browser/`.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { ARTIFACTS, CHROMIUM, startBrowser, startServer, startStatic, waitFor } from './harness.mjs';

const width = (page) => page.evaluate(() => document.getElementById('remote').videoWidth);
const svcState = (page) => page.evaluate(() => window.svcState);
const framesDecoded = (page) => page.evaluate(() => document.getElementById('remote').getVideoPlaybackQuality?.().totalVideoFrames ?? 0);

describe('VP9 and AV1 SVC in headless Chromium', { timeout: 800000 }, () => {
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

  const cases = [['echotest', 'vp9'], ['videoroom', 'vp9'], ['echotest via janus.js', 'vp9'], ['echotest', 'av1'], ['videoroom', 'av1']];
  for (const [plugin, codec] of cases) test(`the receiver switches between ${codec.toUpperCase()} SVC spatial layers (${plugin})`, { timeout: 170000 }, async (t) => {
    const browser = await startBrowser();
    const { page } = browser;
    let ok = false;
    const name = `svc-${codec}-${plugin.replaceAll(' ', '-')}`;
    const janusjs = plugin.endsWith('janus.js') ? `&janusjs=${encodeURIComponent(`${server.webUrl}janus.js`)}` : '';
    try {
      await page.goto(`${statik.base}/svc.html?plugin=${plugin.split(' ')[0]}&codec=${codec}${janusjs}&ws=${encodeURIComponent(server.wsUrl)}`);
      await waitFor('sender and receiver set up', async () => {
        const st = await svcState(page);
        if (st.errors.length) throw new Error(st.errors.join(' | '));
        return st.ready;
      }, { timeout: 30000 });
      assert.equal(await page.evaluate(() => window.senderMode()), 'L3T3_KEY', 'Chromium sends L3T3_KEY');
      if (janusjs) {
        const hint = (await svcState(page)).sentSvcHint;
        assert.deepEqual(hint, [{ mindex: 0, mid: '0', svc: 'L3T3_KEY' }], 'janus.js tells the server about SVC');
      }
      if (plugin === 'videoroom') {
        const st = await svcState(page);
        const video = st.publisherStreams.find((s) => s.type === 'video');
        assert.equal(video.svc, true, JSON.stringify(st.publisherStreams));
        assert.equal(video.codec, codec);
        const sub = st.subscriberStreams.find((s) => s.type === 'video');
        const expected = { 'spatial-layer': -1, 'target-spatial-layer': 2, 'temporal-layer': -1, 'target-temporal-layer': 2 };
        assert.deepEqual(sub.svc, expected, JSON.stringify(st.subscriberStreams));
      }

      // Default: every layer the sender sends. Chromium adds its upper spatial layers as its
      // bandwidth estimate grows (and may hold the top one back when the machine is busy); the
      // receiver's picture grows with them.
      await waitFor('received video at 640 wide or more', async () => (await width(page)) >= 640, { timeout: 60000 });
      const full = await waitFor('the full 1280 wide layer', async () => ((await width(page)) >= 1280 ? 1280 : null), { timeout: 20000 })
        .catch(async () => width(page));
      const decoded = await framesDecoded(page);
      await waitFor('frames keep coming', async () => (await framesDecoded(page)) > decoded + 10, { timeout: 10000 });
      const top = (await svcState(page)).spatial.at(-1);
      assert.ok(top >= 1, `the top spatial layer received: ${top}`);

      const before0 = (await svcState(page)).spatial.length;
      await page.evaluate(() => window.selectLayer(0));
      // Each L3 layer is twice as wide as the one below: the base layer is a quarter of layer 2.
      const small = await waitFor('the base layer', async () => {
        const w = await width(page);
        return w > 0 && w <= full / 2 ** top * 1.2 ? w : null;
      }, { timeout: 20000 });
      assert.ok(small >= full / 2 ** top * 0.8, `base layer width ${small} vs ${full} at layer ${top}`);
      await waitFor('a spatial_layer 0 event', async () => (await svcState(page)).spatial.slice(before0).includes(0), { timeout: 10000 });
      const decodedSmall = await framesDecoded(page);
      await waitFor('base layer frames keep coming', async () => (await framesDecoded(page)) > decodedSmall + 10, { timeout: 10000 });
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}-spatial-0.png`) });
      // Janus compat (8.1, 8.2): asking for the spatial layer already received is answered at once.
      const again0 = (await svcState(page)).spatial.length;
      await page.evaluate(() => window.selectLayer(0));
      await waitFor('an immediate spatial_layer 0 event', async () => (await svcState(page)).spatial.slice(again0).includes(0), { timeout: 3000 });

      const before2 = (await svcState(page)).spatial.length;
      await page.evaluate(() => window.selectLayer(2));
      const up = await waitFor('a larger picture again', async () => {
        const w = await width(page);
        return w >= 640 ? w : null;
      }, { timeout: 30000 });
      assert.ok(up > small, `width after asking for spatial layer 2: ${up}`);
      const raised = (await svcState(page)).spatial.slice(before2);
      assert.ok(raised.some((n) => n >= 1), `spatial_layer events after asking for 2: ${JSON.stringify(raised)}`);

      // Temporal layer 0 of L3T3: a quarter of the frame rate; then all of it again.
      const fpsAll = await waitFor('a frame rate', async () => page.evaluate(() => window.recvFps()), { timeout: 10000 });
      await page.evaluate(() => window.selectTemporal(0));
      const fpsLow = await waitFor('a lower frame rate', async () => {
        const fps = await page.evaluate(() => window.recvFps());
        return fps !== null && fps > 0 && fps <= fpsAll / 2.5 ? fps : null;
      }, { timeout: 20000, interval: 500 });
      await waitFor('a temporal_layer 0 event', async () => (await svcState(page)).temporal.includes(0), { timeout: 10000 });
      await page.evaluate(() => window.selectTemporal(2));
      const fpsBack = await waitFor('the full frame rate again', async () => {
        const fps = await page.evaluate(() => window.recvFps());
        return fps !== null && fps >= fpsAll * 0.7 ? fps : null;
      }, { timeout: 20000, interval: 500 });

      const st = await svcState(page);
      t.diagnostic(`frame rates: all ${fpsAll}, temporal layer 0 ${fpsLow}, back ${fpsBack}`);
      t.diagnostic(`widths: full ${full} (layer ${top}), base ${small}, up again ${up}; spatial_layer events ${JSON.stringify(st.spatial)}, temporal_layer ${JSON.stringify(st.temporal)}`);
      ok = true;
    } finally {
      if (!ok) {
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        const st = await svcState(page).catch(() => null);
        fs.writeFileSync(path.join(ARTIFACTS, `${name}-failure.json`),
          JSON.stringify({ state: st, console: browser.consoleLines, serverLog: server.logPath }, null, 2));
      }
      await browser.close();
    }
  });
});
