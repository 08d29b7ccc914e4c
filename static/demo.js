// Helpers shared by the demo pages: which server to talk to, and visible status and errors.
// The server address comes from the page's own host, so a page served by Portunus on
// http://<host>:8000/ talks to ws://<host>:8188/ (or, with ?transport=http, http://<host>:8088/janus).
// ?server=<url> overrides both (several: ?server=a&server=b, tried in order).
(function (root) {
  'use strict';

  const params = new URLSearchParams(root.location.search);

  function serverFromPage() {
    const explicit = params.getAll('server').filter(Boolean);
    if (explicit.length) return explicit.length === 1 ? explicit[0] : explicit;
    const host = root.location.hostname || '127.0.0.1';
    const secure = root.location.protocol === 'https:';
    if (params.get('transport') === 'http') return (secure ? 'https' : 'http') + '://' + host + ':' + (secure ? 8089 : 8088) + '/janus';
    return (secure ? 'wss' : 'ws') + '://' + host + ':' + (secure ? 8989 : 8188) + '/';
  }

  const $ = (id) => document.getElementById(id);

  /** Shows `text` in the #status line (`ok` colours it as success). */
  function status(text, ok) {
    const el = $('status');
    if (!el) return;
    el.textContent = text;
    el.classList.toggle('ok', !!ok);
  }

  /** Shows an error the user can read in the #error box, and records it for tests. */
  function error(text) {
    const el = $('error');
    root.demoState.errors.push(String(text));
    if (el) {
      el.textContent = el.classList.contains('shown') ? el.textContent + '\n' + text : String(text);
      el.classList.add('shown');
    }
    console.error('demo:', text);
  }

  function clearError() {
    const el = $('error');
    if (el) { el.textContent = ''; el.classList.remove('shown'); }
  }

  /**
   * Opens a Janus session on `server` with our janus.js. `created(janus)` gets the session object
   * at once, `success()` runs once connected; a failure is shown readably (an unreachable server
   * says so, with the address) and then `failed()` runs.
   */
  function connect({ server, created, success, failed, destroyed }) {
    root.Janus.init({ debug: params.has('debug') ? 'all' : ['warn', 'error'], callback: () => {
      created(new root.Janus({
        server,
        iceServers: [],
        success,
        destroyed,
        error: (cause) => {
          const text = String(cause);
          const shown = $('server') ? $('server').textContent : String(server);
          error(/^Server unreachable: /.test(text)
            ? 'Server unreachable: is Portunus running, and listening on ' + shown + '?\n(' +
              text.replace(/^Server unreachable: /, '') + ')'
            : text);
          status('Not connected.');
          failed();
        },
      }));
    } });
  }

  root.demoState = { errors: [], phase: 'idle', events: [] };
  root.Demo = { params, serverFromPage, status, error, clearError, connect, $ };
})(window);
