// Unit tests of static/janus.js in node (no browser): transaction matching when a plugin event
// arrives before its ack (fake servers that do exactly that, over HTTP long-poll and WebSocket),
// server-array fallback and reconnect with `claim` (the real Portunus binary).
// Node 20 has no global WebSocket, so the library gets a tiny RFC 6455 client through
// `Janus.init({dependencies})`; the same framing code runs the fake WebSocket server.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';

import { startServer, waitFor } from './harness.mjs';
import Janus from '../../static/janus.mjs';

// ---- a minimal WebSocket (text frames, close, ping) ----------------------------------------------

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function encodeFrame(opcode, payload, masked) {
  const data = Buffer.from(payload);
  const len = data.length;
  const head = [0x80 | opcode];
  const maskBit = masked ? 0x80 : 0;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 0xff);
  else {
    head.push(maskBit | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  }
  if (!masked) return Buffer.concat([Buffer.from(head), data]);
  const mask = crypto.randomBytes(4);
  const out = Buffer.from(data);
  for (let i = 0; i < out.length; i++) out[i] ^= mask[i % 4];
  return Buffer.concat([Buffer.from(head), mask, out]);
}

/** Feeds bytes from `socket` and calls `onFrame(opcode, payload)` per complete (unfragmented) frame. */
function readFrames(socket, head, onFrame) {
  let buf = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
  const drain = () => {
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0] & 0x0f;
      const masked = (buf[1] & 0x80) !== 0;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const maskOff = off;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskOff + (i % 4)];
      buf = buf.subarray(off + len);
      onFrame(opcode, payload);
    }
  };
  socket.on('data', (chunk) => { buf = Buffer.concat([buf, chunk]); drain(); });
  drain();
}

/** Browser-shaped WebSocket client: onopen/onmessage/onerror/onclose, send, close, readyState. */
class MiniWebSocket {
  static instances = [];

  constructor(url, protocol) {
    MiniWebSocket.instances.push(this);
    this.url = url;
    this.readyState = 0;
    this.protocol = '';
    const u = new URL(url);
    const key = crypto.randomBytes(16).toString('base64');
    const req = http.request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': key,
        ...(protocol ? { 'Sec-WebSocket-Protocol': protocol } : {}),
      },
    });
    req.on('upgrade', (res, socket, head) => {
      this.socket = socket;
      this.protocol = res.headers['sec-websocket-protocol'] || '';
      this.readyState = 1;
      socket.setNoDelay(true);
      socket.on('close', () => this._closed(1006));
      socket.on('error', () => {});
      readFrames(socket, head, (opcode, payload) => {
        if (opcode === 1) this._fire('onmessage', { data: payload.toString('utf8') });
        else if (opcode === 8) this._closed(payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
        else if (opcode === 9) socket.write(encodeFrame(10, payload, true));
      });
      this._fire('onopen', {});
    });
    const fail = () => {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this._fire('onerror', {});
      this._fire('onclose', { code: 1006 });
    };
    req.on('error', fail);
    req.on('response', fail);
    req.end();
  }

  _fire(name, ev) { setImmediate(() => { if (this[name]) this[name](ev); }); }

  _closed(code) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    if (this.socket) this.socket.destroy();
    this._fire('onclose', { code });
  }

  send(text) {
    if (this.readyState !== 1) throw new Error('WebSocket is not open');
    this.socket.write(encodeFrame(1, text, true));
  }

  close(code = 1000) {
    if (this.readyState !== 1) { this.readyState = 3; return; }
    const body = Buffer.alloc(2);
    body.writeUInt16BE(code);
    try { this.socket.write(encodeFrame(8, body, true)); } catch { /* gone */ }
    this._closed(code);
  }

  /** Test hook: the connection drops without a close handshake (network loss). */
  drop() { this.socket.destroy(); }
}

// ---- a fake Janus that answers a `message` with its plugin event first, then the ack -------------

const FAKE_SESSION = 1111;
const FAKE_HANDLE = 2222;

/** Replies to one request; `emit(msg)` delivers asynchronous messages (event before ack). */
function fakeJanusReply(req, emit) {
  const base = { transaction: req.transaction };
  switch (req.janus) {
    case 'create': return { janus: 'success', ...base, data: { id: FAKE_SESSION } };
    case 'attach': return { janus: 'success', session_id: FAKE_SESSION, ...base, data: { id: FAKE_HANDLE } };
    case 'keepalive': return { janus: 'ack', session_id: FAKE_SESSION, ...base };
    case 'destroy': return { janus: 'success', session_id: FAKE_SESSION, ...base };
    case 'message':
      emit({
        janus: 'event', session_id: FAKE_SESSION, sender: FAKE_HANDLE, ...base,
        plugindata: { plugin: 'janus.plugin.fake', data: { fake: 'event', result: 'ok', echo: req.body } },
      });
      return { janus: 'ack', session_id: FAKE_SESSION, ...base };
    default:
      return { janus: 'error', session_id: FAKE_SESSION, ...base, error: { code: 453, reason: `Unknown request '${req.janus}'` } };
  }
}

