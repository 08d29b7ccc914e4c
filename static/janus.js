// Portunus's janus.js: a client for the Janus API (janus.js 1.x compatible surface), written for
// Portunus from the public description of that API. A plain script: it defines the global `Janus`.
// `janus.mjs` next to it re-exports the same object as an ES module.
//
// Transports: HTTP long-poll (`GET <server>/<session>?rid=..&maxev=..`) and WebSocket (subprotocol
// `janus-protocol`, keepalives every `keepAlivePeriod` ms). Replies are matched to requests by
// `transaction` only, never by order: a plugin `event` may arrive before the `ack` of the request
// that caused it, and neither consumes the other.
(function (root) {
  'use strict';

  // ---- logging and dependencies ------------------------------------------------------------------

  const noop = function () {};
  const LEVELS = ['trace', 'debug', 'vdebug', 'log', 'warn', 'error'];

  function Janus(gatewayCallbacks) {
    if (!(this instanceof Janus)) return new Janus(gatewayCallbacks);
    createSession(this, gatewayCallbacks || {});
  }

  Janus.noop = noop;
  Janus.dataChanDefaultLabel = 'JanusDataChannel';
  Janus.endOfCandidates = null;
  Janus.sessions = {};
  Janus.initDone = false;
  for (const level of LEVELS) Janus[level] = noop;

  function setDebug(debug) {
    let enabled = [];
    if (debug === true || debug === 'all') enabled = LEVELS.slice();
    else if (Array.isArray(debug)) enabled = debug;
    for (const level of LEVELS) {
      const sink = level === 'vdebug' || level === 'trace' ? 'debug' : level;
      Janus[level] = enabled.includes(level) && root.console ? console[sink].bind(console) : noop;
    }
  }

  /** fetch- and WebSocket-based dependencies (what modern browsers and node 22+ provide). */
  Janus.useDefaultDependencies = function (deps) {
    deps = deps || {};
    const f = deps.fetch || root.fetch;
    const WS = deps.WebSocket || root.WebSocket;
    return {
      newWebSocket: function (server, protocol) { return new WS(server, protocol); },
      isArray: function (arr) { return Array.isArray(arr); },
      extension: null,
      webRTCAdapter: deps.adapter || null,
      httpAPICall: function (url, options) { return fetchCall(f, url, options); },
    };
  };
  Janus.useOldDependencies = Janus.useDefaultDependencies;

  /** One HTTP request; `options` = {verb, body, withCredentials, timeout, success(json), error(text, err)}. */
  function fetchCall(f, url, options) {
    const init = { method: options.verb || 'GET', cache: 'no-cache', headers: { Accept: 'application/json' } };
    if (options.withCredentials) init.credentials = 'include';
    if (options.body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    let timer = null;
    if (options.timeout && typeof AbortController !== 'undefined') {
      const abort = new AbortController();
      init.signal = abort.signal;
      timer = setTimeout(function () { abort.abort(); }, options.timeout);
    }
    const done = function () { if (timer) clearTimeout(timer); };
    f(url, init).then(function (response) {
      if (!response.ok) {
        done();
        (options.error || noop)('HTTP ' + response.status + ' ' + (response.statusText || ''), response.status);
        return;
      }
      return response.json().then(function (json) {
        done();
        (options.success || noop)(json);
      });
    }).catch(function (err) {
      done();
      (options.error || noop)(err && err.name === 'AbortError' ? 'Request timed out' : 'Network error: ' + (err && err.message), err);
    });
  }

  Janus.init = function (options) {
    options = options || {};
    setDebug(options.debug);
    const deps = options.dependencies || Janus.useDefaultDependencies();
    Janus.newWebSocket = deps.newWebSocket;
    Janus.httpAPICall = deps.httpAPICall;
    Janus.isArray = deps.isArray || Array.isArray;
    Janus.webRTCAdapter = deps.webRTCAdapter;
    if (!Janus.initDone && root.addEventListener) {
      // destroyOnUnload: best-effort destroy of every session when the page goes away.
      root.addEventListener('pagehide', function () {
        for (const id of Object.keys(Janus.sessions)) {
          const s = Janus.sessions[id];
          if (s && s.destroyOnUnload) s.destroy({ unload: true, notifyDestroyed: false });
        }
      });
    }
    Janus.initDone = true;
    (options.callback || noop)();
  };

  // ---- small helpers -----------------------------------------------------------------------------

  Janus.randomString = function (len) {
    const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    const bytes = new Uint8Array(len);
    if (root.crypto && root.crypto.getRandomValues) root.crypto.getRandomValues(bytes);
    else for (let i = 0; i < len; i++) bytes[i] = Math.floor(Math.random() * 256);
    let out = '';
    for (let i = 0; i < len; i++) out += chars[bytes[i] % chars.length];
    return out;
  };

  Janus.isWebrtcSupported = function () { return !!root.RTCPeerConnection; };
  Janus.isGetUserMediaAvailable = function () {
    return !!(root.navigator && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  };

  Janus.attachMediaStream = function (element, stream) {
    if (element) element.srcObject = stream;
  };
  Janus.reattachMediaStream = function (to, from) {
    if (to && from) to.srcObject = from.srcObject;
  };
  Janus.stopAllTracks = function (stream) {
    if (stream) for (const t of stream.getTracks()) t.stop();
  };

  /** Calls `callback(devices)`; asks for capture first so the labels are filled in. */
  Janus.listDevices = function (callback, constraints) {
    callback = callback || noop;
    if (!Janus.isGetUserMediaAvailable()) { callback([]); return; }
    navigator.mediaDevices.getUserMedia(constraints || { audio: true, video: true })
      .then(function (stream) {
        return navigator.mediaDevices.enumerateDevices().then(function (devices) {
          Janus.stopAllTracks(stream);
          callback(devices);
        });
      })
      .catch(function (err) {
        Janus.error('listDevices:', err);
        navigator.mediaDevices.enumerateDevices().then(callback, function () { callback([]); });
      });
  };

  function errorText(err) {
    if (!err) return 'unknown error';
    if (typeof err === 'string') return err;
    if (err.error && err.error.reason) return err.error.code + ' ' + err.error.reason;
    return err.message || err.name || String(err);
  }

  // ---- session -----------------------------------------------------------------------------------

  function createSession(that, cb) {
    if (!Janus.initDone) {
      (cb.error || noop)('Library not initialized (call Janus.init first)');
      return;
    }
    const servers = Array.isArray(cb.server) ? cb.server.slice() : (cb.server ? [cb.server] : []);
    if (!servers.length) {
      (cb.error || noop)('Invalid server url');
      return;
    }
    const st = {
      servers: servers,
      server: null,
      websockets: false,
      ws: null,
      wsHandlers: null,
      connected: false,
      sessionId: null,
      transactions: {},
      handles: {},
      keepAliveTimer: null,
      pollFailures: 0,
      polling: false,
      token: cb.token,
      apisecret: cb.apisecret,
      withCredentials: !!cb.withCredentials,
      maxev: cb.max_poll_events > 0 ? cb.max_poll_events : 10,
      keepAlivePeriod: cb.keepAlivePeriod > 0 ? cb.keepAlivePeriod : 25000,
      longPollTimeout: cb.longPollTimeout > 0 ? cb.longPollTimeout : 60000,
      iceServers: cb.iceServers || [{ urls: 'stun:stun.l.google.com:19302' }],
      iceTransportPolicy: cb.iceTransportPolicy,
      bundlePolicy: cb.bundlePolicy,
      destroyed: false,
    };
    that.destroyOnUnload = cb.destroyOnUnload !== false;

    that.getServer = function () { return st.server; };
    that.isConnected = function () { return st.connected; };
    that.getSessionId = function () { return st.sessionId; };
    that.getInfo = function (callbacks) { getInfo(callbacks || {}); };
    that.reconnect = function (callbacks) { connect(callbacks || {}, true); };
    that.attach = function (callbacks) { attach(callbacks || {}); };
    that.destroy = function (callbacks) { destroy(callbacks || {}); };

    // -- requests: one path for both transports, matched by transaction --

    function withAuth(msg) {
      if (st.token) msg.token = st.token;
      if (st.apisecret) msg.apisecret = st.apisecret;
      return msg;
    }

    /** Sends `msg` (adds transaction/auth/ids); calls `done(reply)` with the ack/success/error reply. */
    function request(msg, handleId, done, opts) {
      opts = opts || {};
      msg.transaction = msg.transaction || Janus.randomString(12);
      withAuth(msg);
      if (st.websockets) {
        if (!st.ws || st.ws.readyState !== 1) {
          done({ janus: 'error', error: { code: 0, reason: 'Not connected to the server' } });
          return;
        }
        if (st.sessionId && !opts.root) msg.session_id = st.sessionId;
        if (handleId) msg.handle_id = handleId;
        st.transactions[msg.transaction] = done;
        st.ws.send(JSON.stringify(msg));
        return;
      }
      let url = st.server;
      if (st.sessionId && !opts.root) url += '/' + st.sessionId;
      if (handleId) url += '/' + handleId;
      Janus.httpAPICall(url, {
        verb: 'POST',
        body: msg,
        withCredentials: st.withCredentials,
        timeout: opts.timeout,
        success: function (json) { done(json); },
        error: function (text) { done({ janus: 'error', error: { code: 0, reason: 'Server unreachable (' + text + ')' } }); },
      });
    }

    // -- connecting: servers tried in order --

    function connect(callbacks, reconnect) {
      let index = 0;
      const errors = [];
      let refused = null;
      const tryNext = function () {
        if (index >= st.servers.length) {
          // A server that answered with an error says more than "unreachable".
          const reason = refused || 'Server unreachable: ' + errors.join('; ');
          (callbacks.error || cb.error || noop)(reason);
          return;
        }
        const server = st.servers[index++];
        openTransport(server, reconnect, function (ok, reason, answered) {
          if (ok) {
            st.connected = true;
            st.destroyed = false;
            Janus.sessions[st.sessionId] = that;
            (callbacks.success || cb.success || noop)();
            return;
          }
          if (answered && !refused) refused = (reconnect ? 'Reconnect failed: ' : 'Session not created: ') + reason;
          errors.push(server + ': ' + reason);
          Janus.warn('janus: ' + server + ' failed (' + reason + ')');
          tryNext();
        });
      };
      tryNext();
    }

    function openTransport(server, reconnect, done) {
      closeWebSocket();
      st.server = server;
      st.websockets = /^wss?:\/\//i.test(server);
      const first = reconnect
        ? { janus: 'claim', session_id: st.sessionId }
        : { janus: 'create' };
      const finish = function (reply) {
        if (reply.janus !== 'success') {
          if (st.websockets) closeWebSocket();
          done(false, errorText(reply), reply.janus === 'error' && reply.error && reply.error.code > 0);
          return;
        }
        if (!reconnect) st.sessionId = reply.session_id || (reply.data && reply.data.id);
        startSessionTraffic();
        done(true);
      };
      if (!st.websockets) {
        const msg = withAuth(first);
        msg.transaction = Janus.randomString(12);
        const url = reconnect ? server + '/' + st.sessionId : server;
        Janus.httpAPICall(url, {
          verb: 'POST', body: msg, withCredentials: st.withCredentials, timeout: 15000,
          success: finish,
          error: function (text) { done(false, text); },
        });
        return;
      }
      let ws;
      try {
        ws = Janus.newWebSocket(server, 'janus-protocol');
      } catch (e) {
        done(false, errorText(e));
        return;
      }
      st.ws = ws;
      let opened = false;
      let settled = false;
      const settle = function (ok, reason) {
        if (settled) return;
        settled = true;
        done(ok, reason);
      };
      ws.onerror = function () {
        if (!opened) { closeWebSocket(); settle(false, 'WebSocket error'); }
      };
      ws.onclose = function (ev) {
        if (st.ws !== ws) return;
        st.ws = null;
        stopKeepAlive();
        if (!opened || !settled) {
          settle(false, 'WebSocket closed (' + (ev && ev.code) + ')');
          return;
        }
        if (st.connected && !st.destroyed) {
          st.connected = false;
          failTransactions('Lost connection to the server');
          (cb.error || noop)('Lost connection to the server (is it down?)');
        }
      };
      ws.onmessage = function (ev) {
        let json;
        try { json = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data)); } catch (e) {
          Janus.warn('janus: unparsable message', ev.data);
          return;
        }
        handleEvent(json);
      };
      ws.onopen = function () {
        opened = true;
        const msg = first;
        msg.transaction = Janus.randomString(12);
        withAuth(msg);
        st.transactions[msg.transaction] = function (reply) {
          finish(reply);
          settled = true;
        };
        ws.send(JSON.stringify(msg));
      };
    }

    function closeWebSocket() {
      stopKeepAlive();
      const ws = st.ws;
      st.ws = null;
      if (ws) {
        ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
        try { ws.close(); } catch (e) { /* already closed */ }
      }
    }

    function failTransactions(reason) {
      const pending = st.transactions;
      st.transactions = {};
      for (const id of Object.keys(pending)) pending[id]({ janus: 'error', transaction: id, error: { code: 0, reason: reason } });
    }

    function stopKeepAlive() {
      if (st.keepAliveTimer) clearInterval(st.keepAliveTimer);
      st.keepAliveTimer = null;
    }

    function startSessionTraffic() {
      st.pollFailures = 0;
      if (st.websockets) {
        stopKeepAlive();
        st.keepAliveTimer = setInterval(function () {
          if (!st.connected) return;
          request({ janus: 'keepalive' }, null, function (reply) {
            if (reply.janus === 'error') Janus.warn('janus: keepalive failed', errorText(reply));
          });
        }, st.keepAlivePeriod);
      } else if (!st.polling) {
        poll();
      }
    }

    // -- HTTP long poll --

    function poll() {
      if (st.websockets || st.destroyed || !st.sessionId) { st.polling = false; return; }
      st.polling = true;
      let url = st.server + '/' + st.sessionId + '?rid=' + Date.now();
      if (st.maxev) url += '&maxev=' + st.maxev;
      if (st.token) url += '&token=' + encodeURIComponent(st.token);
      if (st.apisecret) url += '&apisecret=' + encodeURIComponent(st.apisecret);
      Janus.httpAPICall(url, {
        verb: 'GET',
        withCredentials: st.withCredentials,
        timeout: st.longPollTimeout,
        success: function (json) {
          st.pollFailures = 0;
          const list = Array.isArray(json) ? json : [json];
          for (const msg of list) handleEvent(msg);
          poll();
        },
        error: function (text) {
          if (st.destroyed || st.websockets) { st.polling = false; return; }
          st.pollFailures++;
          Janus.warn('janus: long poll failed (' + text + ')');
          if (st.pollFailures >= 3) {
            st.polling = false;
            st.connected = false;
            (cb.error || noop)('Lost connection to the server (is it down?)');
            return;
          }
          setTimeout(poll, 200 * st.pollFailures);
        },
      });
    }

    // -- incoming messages --

    function handleEvent(json) {
      const kind = json.janus;
      const tx = json.transaction;
      // Replies to our requests: matched by transaction, whatever came before them.
      if (tx && st.transactions[tx] && kind !== 'event') {
        const done = st.transactions[tx];
        delete st.transactions[tx];
        done(json);
        return;
      }
      const handle = json.sender ? st.handles[json.sender] : null;
      switch (kind) {
        case 'keepalive':
        case 'ack':
        case 'success':
        case 'server_info':
        case 'pong':
          return;
        case 'error':
          Janus.error('janus: error', json.error);
          return;
        case 'timeout':
          // The session is gone on the server: stop polling and keepalives, report it once.
          st.connected = false;
          st.destroyed = true;
          stopKeepAlive();
          if (st.websockets && st.ws) {
            const ws = st.ws;
            closeWebSocket();
            try { ws.close(3504, 'Gateway timeout'); } catch (e) { /* gone */ }
          }
          (cb.error || noop)('Session ' + st.sessionId + ' timed out on the server');
          return;
        case 'event':
          if (!handle) { Janus.warn('janus: event for unknown handle', json.sender); return; }
          handle._callbacks.onmessage(json.plugindata ? json.plugindata.data : {}, json.jsep);
          return;
        case 'webrtcup':
          if (handle) handle._callbacks.webrtcState(true);
          return;
        case 'hangup':
          if (handle) {
            handle._callbacks.webrtcState(false, json.reason);
            handle.hangup(false);
          }
          return;
        case 'detached':
          if (handle) {
            handle._detached = true;
            handle._callbacks.ondetached();
            handle.detach({ noRequest: true });
          }
          return;
        case 'media':
          if (handle) handle._callbacks.mediaState(json.type, json.receiving, json.mid, json.substream, json.seconds);
          return;
        case 'slowlink':
          if (handle) handle._callbacks.slowLink(json.uplink, json.lost, json.mid);
          return;
        case 'trickle':
          if (handle) handle._remoteCandidate(json.candidate);
          return;
        default:
          Janus.warn('janus: unknown message', json);
      }
    }

    // -- session-level requests --

    function getInfo(callbacks) {
      request({ janus: 'info' }, null, function (reply) {
        if (reply.janus === 'server_info') (callbacks.success || noop)(reply);
        else (callbacks.error || noop)(errorText(reply));
      }, { root: true });
    }

    function destroy(callbacks) {
      const notify = callbacks.notifyDestroyed !== false;
      const finish = function () {
        st.destroyed = true;
        st.connected = false;
        closeWebSocket();
        delete Janus.sessions[st.sessionId];
        (callbacks.success || noop)();
        if (notify) (cb.destroyed || noop)();
      };
      if (callbacks.cleanupHandles !== false) {
        for (const id of Object.keys(st.handles)) st.handles[id].hangup(false);
      }
      st.handles = {};
      if (!st.connected) { finish(); return; }
      if (callbacks.unload && !st.websockets && root.navigator && navigator.sendBeacon) {
        // Page unload: a POST may be cut off; sendBeacon is not.
        try {
          navigator.sendBeacon(st.server + '/' + st.sessionId,
            JSON.stringify(withAuth({ janus: 'destroy', transaction: Janus.randomString(12) })));
        } catch (e) { /* best effort */ }
        finish();
        return;
      }
      request({ janus: 'destroy' }, null, function (reply) {
        if (reply.janus === 'error') Janus.warn('janus: destroy failed', errorText(reply));
        finish();
      });
    }

    function attach(callbacks) {
      if (!st.connected) { (callbacks.error || noop)('Not connected to the server'); return; }
      if (!callbacks.plugin) { (callbacks.error || noop)('Invalid plugin'); return; }
      const msg = { janus: 'attach', plugin: callbacks.plugin };
      if (callbacks.opaqueId) msg.opaque_id = callbacks.opaqueId;
      if (callbacks.loopIndex !== undefined) msg.loop_index = callbacks.loopIndex;
      if (callbacks.token) msg.token = callbacks.token;
      request(msg, null, function (reply) {
        if (reply.janus !== 'success') {
          (callbacks.error || noop)('Attach to ' + callbacks.plugin + ' failed: ' + errorText(reply));
          return;
        }
        const handle = new PluginHandle(reply.data.id, callbacks, sessionApi);
        st.handles[handle.getId()] = handle;
        (callbacks.success || noop)(handle);
      });
    }

    const sessionApi = {
      request: request,
      state: st,
      forget: function (id) { delete st.handles[id]; },
    };

    connect({}, false);
  }

  // ---- plugin handle -----------------------------------------------------------------------------

  const HANDLE_CALLBACKS = ['consentDialog', 'iceState', 'connectionState', 'mediaState', 'webrtcState', 'slowLink',
    'onmessage', 'onlocaltrack', 'onremotetrack', 'ondataopen', 'ondata', 'oncleanup', 'ondetached'];

  function PluginHandle(id, callbacks, session) {
    this._id = id;
    this._plugin = callbacks.plugin;
    this._session = session;
    this._callbacks = {};
    for (const name of HANDLE_CALLBACKS) this._callbacks[name] = callbacks[name] || noop;
    this._detached = false;
    this._resetMedia();
  }

  PluginHandle.prototype._resetMedia = function () {
    this._pc = null;
    this._localStream = null;
    this._channels = {};
    this._pendingData = {};
    this._remoteCandidates = [];
    this._trickle = true;
    this._bitrate = {};
    // Transceivers sending SVC, with their scalability mode (`svc` track option).
    this._svc = new Map();
  };

  PluginHandle.prototype.getId = function () { return this._id; };
  PluginHandle.prototype.getPlugin = function () { return this._plugin; };
  PluginHandle.prototype.getPeerConnection = function () { return this._pc; };

  PluginHandle.prototype.send = function (callbacks) {
    callbacks = callbacks || {};
    const msg = { janus: 'message', body: callbacks.message || {} };
    if (callbacks.jsep) {
      const j = callbacks.jsep;
      msg.jsep = { type: j.type, sdp: j.sdp };
      for (const k of ['trickle', 'e2ee', 'rid_order', 'force_relay', 'svc']) if (j[k] !== undefined) msg.jsep[k] = j[k];
    }
    this._session.request(msg, this._id, function (reply) {
      if (reply.janus === 'success') {
        (callbacks.success || noop)(reply.plugindata ? reply.plugindata.data : undefined);
      } else if (reply.janus === 'ack') {
        (callbacks.success || noop)();
      } else {
        (callbacks.error || noop)(errorText(reply));
      }
    });
  };

  PluginHandle.prototype._sendTrickle = function (candidate) {
    this._session.request({ janus: 'trickle', candidate: candidate }, this._id, function (reply) {
      if (reply.janus === 'error') Janus.warn('janus: trickle failed', errorText(reply));
    });
  };

  PluginHandle.prototype._remoteCandidate = function (candidate) {
    if (!candidate || candidate.completed) candidate = null;
    const pc = this._pc;
    if (!pc || !pc.remoteDescription) { this._remoteCandidates.push(candidate); return; }
    pc.addIceCandidate(candidate || undefined).catch(function (e) { Janus.warn('janus: addIceCandidate', e); });
  };

  PluginHandle.prototype._ensurePeerConnection = function () {
    if (this._pc) return this._pc;
    const self = this;
    const st = this._session.state;
    const config = { iceServers: st.iceServers, bundlePolicy: st.bundlePolicy || 'max-bundle' };
    if (st.iceTransportPolicy) config.iceTransportPolicy = st.iceTransportPolicy;
    const pc = new RTCPeerConnection(config);
    this._pc = pc;
    pc.onicecandidate = function (ev) {
      if (!self._trickle) return;
      if (!ev.candidate || ev.candidate.candidate === '') {
        self._sendTrickle({ completed: true });
      } else {
        self._sendTrickle({ candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid, sdpMLineIndex: ev.candidate.sdpMLineIndex });
      }
    };
    pc.oniceconnectionstatechange = function () { self._callbacks.iceState(pc.iceConnectionState); };
    pc.onconnectionstatechange = function () { self._callbacks.connectionState(pc.connectionState); };
    pc.ontrack = function (ev) {
      const track = ev.track;
      const mid = ev.transceiver ? ev.transceiver.mid : undefined;
      self._callbacks.onremotetrack(track, mid, true, { reason: 'created' });
      track.onended = function () { self._callbacks.onremotetrack(track, mid, false, { reason: 'ended' }); };
      track.onmute = function () { self._callbacks.onremotetrack(track, mid, false, { reason: 'mute' }); };
      track.onunmute = function () { self._callbacks.onremotetrack(track, mid, true, { reason: 'unmute' }); };
    };
    pc.ondatachannel = function (ev) {
      const existing = self._channels[ev.channel.label];
      if (existing && existing !== ev.channel) {
        // The peer opened a channel with a label we already have: deliver its messages, but the
        // label stays ours and ondataopen is not fired twice for it.
        ev.channel.onmessage = function (m) { self._callbacks.ondata(m.data, ev.channel.label); };
        return;
      }
      self._setupChannel(ev.channel);
    };
    return pc;
  };

  PluginHandle.prototype._setupChannel = function (channel) {
    const self = this;
    this._channels[channel.label] = channel;
    channel.onopen = function () {
      const queued = self._pendingData[channel.label] || [];
      delete self._pendingData[channel.label];
      for (const item of queued) channel.send(item);
      self._callbacks.ondataopen(channel.label, channel.protocol);
    };
    channel.onmessage = function (ev) { self._callbacks.ondata(ev.data, channel.label); };
    channel.onerror = function (ev) { Janus.warn('janus: data channel error', ev); };
  };

  PluginHandle.prototype._createChannel = function (label, protocol) {
    const pc = this._ensurePeerConnection();
    const options = { ordered: true };
    if (protocol) options.protocol = protocol;
    this._setupChannel(pc.createDataChannel(label, options));
  };

  function simulcastEncodings() {
    return [
      { rid: 'h', active: true, maxBitrate: 900000 },
      { rid: 'm', active: true, maxBitrate: 300000, scaleResolutionDownBy: 2 },
      { rid: 'l', active: true, maxBitrate: 100000, scaleResolutionDownBy: 4 },
    ];
  }

  /** Gets a MediaStreamTrack for one `tracks` entry (capture true | constraints | track). */
  PluginHandle.prototype._capture = function (entry) {
    const cap = entry.capture;
    if (typeof MediaStreamTrack !== 'undefined' && cap instanceof MediaStreamTrack) return Promise.resolve(cap);
    const self = this;
    const kind = entry.type === 'screen' ? 'video' : entry.type;
    const constraints = {};
    constraints[kind] = cap === true ? true : cap;
    self._callbacks.consentDialog(true);
    const got = entry.type === 'screen'
      ? navigator.mediaDevices.getDisplayMedia({ video: cap === true ? true : cap, audio: false })
      : navigator.mediaDevices.getUserMedia(constraints);
    return got.then(function (stream) {
      self._callbacks.consentDialog(false);
      return stream.getTracks()[0];
    }, function (err) {
      self._callbacks.consentDialog(false);
      throw err;
    });
  };

  function transceiverKind(t) {
    return (t.sender && t.sender.track && t.sender.track.kind) || (t.receiver && t.receiver.track && t.receiver.track.kind);
  }

  PluginHandle.prototype._findTransceiver = function (entry) {
    const kind = entry.type === 'screen' ? 'video' : entry.type;
    const list = this._pc.getTransceivers();
    if (entry.mid !== undefined) return list.find(function (t) { return t.mid === entry.mid; }) || null;
    return list.find(function (t) { return transceiverKind(t) === kind && !t.stopped; }) || null;
  };

  /** Applies the `tracks` array to the PeerConnection (after the remote offer when answering). */
  PluginHandle.prototype._applyTracks = function (tracks, answering) {
    const self = this;
    const pc = this._ensurePeerConnection();
    if (!this._localStream) this._localStream = new MediaStream();
    let chain = Promise.resolve();
    for (const entry of tracks || []) {
      chain = chain.then(function () { return self._applyTrack(pc, entry, answering); });
    }
    return chain;
  };

  PluginHandle.prototype._applyTrack = function (pc, entry, answering) {
    const self = this;
    if (entry.type === 'data') {
      if (!Object.keys(this._channels).length) this._createChannel(Janus.dataChanDefaultLabel);
      return Promise.resolve();
    }
    const kind = entry.type === 'screen' ? 'video' : entry.type;
    const existing = this._findTransceiver(entry);
    if (entry.remove) {
      if (existing && existing.sender.track) {
        const old = existing.sender.track;
        this._localStream.removeTrack(old);
        if (!entry.dontStop) old.stop();
        existing.sender.replaceTrack(null);
        existing.direction = existing.direction === 'sendrecv' ? 'recvonly' : 'inactive';
        this._callbacks.onlocaltrack(old, false);
      }
      return Promise.resolve();
    }
    const recv = entry.recv !== false;
    if (!entry.capture) {
      // Receive only (or nothing).
      if (existing) existing.direction = recv ? 'recvonly' : 'inactive';
      else if (recv && !answering) pc.addTransceiver(kind, { direction: 'recvonly' });
      return Promise.resolve();
    }
    return this._capture(entry).then(function (track) {
      const direction = recv ? 'sendrecv' : 'sendonly';
      let t = existing && (entry.replace || answering || !existing.sender.track) ? existing : null;
      if (t) {
        const old = t.sender.track;
        if (old) {
          self._localStream.removeTrack(old);
          if (!entry.dontStop) old.stop();
          self._callbacks.onlocaltrack(old, false);
        }
        t.direction = direction;
        return t.sender.replaceTrack(track).then(function () { added(track); });
      }
      const init = { direction: direction, streams: [self._localStream] };
      if (entry.simulcast && kind === 'video') init.sendEncodings = simulcastEncodings();
      else if (entry.svc && kind === 'video') init.sendEncodings = [{ active: true, scalabilityMode: entry.svc }];
      t = pc.addTransceiver(track, init);
      if (!entry.simulcast && entry.svc && kind === 'video') self._svc.set(t, entry.svc);
      added(track);
    });
    function added(track) {
      self._localStream.addTrack(track);
      self._callbacks.onlocaltrack(track, true);
    }
  };

  PluginHandle.prototype._finishLocal = function (description, callbacks) {
    const self = this;
    const pc = this._pc;
    this._trickle = callbacks.trickle !== false;
    if (callbacks.customizeSdp) callbacks.customizeSdp(description);
    return pc.setLocalDescription(description).then(function () {
      if (self._trickle) return description;
      // No trickle: wait for gathering and send the SDP with every candidate in it.
      return new Promise(function (resolve) {
        const check = function () {
          if (pc.iceGatheringState === 'complete') {
            pc.removeEventListener('icegatheringstatechange', check);
            resolve(pc.localDescription);
          }
        };
        pc.addEventListener('icegatheringstatechange', check);
        check();
      });
    }).then(function (desc) {
      const jsep = { type: desc.type, sdp: desc.sdp };
      if (!self._trickle) jsep.trickle = false;
      // Tell the plugin which m-lines send SVC, and how (the core passes this on).
      const svc = [];
      pc.getTransceivers().forEach(function (t, mindex) {
        if (self._svc.has(t) && t.mid !== null) svc.push({ mindex: mindex, mid: t.mid, svc: self._svc.get(t) });
      });
      if (desc.type === 'offer' && svc.length) jsep.svc = svc;
      (callbacks.success || noop)(jsep);
    });
  };

  PluginHandle.prototype.createOffer = function (callbacks) {
    callbacks = callbacks || {};
    const self = this;
    if (!Janus.isWebrtcSupported()) { (callbacks.error || noop)('WebRTC is not supported by this browser'); return; }
    this._applyTracks(callbacks.tracks, false)
      .then(function () { return self._pc.createOffer({ iceRestart: !!callbacks.iceRestart }); })
      .then(function (offer) { return self._finishLocal(offer, callbacks); })
      .catch(function (err) { (callbacks.error || noop)(errorText(err)); });
  };

  PluginHandle.prototype.createAnswer = function (callbacks) {
    callbacks = callbacks || {};
    const self = this;
    if (!callbacks.jsep) { (callbacks.error || noop)('createAnswer needs the remote jsep'); return; }
    const pc = this._ensurePeerConnection();
    pc.setRemoteDescription(callbacks.jsep)
      .then(function () { self._flushCandidates(); return self._applyTracks(callbacks.tracks, true); })
      .then(function () { return pc.createAnswer(); })
      .then(function (answer) { return self._finishLocal(answer, callbacks); })
      .catch(function (err) { (callbacks.error || noop)(errorText(err)); });
  };

  PluginHandle.prototype.handleRemoteJsep = function (callbacks) {
    callbacks = callbacks || {};
    const self = this;
    if (!callbacks.jsep) { (callbacks.error || noop)('handleRemoteJsep needs a jsep'); return; }
    if (!this._pc) { (callbacks.error || noop)('No PeerConnection: did we offer?'); return; }
    const jsep = { type: callbacks.jsep.type, sdp: callbacks.jsep.sdp };
    if (callbacks.customizeSdp) callbacks.customizeSdp(jsep);
    this._pc.setRemoteDescription(jsep)
      .then(function () { self._flushCandidates(); (callbacks.success || noop)(); })
      .catch(function (err) { (callbacks.error || noop)(errorText(err)); });
  };

  PluginHandle.prototype._flushCandidates = function () {
    const queued = this._remoteCandidates;
    this._remoteCandidates = [];
    for (const c of queued) this._remoteCandidate(c);
  };

  PluginHandle.prototype.replaceTracks = function (callbacks) {
    callbacks = callbacks || {};
    const tracks = (callbacks.tracks || []).map(function (t) { return Object.assign({}, t, { replace: true }); });
    this._applyTracks(tracks, false)
      .then(function () { (callbacks.success || noop)(); })
      .catch(function (err) { (callbacks.error || noop)(errorText(err)); });
  };

  PluginHandle.prototype.getLocalTracks = function () {
    if (!this._pc) return [];
    return this._pc.getTransceivers().filter(function (t) { return t.sender && t.sender.track; }).map(function (t) {
      return { type: t.sender.track.kind, id: t.sender.track.id, label: t.sender.track.label, mid: t.mid };
    });
  };

  PluginHandle.prototype.getRemoteTracks = function () {
    if (!this._pc) return [];
    return this._pc.getTransceivers().filter(function (t) { return t.receiver && t.receiver.track && t.mid !== null; }).map(function (t) {
      return { type: t.receiver.track.kind, id: t.receiver.track.id, mid: t.mid };
    });
  };

  PluginHandle.prototype.data = function (callbacks) {
    callbacks = callbacks || {};
    const payload = callbacks.text !== undefined ? callbacks.text : callbacks.data;
    const label = callbacks.label || Janus.dataChanDefaultLabel;
    if (!this._pc) { (callbacks.error || noop)('No PeerConnection'); return; }
    let channel = this._channels[label];
    if (!channel) { this._createChannel(label, callbacks.protocol); channel = this._channels[label]; }
    if (channel.readyState === 'open') channel.send(payload);
    else (this._pendingData[label] = this._pendingData[label] || []).push(payload);
    (callbacks.success || noop)();
  };

  PluginHandle.prototype.dtmf = function (callbacks) {
    callbacks = callbacks || {};
    const d = callbacks.dtmf || {};
    const t = this._pc && this._pc.getTransceivers().find(function (x) {
      return x.sender && x.sender.track && x.sender.track.kind === 'audio' && x.sender.dtmf;
    });
    if (!t) { (callbacks.error || noop)('No audio sender for DTMF'); return; }
    if (!d.tones) { (callbacks.error || noop)('Invalid DTMF tones'); return; }
    if (t.sender.dtmf.canInsertDTMF === false) {
      (callbacks.error || noop)('This sender cannot send DTMF (no telephone-event negotiated)');
      return;
    }
    try {
      t.sender.dtmf.insertDTMF(d.tones, d.duration || 500, d.gap || 50);
    } catch (e) {
      (callbacks.error || noop)(errorText(e));
      return;
    }
    (callbacks.success || noop)();
  };

  /** Human-readable receive bitrate of a video track ("N kbits/sec"), sampled once a second. */
  PluginHandle.prototype.getBitrate = function (mid) {
    const pc = this._pc;
    if (!pc) return 'Invalid PeerConnection';
    const key = mid === undefined ? '*' : String(mid);
    let b = this._bitrate[key];
    if (!b) {
      b = this._bitrate[key] = { value: '0 kbits/sec', bytes: null, ts: null, timer: null };
      const receiver = function () {
        const t = pc.getTransceivers().find(function (x) {
          return x.receiver && x.receiver.track && x.receiver.track.kind === 'video' && (mid === undefined || x.mid === mid);
        });
        return t ? t.receiver : null;
      };
      b.timer = setInterval(function () {
        const r = receiver();
        if (!r) return;
        r.getStats().then(function (report) {
          report.forEach(function (s) {
            if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
            if (b.bytes !== null && s.timestamp > b.ts) {
              const kbps = Math.round(((s.bytesReceived - b.bytes) * 8) / (s.timestamp - b.ts));
              b.value = kbps + ' kbits/sec';
            }
            b.bytes = s.bytesReceived;
            b.ts = s.timestamp;
          });
        }).catch(noop);
      }, 1000);
    }
    return b.value;
  };

  /** Calls `callback(level)` with the audio level (0..1) of a received (`remote`) or sent track. */
  PluginHandle.prototype._volume = function (remote, mid, callback) {
    callback = typeof mid === 'function' ? mid : (callback || noop);
    if (typeof mid === 'function') mid = undefined;
    const pc = this._pc;
    if (!pc) { callback(0); return; }
    const t = pc.getTransceivers().find(function (x) {
      const track = remote ? x.receiver && x.receiver.track : x.sender && x.sender.track;
      return track && track.kind === 'audio' && (mid === undefined || x.mid === mid);
    });
    if (!t) { callback(0); return; }
    (remote ? t.receiver : t.sender).getStats().then(function (report) {
      let level = 0;
      report.forEach(function (s) {
        if ((s.type === 'inbound-rtp' || s.type === 'media-source') && s.kind === 'audio' && typeof s.audioLevel === 'number') level = s.audioLevel;
      });
      callback(level);
    }, function () { callback(0); });
  };
  PluginHandle.prototype.getRemoteVolume = function (mid, callback) { this._volume(true, mid, callback); };
  PluginHandle.prototype.getVolume = PluginHandle.prototype.getRemoteVolume;
  PluginHandle.prototype.getLocalVolume = function (mid, callback) { this._volume(false, mid, callback); };

  PluginHandle.prototype._senders = function (kind, mid) {
    if (!this._pc) return [];
    return this._pc.getTransceivers().filter(function (t) {
      return t.sender && t.sender.track && t.sender.track.kind === kind && (mid === undefined || t.mid === mid);
    }).map(function (t) { return t.sender; });
  };

  PluginHandle.prototype._mute = function (kind, mid, mute) {
    const senders = this._senders(kind, mid);
    for (const s of senders) s.track.enabled = !mute;
    return senders.length > 0;
  };
  PluginHandle.prototype._isMuted = function (kind, mid) {
    const senders = this._senders(kind, mid);
    return senders.length === 0 || senders.every(function (s) { return !s.track.enabled; });
  };
  PluginHandle.prototype.muteAudio = function (mid) { return this._mute('audio', mid, true); };
  PluginHandle.prototype.unmuteAudio = function (mid) { return this._mute('audio', mid, false); };
  PluginHandle.prototype.muteVideo = function (mid) { return this._mute('video', mid, true); };
  PluginHandle.prototype.unmuteVideo = function (mid) { return this._mute('video', mid, false); };
  PluginHandle.prototype.isAudioMuted = function (mid) { return this._isMuted('audio', mid); };
  PluginHandle.prototype.isVideoMuted = function (mid) { return this._isMuted('video', mid); };

  /** Caps the bitrate we send on video (bits/s, 0 = no cap), on every encoding of the senders. */
  PluginHandle.prototype.setMaxBitrate = function (bitrate, mid) {
    for (const s of this._senders('video', mid)) {
      const p = s.getParameters();
      if (!p.encodings || !p.encodings.length) p.encodings = [{}];
      for (const e of p.encodings) {
        if (bitrate > 0) e.maxBitrate = bitrate; else delete e.maxBitrate;
      }
      s.setParameters(p).catch(function (e) { Janus.warn('janus: setMaxBitrate', e); });
    }
  };

  /** Closes the PeerConnection; sends `hangup` to the server only when `sendRequest === true`. */
  PluginHandle.prototype.hangup = function (sendRequest) {
    if (sendRequest === true && !this._detached) {
      this._session.request({ janus: 'hangup' }, this._id, function (reply) {
        if (reply.janus === 'error') Janus.warn('janus: hangup failed', errorText(reply));
      });
    }
    const hadMedia = !!this._pc;
    for (const key of Object.keys(this._bitrate)) clearInterval(this._bitrate[key].timer);
    for (const label of Object.keys(this._channels)) {
      try { this._channels[label].close(); } catch (e) { /* closed */ }
    }
    if (this._localStream) {
      for (const t of this._localStream.getTracks()) {
        t.stop();
        this._callbacks.onlocaltrack(t, false);
      }
    }
    if (this._pc) {
      try { this._pc.close(); } catch (e) { /* closed */ }
    }
    this._resetMedia();
    if (hadMedia) this._callbacks.oncleanup();
  };

  PluginHandle.prototype.detach = function (callbacks) {
    callbacks = callbacks || {};
    const self = this;
    this.hangup(false);
    const forget = function () { self._session.forget(self._id); };
    if (callbacks.noRequest || this._detached) {
      forget();
      (callbacks.success || noop)();
      return;
    }
    this._session.request({ janus: 'detach' }, this._id, function (reply) {
      forget();
      if (reply.janus === 'error') (callbacks.error || noop)(errorText(reply));
      else (callbacks.success || noop)();
    });
  };

  Janus.PluginHandle = PluginHandle;
  root.Janus = Janus;
})(typeof globalThis !== 'undefined' ? globalThis : this);
