// What every browser test needs: a real Portunus on ephemeral loopback ports, a static server for
// this folder's pages, and a headless Chromium with fake media devices and loopback ICE.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
export const ARTIFACTS = path.join(ROOT, 'target', 'test-artifacts', 'browser');
export const LOGS = path.join(ROOT, 'target', 'test-logs');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
  // Remote audio is played (Chromium tracks RTP sources of audio it plays out).
  '--autoplay-policy=no-user-gesture-required',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with `promise`'s outcome, or with `fallback` after `ms` (the timer never outlives it). */
export async function within(ms, promise, fallback) {
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(fallback), ms); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `fn` until it returns a truthy value; throws after `timeout` ms with `what` and the last value. */
export async function waitFor(what, fn, { timeout = 15000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastError;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      lastError = e;
    }
    await sleep(interval);
  }
  const detail = lastError ? `; last error: ${lastError.message}` : `; last value: ${JSON.stringify(last)}`;
  throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail}`);
}

export function binary() {
  if (process.env.PORTUNUS_BIN) return process.env.PORTUNUS_BIN;
  for (const profile of ['release', 'debug']) {
    const p = path.join(ROOT, 'target', profile, 'portunus');
    if (fs.existsSync(p)) return p;
  }
  throw new Error('build portunus first (cargo build --release), or set PORTUNUS_BIN');
}

/**
 * A running Portunus with every listener on an ephemeral loopback port (as tests/e2e/conftest.py),
 * serving this repository's static/ on its web port. `env` and `args` add to the defaults.
 */
export async function startServer({ env: extraEnv = {}, args: extraArgs = [] } = {}) {
  fs.mkdirSync(LOGS, { recursive: true });
  const logPath = path.join(LOGS, `browser-server-${process.pid}-${Date.now()}.log`);
  const logFd = fs.openSync(logPath, 'w');
  const env = {
    ...process.env,
    PORTUNUS__HTTP__IP: '127.0.0.1',
    PORTUNUS__WEBSOCKETS__WS_IP: '127.0.0.1',
    PORTUNUS__NAT__ICE_ENFORCE_LIST: '127.0.0.1',
    PORTUNUS__WEB__IP: '127.0.0.1',
    PORTUNUS__GENERAL__DEBUG_LEVEL: process.env.PORTUNUS_BROWSER_LOG_LEVEL || '4',
    ...extraEnv,
  };
  const args = ['--http-port', '0', '--ws-port', '0', '--admin-http-port', '0', '--admin-ws-port', '0', '--web-port', '0',
    '--web-root', path.join(ROOT, 'static'), ...extraArgs];
  const proc = spawn(binary(), args, { env, stdio: ['ignore', 'pipe', logFd] });
  fs.closeSync(logFd);
  // Never leave the server behind, even if the test process dies early.
  const killOnExit = () => proc.kill('SIGKILL');
  process.once('exit', killOnExit);
  proc.once('exit', () => process.removeListener('exit', killOnExit));
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = readline.createInterface({ input: proc.stdout });
  const addrs = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready within 30 s; see ${logPath}`)), 30000);
    lines.on('line', (line) => {
      if (line.startsWith('PORTUNUS_READY ')) {
        clearTimeout(timer);
        resolve(JSON.parse(line.slice('PORTUNUS_READY '.length)));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before it was ready; see ${logPath}`));
    });
  }).catch((e) => { proc.kill('SIGKILL'); throw e; });
  // Keep draining stdout so the server never blocks on a full pipe.
  lines.on('line', () => {});
  return {
    proc,
    logPath,
    httpUrl: `http://${addrs.http}/janus`,
    wsUrl: `ws://${addrs.ws}/`,
    // The demo pages (static/), served by Portunus itself; null if the web listener is off.
    webUrl: addrs.web ? `http://${addrs.web}/` : null,
    adminUrl: addrs.admin_http ? `http://${addrs.admin_http}/admin` : null,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const done = await within(10000, exited.then(() => true), false);
      if (!done) {
        proc.kill('SIGKILL');
        await within(5000, exited);
      }
    },
    logTail(n = 60) {
      try {
        return fs.readFileSync(logPath, 'utf8').split('\n').slice(-n).join('\n');
      } catch {
        return '';
      }
    },
  };
}

/** Serves this folder's pages (`/<name>.html`) on 127.0.0.1:0. */
export async function startStatic() {
  const server = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, 'http://x').pathname);
    const file = path.join(HERE, name);
    if (name.endsWith('.html') && fs.existsSync(file)) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(fs.readFileSync(file));
    } else if (name === 'favicon.ico') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    base: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** One headless Chromium with a fresh profile; `close()` ends it and removes the profile. */
export async function startBrowser() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portunus-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 940, height: 760 },
    timeout: 30000,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15000);
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  return {
    page,
    consoleLines,
    async close() {
      await within(15000, context.close().catch(() => {}));
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

