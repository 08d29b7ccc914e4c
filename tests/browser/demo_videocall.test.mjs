// The VideoCall demo page (static/videocall.html): one person calls another, both see each other's
// video playing, hang-up returns both to registered; through both transports.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { ARTIFACTS, CHROMIUM, startBrowser, startServer, waitFor } from './harness.mjs';

describe('VideoCall demo page (static/videocall.html)', { timeout: 120000 }, () => {
  let server;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    if (server) await server.stop();
  });

  const urlOf = (t) => (t === 'ws' ? server.wsUrl : server.httpUrl);

  const phase = async (page) => {
    const st = await page.evaluate(() => window.demoState);
    if (st.errors.length) throw new Error(`page errors: ${st.errors.join(' | ')}`);
    return st.phase;
  };
  const remote = (page) => page.evaluate(() => {
    const v = document.getElementById('remote');
    return { w: v.videoWidth, t: v.currentTime };
  });

  for (const [ta, tb] of [['ws', 'http'], ['http', 'ws']]) test(`a call connected both ways (${ta} calls ${tb})`, { timeout: 90000 }, async () => {
    const browser = await startBrowser();
    const erin = browser.page;
    const frank = await erin.context().newPage();
    try {
      await erin.goto(`${server.webUrl}videocall.html?server=${encodeURIComponent(urlOf(ta))}&name=erin-${ta}&peer=frank-${ta}`);
      await frank.goto(`${server.webUrl}videocall.html?server=${encodeURIComponent(urlOf(tb))}&name=frank-${ta}`);
      await erin.click('#register');
      await frank.click('#register');
      for (const p of [erin, frank]) await waitFor('registration', async () => (await phase(p)) === 'registered', { timeout: 15000 });
      await erin.click('#call');
      await waitFor('frank\'s phone to ring', async () => (await phase(frank)) === 'ringing', { timeout: 15000 });
      assert.equal(await frank.textContent('#peername'), `erin-${ta}`);
      await frank.click('#answer');
      for (const [p, who] of [[erin, 'erin'], [frank, 'frank']]) {
        await waitFor(`${who} in the call`, async () => (await phase(p)) === 'incall', { timeout: 15000 });
        const first = await waitFor(`${who} sees video`, async () => { const r = await remote(p); return r.w > 0 ? r : null; }, { timeout: 20000 });
        await waitFor(`${who}'s video to play`, async () => (await remote(p)).t > first.t + 0.5, { timeout: 10000 });
      }
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await erin.screenshot({ path: path.join(ARTIFACTS, `demo-videocall-erin-${ta}.png`) });
      await frank.click('#hangup');
      for (const p of [erin, frank]) await waitFor('the call to end', async () => (await phase(p)) === 'registered', { timeout: 10000 });
    } finally {
      await browser.close();
    }
  });
});

