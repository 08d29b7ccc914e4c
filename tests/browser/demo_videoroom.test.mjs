// The VideoRoom demo page (static/videoroom.html) on our janus.js, served by Portunus: two people
// join the demo room, each sees the other's video playing; through both transports.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { ARTIFACTS, CHROMIUM, startBrowser, startServer, waitFor } from './harness.mjs';

describe('VideoRoom demo page (static/videoroom.html)', { timeout: 180000 }, () => {
  let server;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    if (server) await server.stop();
  });

  const urlOf = (t) => (t === 'ws' ? server.wsUrl : server.httpUrl);

  /** The first remote tile: its caption and video state. */
  const remoteTile = (page) => page.evaluate(() => {
    const fig = document.querySelector('figure[data-feed]');
    if (!fig) return null;
    const v = fig.querySelector('video');
    return { name: fig.querySelector('figcaption span').textContent, w: v.videoWidth, t: v.currentTime };
  });

  for (const [ta, tb] of [['ws', 'http'], ['http', 'ws']]) test(`two participants see each other (${ta} and ${tb})`, { timeout: 120000 }, async () => {
    const browser = await startBrowser();
    const alice = browser.page;
    const bob = await alice.context().newPage();
    try {
      await alice.goto(`${server.webUrl}videoroom.html?server=${encodeURIComponent(urlOf(ta))}&name=alice-${ta}`);
      await bob.goto(`${server.webUrl}videoroom.html?server=${encodeURIComponent(urlOf(tb))}&name=bob-${ta}`);
      await alice.click('#join');
      await waitFor('alice publishing', async () => /publishing/.test(await alice.textContent('#mystate')), { timeout: 20000 });
      await bob.click('#join');
      for (const [page, other] of [[alice, `bob-${ta}`], [bob, `alice-${ta}`]]) {
        const first = await waitFor(`${other}'s video`, async () => {
          const st = await page.evaluate(() => window.demoState);
          if (st.errors.length) throw new Error(`page errors: ${st.errors.join(' | ')}`);
          const tile = await remoteTile(page);
          return tile && tile.w > 0 ? tile : null;
        }, { timeout: 30000 });
        assert.equal(first.name, other);
        await waitFor(`${other}'s video to play`, async () => (await remoteTile(page)).t > first.t + 0.5, { timeout: 10000 });
      }
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await alice.screenshot({ path: path.join(ARTIFACTS, `demo-videoroom-alice-${ta}.png`) });
      await bob.click('#leave');
      await waitFor('bob\'s tile to leave alice\'s page', async () => (await remoteTile(alice)) === null, { timeout: 10000 });
      assert.deepEqual((await alice.evaluate(() => window.demoState)).errors, []);
      await alice.click('#leave');
    } finally {
      await browser.close();
    }
  });
});

