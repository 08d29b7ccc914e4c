// Simulcast in headless Chromium: the page sends three layers (1280x720, 640x360, 320x180) through
// a VideoRoom (publisher and subscriber), a VideoCall (alice calls bob) or the EchoTest, and
// receives them; asking for a substream changes the picture size the receiver's <video> shows.
// Run with `node --test tests/browser/`.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { ARTIFACTS, CHROMIUM, startBrowser, startServer, startStatic, waitFor } from './harness.mjs';

const width = (page) => page.evaluate(() => document.getElementById('remote').videoWidth);
const simState = (page) => page.evaluate(() => window.simState);

describe('Simulcast in headless Chromium', { timeout: 180000 }, () => {
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

  for (const plugin of ['videoroom', 'videocall', 'echotest']) test(`the receiver switches between simulcast layers (${plugin})`, { timeout: 150000 }, async () => {
    const browser = await startBrowser();
    const { page } = browser;
    let ok = false;
    try {
      await page.goto(`${statik.base}/simulcast.html?plugin=${plugin}&ws=${encodeURIComponent(server.wsUrl)}`);
      await waitFor('publisher and subscriber set up', async () => {
        const st = await simState(page);
        if (st.errors.length) throw new Error(st.errors.join(' | '));
        return st.ready;
      }, { timeout: 30000 });
      if (plugin === 'videoroom') {
        const st = await simState(page);
        assert.equal(st.publisherStreams[0].simulcast, true, JSON.stringify(st.publisherStreams));
        // Janus compat (8.2): a subscriber stream of a simulcast feed describes its layers.
        assert.deepEqual(st.subscriberStreams[0].simulcast,
          { substream: -1, 'substream-target': 2, 'temporal-layer': -1, 'temporal-layer-target': 2 },
          JSON.stringify(st.subscriberStreams));
      }

      // Default: the best layer the publisher sends. The browser starts with the low layer and
      // adds the others as its bandwidth estimate grows; the subscriber moves up with them.
      await waitFor('subscriber video at 640 wide or more', async () => (await width(page)) >= 640, { timeout: 40000 });

      await page.evaluate(() => window.selectLayer(0));
      await waitFor('the lowest layer (320 wide)', async () => (await width(page)) === 320, { timeout: 20000 });
      await page.screenshot({ path: path.join(ARTIFACTS, `simulcast-${plugin}-substream-0.png`) });
      // Janus compat (8.1, 8.2, 8.6): asking for the layer already received is answered at once.
      await waitFor('the substream 0 event', async () => (await simState(page)).substreams.includes(0), { timeout: 10000 });
      const seen = (await simState(page)).substreams.length;
      await page.evaluate(() => window.selectLayer(0));
      await waitFor('an immediate substream 0 event', async () => {
        const again = (await simState(page)).substreams.slice(seen);
        return again.includes(0);
      }, { timeout: 3000 });

      await page.evaluate(() => window.selectLayer(2));
      const up = await waitFor('a higher layer again', async () => {
        const w = await width(page);
        return w > 320 ? w : null;
      }, { timeout: 20000 });
      assert.ok(up >= 640, `width after asking for substream 2: ${up}`);
      const events = (await simState(page)).substreams;
      assert.ok(events.includes(0), `substream events: ${JSON.stringify(events)}`);
      if (plugin === 'videoroom') {
        // The stream descriptions follow the layers: the one received and the one asked for.
        const streams = await page.evaluate(() => window.subscribeAgain());
        assert.ok(streams[0].simulcast.substream >= 1, JSON.stringify(streams));
        assert.equal(streams[0].simulcast['substream-target'], 2, JSON.stringify(streams));
        assert.deepEqual(streams[1].simulcast,
          { substream: -1, 'substream-target': 1, 'temporal-layer': -1, 'temporal-layer-target': 2, fallback: 500000 },
          JSON.stringify(streams));
      }
      ok = true;
    } finally {
      if (!ok) {
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        const st = await simState(page).catch(() => null);
        fs.writeFileSync(path.join(ARTIFACTS, `simulcast-${plugin}-failure.json`),
          JSON.stringify({ state: st, console: browser.consoleLines, serverLog: server.logPath }, null, 2));
      }
      await browser.close();
    }
  });
});
