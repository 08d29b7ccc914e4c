// The TextRoom demo page (static/textroom.html): a message typed in one page appears in the other,
// with the sender's name; through both transports.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { ARTIFACTS, CHROMIUM, startBrowser, startServer, waitFor } from './harness.mjs';

describe('TextRoom demo page (static/textroom.html)', { timeout: 120000 }, () => {
  let server;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    if (server) await server.stop();
  });

  const urlOf = (t) => (t === 'ws' ? server.wsUrl : server.httpUrl);

  for (const [ta, tb] of [['ws', 'http'], ['http', 'ws']]) test(`a chat message appears in the other page (${ta} and ${tb})`, { timeout: 90000 }, async () => {
    const browser = await startBrowser();
    const carol = browser.page;
    const dave = await carol.context().newPage();
    const joined = (page) => waitFor('the page to join', async () => {
      const st = await page.evaluate(() => window.demoState);
      if (st.errors.length) throw new Error(`page errors: ${st.errors.join(' | ')}`);
      return st.phase === 'joined';
    }, { timeout: 20000 });
    try {
      await carol.goto(`${server.webUrl}textroom.html?server=${encodeURIComponent(urlOf(ta))}&name=carol-${ta}`);
      await dave.goto(`${server.webUrl}textroom.html?server=${encodeURIComponent(urlOf(tb))}&name=dave-${ta}`);
      await carol.click('#join');
      await joined(carol);
      await dave.click('#join');
      await joined(dave);
      await waitFor('carol to see dave join', async () => (await carol.textContent('#chat')).includes(`dave-${ta} joined.`), { timeout: 10000 });
      await carol.fill('#say', 'hello from carol');
      await carol.press('#say', 'Enter');
      await waitFor('the message in dave\'s page', async () => (await dave.textContent('#chat')).includes(`carol-${ta}:hello from carol`), { timeout: 10000 });
      await dave.fill('#say', 'hi carol');
      await dave.click('#send');
      await waitFor('the reply in carol\'s page', async () => (await carol.textContent('#chat')).includes(`dave-${ta}:hi carol`), { timeout: 10000 });
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await carol.screenshot({ path: path.join(ARTIFACTS, `demo-textroom-carol-${ta}.png`) });
      await dave.click('#leave');
      await waitFor('carol to see dave leave', async () => (await carol.textContent('#chat')).includes(`dave-${ta} left.`), { timeout: 10000 });
      assert.deepEqual((await carol.evaluate(() => window.demoState)).errors, []);
      const daveLines = (await dave.evaluate(() => window.demoState)).lines;
      assert.equal(daveLines.filter((l) => l === `carol-${ta}: hello from carol`).length, 1, `each message once: ${daveLines}`);
    } finally {
      await browser.close();
    }
  });
});