/** HTTP fake: the POST reply to `message` is held until the long poll has delivered the event. */
async function startFakeHttp() {
  const queue = [];
  const polls = [];
  const flush = () => {
    while (queue.length && polls.length) {
      const res = polls.shift();
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(queue.splice(0)));
    }
  };
  let eventDelivered = null;
  const gets = [];
  const posts = [];
  const server = http.createServer((req, res) => {
    if (req.method === 'GET') {
      gets.push(req.url);
      polls.push(res);
      flush();
      return;
    }
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const msg = JSON.parse(body);
      posts.push({ url: req.url, msg });
      let delivered = Promise.resolve();
      const reply = fakeJanusReply(msg, (ev) => {
        queue.push(ev);
        delivered = waitFor('the long poll to take the event', () => queue.length === 0, { timeout: 5000, interval: 5 });
        eventDelivered = delivered;
        flush();
      });
      // Hold the ack until the event has gone out, then a little longer.
      delivered.then(() => new Promise((r) => setTimeout(r, 100))).then(() => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(reply));
      });
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}/janus`,
    gets,
    posts,
    get eventDelivered() { return eventDelivered; },
    close: () => new Promise((r) => {
      for (const res of polls.splice(0)) res.end('[]');
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** WebSocket fake (subprotocol janus-protocol): the event frame is written before the ack frame. */
async function startFakeWs() {
  const sockets = new Set();
  const received = [];
  const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
  server.on('upgrade', (req, socket, head) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + WS_GUID).digest('base64');
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: janus-protocol\r\n\r\n`);
    const send = (msg) => socket.write(encodeFrame(1, JSON.stringify(msg), false));
    readFrames(socket, head, (opcode, payload) => {
      if (opcode === 8) { socket.end(); return; }
      if (opcode !== 1) return;
      const msg = JSON.parse(payload.toString('utf8'));
      received.push({ msg, protocol: req.headers['sec-websocket-protocol'] });
      const reply = fakeJanusReply(msg, send);
      send(reply);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${server.address().port}/`,
    received,
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** A loopback port with nothing listening on it. */
async function deadPort() {
  const s = http.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

// ---- promise wrappers around the callback API ----------------------------------------------------

function connect(options) {
  return new Promise((resolve, reject) => {
    const janus = new Janus({ ...options, success: () => resolve(janus), error: (e) => reject(new Error(String(e))) });
  });
}

function attach(janus, plugin, extra = {}) {
  const seen = { messages: [], order: [] };
  return new Promise((resolve, reject) => {
    janus.attach({
      plugin,
      ...extra,
      success: (handle) => resolve({ handle, seen }),
      error: (e) => reject(new Error(String(e))),
      onmessage: (msg, jsep) => { seen.messages.push({ msg, jsep }); seen.order.push('event'); },
    });
  });
}

function send(handle, message, seen) {
  return new Promise((resolve, reject) => {
    handle.send({
      message,
      success: (data) => { if (seen) seen.order.push('ack'); resolve(data); },
      error: (e) => reject(new Error(String(e))),
    });
  });
}

function destroy(janus) {
  return new Promise((resolve) => janus.destroy({ success: resolve, error: resolve }));
}

// ---- the tests ----------------------------------------------------------------------------------

before(() => {
  Janus.init({ debug: false, dependencies: Janus.useDefaultDependencies({ WebSocket: globalThis.WebSocket || MiniWebSocket }) });
});

describe('transaction matching: a plugin event before its ack', () => {
  test('HTTP long-poll', async () => {
    const fake = await startFakeHttp();
    try {
      const janus = await connect({ server: fake.url });
      assert.equal(janus.getSessionId(), FAKE_SESSION);
      const { handle, seen } = await attach(janus, 'janus.plugin.fake');
      assert.equal(handle.getId(), FAKE_HANDLE);
      assert.equal(handle.getPlugin(), 'janus.plugin.fake');
      await send(handle, { hello: 1 }, seen);
      assert.deepEqual(seen.order, ['event', 'ack']);
      assert.deepEqual(seen.messages[0].msg, { fake: 'event', result: 'ok', echo: { hello: 1 } });
      // The session still works after it: a second exchange in the same order.
      await send(handle, { hello: 2 }, seen);
      assert.deepEqual(seen.order, ['event', 'ack', 'event', 'ack']);
      await destroy(janus);
      assert.equal(janus.isConnected(), false);
    } finally {
      await fake.close();
    }
  });

  test('WebSocket', async () => {
    const fake = await startFakeWs();
    try {
      const janus = await connect({ server: fake.url });
      assert.equal(janus.getSessionId(), FAKE_SESSION);
      const { handle, seen } = await attach(janus, 'janus.plugin.fake');
      await send(handle, { hello: 1 }, seen);
      await send(handle, { hello: 2 }, seen);
      assert.deepEqual(seen.order, ['event', 'ack', 'event', 'ack']);
      assert.deepEqual(seen.messages.map((m) => m.msg.echo), [{ hello: 1 }, { hello: 2 }]);
      await destroy(janus);
    } finally {
      await fake.close();
    }
  });
});

describe('wire details', () => {
  test('HTTP: long polls carry rid and maxev; requests carry token and apisecret; paths carry the ids', async () => {
    const fake = await startFakeHttp();
    try {
      const janus = await connect({ server: fake.url, token: 'tok', apisecret: 'sec', max_poll_events: 5 });
      const { handle } = await attach(janus, 'janus.plugin.fake');
      await send(handle, { x: 1 });
      await waitFor('two long polls', () => fake.gets.length >= 2, { timeout: 3000 });
      for (const url of fake.gets) {
        const q = new URL(url, 'http://x');
        assert.equal(q.pathname, `/janus/${FAKE_SESSION}`);
        assert.match(q.searchParams.get('rid'), /^\d+$/);
        assert.equal(q.searchParams.get('maxev'), '5');
        assert.equal(q.searchParams.get('token'), 'tok');
        assert.equal(q.searchParams.get('apisecret'), 'sec');
      }
      assert.deepEqual(fake.posts.map((p) => [p.url, p.msg.janus]), [
        ['/janus', 'create'], [`/janus/${FAKE_SESSION}`, 'attach'], [`/janus/${FAKE_SESSION}/${FAKE_HANDLE}`, 'message'],
      ]);
      for (const { msg } of fake.posts) {
        assert.equal(msg.token, 'tok');
        assert.equal(msg.apisecret, 'sec');
        assert.match(msg.transaction, /^[A-Za-z0-9]{12}$/);
      }
      await destroy(janus);
    } finally {
      await fake.close();
    }
  });

  test('WebSocket: subprotocol janus-protocol, ids in the body, a keepalive every keepAlivePeriod', async () => {
    const fake = await startFakeWs();
    try {
      const janus = await connect({ server: fake.url, keepAlivePeriod: 100 });
      const { handle } = await attach(janus, 'janus.plugin.fake');
      await send(handle, { x: 1 });
      await waitFor('three keepalives', () => fake.received.filter((r) => r.msg.janus === 'keepalive').length >= 3, { timeout: 3000 });
      for (const { msg, protocol } of fake.received) {
        assert.equal(protocol, 'janus-protocol');
        if (msg.janus !== 'create') assert.equal(msg.session_id, FAKE_SESSION, JSON.stringify(msg));
      }
      const message = fake.received.find((r) => r.msg.janus === 'message').msg;
      assert.equal(message.handle_id, FAKE_HANDLE);
      assert.deepEqual(message.body, { x: 1 });
      await destroy(janus);
      const count = fake.received.length;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(fake.received.length, count, 'no keepalives after destroy');
    } finally {
      await fake.close();
    }
  });
});

describe('against the real Portunus', { timeout: 120000 }, () => {
  let server;

  before(async () => {
    // Sessions of a dropped WebSocket survive 20 s, so reconnect() can claim them.
    server = await startServer({ env: { PORTUNUS__GENERAL__RECLAIM_SESSION_TIMEOUT: '20' } });
  });

  after(async () => {
    if (server) await server.stop();
  });

  for (const transport of ['http', 'ws']) {
    test(`server array: the unreachable first server is skipped (${transport})`, async () => {
      const port = await deadPort();
      const dead = transport === 'http' ? `http://127.0.0.1:${port}/janus` : `ws://127.0.0.1:${port}/`;
      const good = transport === 'http' ? server.httpUrl : server.wsUrl;
      const janus = await connect({ server: [dead, good] });
      try {
        assert.equal(janus.getServer(), good);
        assert.ok(janus.isConnected());
        assert.ok(Number.isSafeInteger(janus.getSessionId()) && janus.getSessionId() > 0);
        // EchoTest answers {audio:true} (no jsep) with an ack and then an event.
        const { handle, seen } = await attach(janus, 'janus.plugin.echotest');
        await send(handle, { audio: true }, seen);
        await waitFor('the echotest event', () => seen.messages.length > 0, { timeout: 5000 });
        assert.equal(seen.messages[0].msg.echotest, 'event');
      } finally {
        await destroy(janus);
      }
    });

    test(`no server reachable: the error names them (${transport})`, async () => {
      const ports = [await deadPort(), await deadPort()];
      const urls = ports.map((p) => (transport === 'http' ? `http://127.0.0.1:${p}/janus` : `ws://127.0.0.1:${p}/`));
      await assert.rejects(connect({ server: urls }), (e) => {
        assert.match(e.message, /Server unreachable/);
        for (const u of urls) assert.ok(e.message.includes(u), `${e.message} names ${u}`);
        return true;
      });
    });

    test(`attach to a missing plugin reports the server's reason (${transport})`, async () => {
      const janus = await connect({ server: transport === 'http' ? server.httpUrl : server.wsUrl });
      try {
        await assert.rejects(attach(janus, 'janus.plugin.nope'), /460 No such plugin 'janus.plugin.nope'/);
      } finally {
        await destroy(janus);
      }
    });
  }

  test('reconnect() claims the session on a new WebSocket after the old one dropped', async () => {
    const errors = [];
    const janus = await new Promise((resolve, reject) => {
      const j = new Janus({
        server: server.wsUrl,
        success: () => resolve(j),
        error: (e) => { errors.push(String(e)); reject(new Error(String(e))); },
      });
    });
    const sessionId = janus.getSessionId();
    const { handle, seen } = await attach(janus, 'janus.plugin.echotest');
    const socket = MiniWebSocket.instances.filter((w) => w.readyState === 1 && w.url === server.wsUrl).pop();
    assert.ok(socket, 'the session\'s socket');
    socket.drop();
    await waitFor('the library to report the lost connection', () => errors.length > 0, { timeout: 5000 });
    assert.match(errors[0], /Lost connection/);
    assert.equal(janus.isConnected(), false);

    await new Promise((resolve, reject) => janus.reconnect({ success: resolve, error: (e) => reject(new Error(String(e))) }));
    assert.ok(janus.isConnected());
    assert.equal(janus.getSessionId(), sessionId, 'same session after claim');
    // The old handle works, and its events reach the new socket.
    await send(handle, { video: true }, seen);
    await waitFor('the echotest event on the new socket', () => seen.messages.length > 0, { timeout: 5000 });
    await destroy(janus);
  });

  test('reconnect() over HTTP sends claim and keeps polling', async () => {
    const janus = await connect({ server: server.httpUrl });
    const sessionId = janus.getSessionId();
    await new Promise((resolve, reject) => janus.reconnect({ success: resolve, error: (e) => reject(new Error(String(e))) }));
    assert.equal(janus.getSessionId(), sessionId);
    const { handle, seen } = await attach(janus, 'janus.plugin.echotest');
    await send(handle, { audio: false }, seen);
    await waitFor('the echotest event via the long poll', () => seen.messages.length > 0, { timeout: 5000 });
    await destroy(janus);
  });

  test('a reconnect to a destroyed session fails with the server\'s 458', async () => {
    const janus = await connect({ server: server.wsUrl });
    const sessionId = janus.getSessionId();
    await destroy(janus);
    await assert.rejects(
      new Promise((resolve, reject) => janus.reconnect({ success: resolve, error: (e) => reject(new Error(String(e))) })),
      new RegExp(`458 No such session ${sessionId}`),
    );
  });
});

describe('session lifetime against the real Portunus', { timeout: 60000 }, () => {
  let server;

  before(async () => {
    server = await startServer({ env: { PORTUNUS__GENERAL__SESSION_TIMEOUT: '2' } });
  });

  after(async () => {
    if (server) await server.stop();
  });

  test('WebSocket keepalives keep a session alive past the server timeout', async () => {
    const janus = await connect({ server: server.wsUrl, keepAlivePeriod: 500 });
    await new Promise((r) => setTimeout(r, 4500));
    assert.ok(janus.isConnected());
    await attach(janus, 'janus.plugin.echotest');
    await destroy(janus);
  });

  // Over HTTP a held long poll refreshes the session only when it starts (as in Janus), so with a
  // 2 s timeout the session expires during the first 30 s poll, and the poll delivers `timeout`.
  for (const transport of ['ws', 'http']) {
    test(`the server's session timeout reaches the error callback (${transport})`, async () => {
      const errors = [];
      const janus = await new Promise((resolve, reject) => {
        const j = new Janus({
          server: transport === 'ws' ? server.wsUrl : server.httpUrl,
          keepAlivePeriod: 600000,
          success: () => resolve(j),
          error: (e) => { errors.push(String(e)); reject(e); },
        });
      });
      await waitFor('the timeout notification', () => errors.length > 0, { timeout: 8000 });
      assert.match(errors[0], /timed out/);
      assert.equal(janus.isConnected(), false);
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(errors.length, 1, `reported once, then quiet: ${errors}`);
    });
  }
});
