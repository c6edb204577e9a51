// shed's web page: every server's sheds and sessions, live from their event
// streams, the inbox of waiting agents on top, and a terminal (xterm.js) over
// the server's terminal WebSocket. Plain browser JavaScript, no build step.
//
// Everything the servers send is data, never markup: it reaches the page only
// through textContent and attributes, so a hostile shed, session or agent
// reason cannot inject anything.
'use strict';

(function () {
  const PREVIEW_LINES = 40;
  const RELOAD_DEBOUNCE_MS = 150;
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 10000;
  const STATES = ['working', 'waiting', 'idle', 'exited', 'unknown'];
  const EVENT_KINDS = ['shed.started', 'shed.stopped', 'shed.auto_stopped',
    'session.created', 'session.closed', 'session.changed', 'resync'];

  const $ = (id) => document.getElementById(id);
  const page = { servers: [], readOnly: false, streams: [] };

  // --- small DOM helpers ---------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function banner(message) {
    const b = $('banner');
    b.hidden = !message;
    setText(b, message || '');
  }

  // --- API -----------------------------------------------------------------

  // URLs stay relative to the page, so it works wherever it is mounted.
  function apiUrl(server, path) {
    const base = server.base.replace(/^\/+/, '');
    return (base ? base + '/' : '') + 'api/' + path;
  }

  function seg(name) { return encodeURIComponent(name); }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(server, method, path, body) {
    const init = { method, headers: {}, credentials: 'same-origin' };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(apiUrl(server, path), init);
    } catch (e) {
      throw new ApiError(0, 'NETWORK', `${server.name}: unreachable`);
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
    if (!resp.ok) {
      const err = json && json.error ? json.error : {};
      if (resp.status === 401) {
        banner('Not logged in (or the token changed): reload the page to log in.');
      }
      throw new ApiError(resp.status, err.code || 'HTTP_' + resp.status,
        err.message || `${method} ${path}: HTTP ${resp.status}`);
    }
    return json;
  }

  // Runs an action from a button, showing its error instead of swallowing it.
  async function act(what, fn) {
    try {
      await fn();
      banner('');
    } catch (e) {
      banner(`${what}: ${e.message}`);
    }
  }

  // --- servers and their live state ----------------------------------------

  async function loadServers() {
    try {
      const resp = await fetch('ui/servers', { credentials: 'same-origin' });
      if (resp.status === 404) {
        // An older server without /ui/servers: the API is beside the page.
        return { servers: [{ name: location.host, base: '' }], read_only: false };
      }
      if (resp.status === 401) {
        banner('Not logged in: reload the page to log in.');
        return { servers: [], read_only: true };
      }
      return await resp.json();
    } catch (e) {
      banner('Cannot reach the server: ' + e.message);
      return { servers: [], read_only: true };
    }
  }

  function startServer(info) {
    const server = {
      name: String(info.name),
      base: String(info.base || ''),
      sheds: [],
      sessions: [],
      warnings: [],
      error: '',
      node: null,
      shedNodes: new Map(),
      sessionNodes: new Map(),
      reloadTimer: null,
      loading: false,
      again: false,
    };
    server.node = renderServerShell(server);
    $('servers').append(server.node);
    reload(server);
    return server;
  }

  function parseEvent(ev) {
    try { return JSON.parse(ev.data); } catch (e) { return null; }
  }

  function serverEvent(server, data) {
    if (data && data.kind === 'session.changed' && patchSession(server, data)) return;
    scheduleReload(server);
  }

  function serverLive(server, live) {
    setText(server.node.querySelector('.live'), live ? 'live' : 'reconnecting…');
    if (live) scheduleReload(server);
  }

  // One EventSource per server, beside its API (shed-server's own page).
  function followServer(server) {
    const events = new EventSource(apiUrl(server, 'events'));
    for (const kind of EVENT_KINDS) {
      events.addEventListener(kind, (ev) => serverEvent(server, parseEvent(ev)));
    }
    events.addEventListener('open', () => serverLive(server, true));
    events.addEventListener('error', () => serverLive(server, false));
    return events;
  }

  // shed ui merges every server's events into one stream: a browser opens
  // at most six connections to one host, so one stream per server would
  // stall the page past five servers. Each event names its server.
  function followMerged(url, servers) {
    const byName = new Map(servers.map((s) => [s.name, s]));
    const events = new EventSource(url);
    const on = (kind, handle) => events.addEventListener(kind, (ev) => {
      const data = parseEvent(ev);
      const server = data && byName.get(data.server);
      if (server) handle(server, data);
    });
    for (const kind of EVENT_KINDS) on(kind, serverEvent);
    on('server.open', (server) => serverLive(server, true));
    on('server.down', (server) => serverLive(server, false));
    // shed ui itself is away: every server with it. Once back, each
    // server's `server.open` re-reads it.
    events.addEventListener('error', () => servers.forEach((s) => serverLive(s, false)));
    return events;
  }

  // The event streams are closed while the page is away and opened again
  // when it comes back. A page the browser keeps in its back/forward cache
  // would otherwise hold its stream's connection, and a browser opens at
  // most six to one host: a few visits later, loading this page again
  // waited about a minute for the cache to let one go.
  function follow(info) {
    page.streams = typeof info.events === 'string'
      ? [followMerged(info.events, page.servers)]
      : page.servers.map(followServer);
  }

  function unfollow() {
    page.streams.forEach((events) => events.close());
    page.streams = [];
    page.servers.forEach((s) => serverLive(s, false));
  }

  function scheduleReload(server) {
    clearTimeout(server.reloadTimer);
    server.reloadTimer = setTimeout(() => reload(server), RELOAD_DEBOUNCE_MS);
  }

  async function reload(server) {
    // One reload at a time per server; one more after it if events came in.
    if (server.loading) { server.again = true; return; }
    server.loading = true;
    try {
      const [sheds, sessions] = await Promise.all([
        api(server, 'GET', 'sheds'),
        api(server, 'GET', 'sessions'),
      ]);
      server.sheds = sheds.sheds || [];
      server.sessions = sessions.sessions || [];
      server.warnings = sessions.warnings || [];
      server.error = '';
    } catch (e) {
      server.error = e.message;
    } finally {
      server.loading = false;
    }
    renderServer(server);
    renderInbox();
    if (server.again) { server.again = false; reload(server); }
  }

  // A session.changed event carries the changed fields: apply them in place
  // when the session is known, so a state change shows without a round trip.
  function patchSession(server, event) {
    const s = server.sessions.find((x) => x.shed === event.shed && x.name === event.session);
    if (!s || !event.data || typeof event.data !== 'object') return false;
    for (const [key, value] of Object.entries(event.data)) {
      if (key === 'agent' && value && typeof value === 'object') {
        s.agent = Object.assign({}, s.agent || {}, value);
      } else {
        s[key] = value;
      }
    }
    renderServer(server);
    renderInbox();
    return true;
  }

  // --- rendering: server, sheds, sessions ------------------------------------

  function renderServerShell(server) {
    const create = el('form', { class: 'inline mutate create-shed', onsubmit: (ev) => {
      ev.preventDefault();
      const input = create.elements.name;
      const name = input.value.trim();
      if (!name) return;
      act(`create shed ${name}`, async () => {
        create.querySelector('button').disabled = true;
        try {
          await api(server, 'POST', 'sheds', { name });
          input.value = '';
        } finally {
          create.querySelector('button').disabled = false;
          scheduleReload(server);
        }
      });
    } },
    el('input', { type: 'text', name: 'name', placeholder: 'new shed name', 'aria-label': 'New shed name', maxlength: 63, autocomplete: 'off' }),
    el('button', { type: 'submit', class: 'primary', text: 'Create shed' }));
    return el('section', { class: 'server', dataset: { server: server.name } },
      el('header', {},
        el('h2', { text: server.name }),
        el('span', { class: 'live muted', text: 'connecting…' })),
      el('p', { class: 'error server-error', hidden: true }),
      el('div', { class: 'warnings' }),
      create,
      el('div', { class: 'sheds' }),
      el('p', { class: 'muted no-sheds', text: 'No sheds yet.', hidden: true }));
  }

  function renderServer(server) {
    const node = server.node;
    const err = node.querySelector('.server-error');
    err.hidden = !server.error;
    setText(err, server.error);
    const warnings = node.querySelector('.warnings');
    warnings.replaceChildren(...server.warnings.map((w) =>
      el('p', { class: 'warn error', text: `${w.shed}: ${w.message}` })));
    node.querySelector('.no-sheds').hidden = server.sheds.length > 0 || !!server.error;

    const list = node.querySelector('.sheds');
    const seen = new Set();
    const order = [];
    for (const shed of server.sheds) {
      seen.add(shed.name);
      let n = server.shedNodes.get(shed.name);
      if (!n) {
        n = renderShedShell(server, shed.name);
        server.shedNodes.set(shed.name, n);
      }
      updateShed(server, n, shed);
      order.push(n);
    }
    for (const [name, n] of server.shedNodes) {
      if (!seen.has(name)) { n.remove(); server.shedNodes.delete(name); }
    }
    keepOrder(list, order);

    const seenSessions = new Set();
    const bySheds = new Map();
    for (const s of server.sessions) {
      const key = s.shed + '/' + s.name;
      seenSessions.add(key);
      let n = server.sessionNodes.get(key);
      if (!n) {
        n = renderSessionShell(server, s.shed, s.name);
        server.sessionNodes.set(key, n);
      }
      updateSession(server, n, s);
      if (!bySheds.has(s.shed)) bySheds.set(s.shed, []);
      bySheds.get(s.shed).push(n);
    }
    for (const [key, n] of server.sessionNodes) {
      if (!seenSessions.has(key)) { n.remove(); server.sessionNodes.delete(key); }
    }
    for (const [name, shedNode] of server.shedNodes) {
      const rows = bySheds.get(name) || [];
      keepOrder(shedNode.querySelector('.sessions'), rows);
      const running = shedNode.dataset.status === 'running';
      const empty = shedNode.querySelector('.no-sessions');
      empty.hidden = rows.length > 0;
      setText(empty, running ? 'No sessions.' : 'Start the shed to see its sessions.');
      shedNode.querySelector('.new-session').hidden = !running;
    }
  }

  // Moves nodes only when the order changed, so typing in a row is not disturbed.
  function keepOrder(parent, nodes) {
    const current = Array.from(parent.children);
    if (current.length === nodes.length && current.every((n, i) => n === nodes[i])) return;
    parent.append(...nodes);
  }

  function renderShedShell(server, name) {
    const newSession = el('form', { class: 'inline mutate new-session', onsubmit: (ev) => {
      ev.preventDefault();
      const session = newSession.elements.session.value.trim();
      const command = newSession.elements.command.value.trim();
      if (!session) return;
      const body = { name: session };
      if (command) body.command = command;
      act(`new session ${session}`, async () => {
        await api(server, 'POST', `sheds/${seg(name)}/sessions`, body);
        newSession.reset();
        scheduleReload(server);
      });
    } },
    el('input', { type: 'text', name: 'session', placeholder: 'session name', 'aria-label': 'New session name', maxlength: 63, autocomplete: 'off' }),
    el('input', { type: 'text', name: 'command', placeholder: 'command (optional)', 'aria-label': 'Command', autocomplete: 'off' }),
    el('button', { type: 'submit', text: 'New session' }));

    const lifecycle = (verb, label, cls, confirmText) => el('button', {
      type: 'button', class: `mutate ${cls} ${verb}`, text: label, onclick: () => {
        if (confirmText && !window.confirm(confirmText)) return;
        act(`${verb} ${name}`, async () => {
          if (verb === 'delete') await api(server, 'DELETE', `sheds/${seg(name)}`);
          else await api(server, 'POST', `sheds/${seg(name)}/${verb}`);
          scheduleReload(server);
        });
      },
    });
    return el('article', { class: 'shed', dataset: { shed: name } },
      el('header', {},
        el('h3', { text: name }),
        el('span', { class: 'badge status' }),
        el('span', { class: 'muted image mono' }),
        el('span', { class: 'actions' },
          lifecycle('start', 'Start', ''),
          lifecycle('stop', 'Stop', '',
            `Stop shed "${name}"? Its sessions end; its files are kept.`),
          lifecycle('delete', 'Delete', 'danger',
            `Delete shed "${name}"? Its container, sessions and workspace are destroyed.`))),
      el('ul', { class: 'sessions' }),
      el('p', { class: 'muted no-sessions' }),
      newSession);
  }

  function updateShed(server, node, shed) {
    node.dataset.status = shed.status;
    const badge = node.querySelector('.status');
    badge.dataset.status = shed.status;
    setText(badge, shed.status);
    // A digest says little to a person; a tag says which image.
    const image = String(shed.image || '');
    setText(node.querySelector('.image'), image.startsWith('sha256:') ? '' : image);
    node.querySelector('.start').hidden = shed.status === 'running';
    node.querySelector('.stop').hidden = shed.status !== 'running';
  }

  function agentOf(s) {
    const a = s.agent || {};
    const state = STATES.includes(a.state) ? a.state : 'unknown';
    return { state, kind: String(a.kind || 'other'), reason: String(a.reason || '') };
  }

  function renderSessionShell(server, shed, name) {
    const key = shed + '/' + name;
    const path = `sheds/${seg(shed)}/sessions/${seg(name)}`;
    const preview = el('pre', { class: 'preview', hidden: true, 'aria-label': 'Recent output' });
    const send = el('form', { class: 'inline mutate send', onsubmit: (ev) => {
      ev.preventDefault();
      const text = send.elements.text.value;
      const enter = send.elements.enter.checked;
      if (!text && !enter) return;
      act(`send to ${key}`, async () => {
        await api(server, 'POST', `${path}/input`, { text, enter });
        send.elements.text.value = '';
        if (!preview.hidden) refreshPreview(server, path, preview);
      });
    } },
    el('input', { type: 'text', name: 'text', placeholder: 'send text', 'aria-label': `Text for ${key}`, autocomplete: 'off' }),
    el('label', { class: 'muted' }, el('input', { type: 'checkbox', name: 'enter', checked: true }), ' Enter'),
    el('button', { type: 'submit', text: 'Send' }));

    const row = el('li', { class: 'session', dataset: { session: key } },
      el('div', { class: 'row' },
        el('span', { class: 'name', text: name }),
        el('span', { class: 'badge state' }),
        el('span', { class: 'kind' }),
        el('span', { class: 'actions' },
          el('button', { type: 'button', class: 'toggle-preview', text: 'Preview', onclick: () => {
            preview.hidden = !preview.hidden;
            if (!preview.hidden) refreshPreview(server, path, preview);
          } }),
          el('button', { type: 'button', class: 'primary open-terminal', text: 'Terminal', onclick: () => openTerminal(server, shed, name) }),
          el('button', { type: 'button', class: 'danger mutate kill', text: 'Kill', onclick: () => {
            if (!window.confirm(`Kill session "${name}" in shed "${shed}"? What runs in it ends.`)) return;
            act(`kill ${key}`, async () => {
              await api(server, 'DELETE', path);
              scheduleReload(server);
            });
          } }))),
      el('div', { class: 'detail muted' }),
      send,
      preview);
    row.refreshPreview = () => { if (!preview.hidden) refreshPreview(server, path, preview); };
    return row;
  }

  function updateSession(server, node, s) {
    const a = agentOf(s);
    const changed = node.dataset.state !== a.state || node.dataset.activity !== s.last_activity;
    node.dataset.state = a.state;
    node.dataset.activity = s.last_activity || '';
    const badge = node.querySelector('.state');
    badge.dataset.state = a.state;
    setText(badge, a.state);
    setText(node.querySelector('.kind'), a.kind);
    const bits = [s.current_command, s.status, a.reason].filter(Boolean);
    setText(node.querySelector('.detail'), bits.join(' · '));
    // An exited command takes no input (the API refuses it).
    node.querySelector('form.send').hidden = !!s.exited;
    if (changed && node.refreshPreview) node.refreshPreview();
  }

  async function refreshPreview(server, path, pre) {
    try {
      const out = await api(server, 'GET', `${path}/output?lines=${PREVIEW_LINES}`);
      setText(pre, (out && out.output) || '');
      pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      setText(pre, e.message);
    }
  }

  // --- the inbox -------------------------------------------------------------

  const inboxNodes = new Map();

  function renderInbox() {
    const items = [];
    for (const server of page.servers) {
      for (const s of server.sessions) {
        const a = agentOf(s);
        if (a.state === 'waiting' || a.state === 'exited') items.push({ server, s, a });
      }
    }
    const rank = (a) => (a.state === 'waiting' ? 0 : 1);
    items.sort((x, y) => rank(x.a) - rank(y.a)
      || String(x.s.agent.since || '').localeCompare(String(y.s.agent.since || ''))
      || x.server.name.localeCompare(y.server.name)
      || x.s.shed.localeCompare(y.s.shed) || x.s.name.localeCompare(y.s.name));
    // Entries are kept and updated in place, like the session rows: an entry
    // rebuilt by an event between a tap's touchstart and touchend would
    // swallow the tap on its button.
    const multi = page.servers.length > 1;
    const seen = new Set();
    const order = items.map(({ server, s, a }) => {
      const key = server.name + '\n' + s.shed + '/' + s.name;
      seen.add(key);
      let li = inboxNodes.get(key);
      if (!li) {
        const shed = s.shed;
        const name = s.name;
        li = el('li', { dataset: { session: shed + '/' + name, server: server.name } },
          el('span', { class: 'badge' }),
          el('span', { class: 'where' }),
          el('span', { class: 'kind' }),
          el('span', { class: 'reason muted' }),
          el('button', { type: 'button', class: 'primary open-terminal', text: 'Terminal', onclick: () => openTerminal(server, shed, name) }));
        inboxNodes.set(key, li);
      }
      li.dataset.state = a.state;
      const badge = li.querySelector('.badge');
      badge.dataset.state = a.state;
      setText(badge, a.state);
      setText(li.querySelector('.where'), (multi ? server.name + ' / ' : '') + s.shed + ' / ' + s.name);
      setText(li.querySelector('.kind'), a.kind || '');
      setText(li.querySelector('.reason'), a.reason || '');
      return li;
    });
    for (const [key, li] of inboxNodes) {
      if (!seen.has(key)) { li.remove(); inboxNodes.delete(key); }
    }
    keepOrder($('inbox'), order);
    $('inbox-empty').hidden = items.length > 0;
    const waiting = items.filter((i) => i.a.state === 'waiting').length;
    document.title = waiting ? `(${waiting}) shed` : 'shed';
  }

  // --- the terminal -----------------------------------------------------------

  let terminal = null;

  function terminalUrl(t) {
    const path = `sheds/${seg(t.shed)}/sessions/${seg(t.session)}/terminal` +
      `?cols=${t.term.cols}&rows=${t.term.rows}`;
    const url = new URL(apiUrl(t.server, path), document.baseURI);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.href;
  }

  function openTerminal(server, shed, session) {
    closeTerminal();
    const panel = $('terminal-panel');
    panel.hidden = false;
    document.body.classList.add('term-open');
    setText($('terminal-title'), (page.servers.length > 1 ? server.name + ' / ' : '') + shed + ' / ' + session);
    const container = $('terminal');
    container.replaceChildren();
    container.dataset.session = shed + '/' + session;
    const term = new window.Terminal({
      // The DOM renderer keeps the screen as text in the page: tests (and
      // screen readers) can read it.
      rendererType: 'dom',
      // A steady cursor. xterm.js blinks its DOM cursor with a CSS animation
      // that keeps a frame pending, and after a key Chromium holds back the
      // page's other tasks, the echo's WebSocket message among them, until
      // that frame is drawn: a blinking cursor drew every echo a frame late
      // (BENCHMARKS.md row 22).
      cursorBlink: false,
      fontSize: 14,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
      scrollback: 5000,
      disableStdin: page.readOnly,
      theme: { background: '#10141c', foreground: '#e6e9ef' },
    });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(container);
    const t = {
      server, shed, session, term, fit, ws: null, retry: 0, timer: null, closed: false,
      encoder: new TextEncoder(), decoder: null, observer: null,
    };
    terminal = t;
    safeFit(t);
    term.onData((data) => {
      if (t.ws && t.ws.readyState === WebSocket.OPEN && !page.readOnly) {
        t.ws.send(t.encoder.encode(data));
      }
    });
    term.onResize(({ cols, rows }) => {
      if (t.ws && t.ws.readyState === WebSocket.OPEN) {
        t.ws.send(JSON.stringify({ type: 'resize', cols, rows }));
      }
    });
    t.observer = new ResizeObserver(() => safeFit(t));
    t.observer.observe(container);
    connect(t);
    term.focus();
  }

  function safeFit(t) {
    // The fit addon measures the rendered cells; a hidden panel has none.
    if (t.closed || !$('terminal').offsetWidth) return;
    try { t.fit.fit(); } catch (e) { /* not measurable yet */ }
  }

  function status(t, text) {
    if (terminal === t) setText($('terminal-status'), text);
  }

  function connect(t) {
    if (t.closed) return;
    status(t, 'connecting…');
    const ws = new WebSocket(terminalUrl(t));
    ws.binaryType = 'arraybuffer';
    t.ws = ws;
    t.decoder = new TextDecoder('utf-8');
    ws.addEventListener('open', () => {
      status(t, page.readOnly ? 'connected (view only)' : 'connected');
      t.retry = 0;
      // The size may have changed while we were away.
      ws.send(JSON.stringify({ type: 'resize', cols: t.term.cols, rows: t.term.rows }));
    });
    ws.addEventListener('message', (ev) => {
      if (ev.data instanceof ArrayBuffer) {
        t.term.write(t.decoder.decode(new Uint8Array(ev.data), { stream: true }));
      }
    });
    ws.addEventListener('close', (ev) => {
      if (t.ws !== ws || t.closed) return;
      t.ws = null;
      if (ev.code === 1000) {
        status(t, 'session ended');
        return;
      }
      reconnectLater(t, ev.code);
    });
  }

  // Any close but a normal one is a blip: try the same session again, slower
  // each time, unless the session is gone or we are no longer logged in.
  async function reconnectLater(t, code) {
    const path = `sheds/${seg(t.shed)}/sessions/${seg(t.session)}`;
    try {
      await api(t.server, 'GET', path);
    } catch (e) {
      if (e.status === 404 || e.status === 409 || e.status === 401 || e.status === 403) {
        status(t, `disconnected: ${e.message}`);
        return;
      }
    }
    if (t.closed) return;
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** t.retry);
    t.retry += 1;
    status(t, `disconnected (${code}); reconnecting in ${Math.round(delay / 100) / 10}s…`);
    t.timer = setTimeout(() => connect(t), delay);
  }

  function closeTerminal() {
    const t = terminal;
    if (!t) return;
    t.closed = true;
    clearTimeout(t.timer);
    if (t.observer) t.observer.disconnect();
    if (t.ws) t.ws.close(1000, 'closed');
    t.term.dispose();
    terminal = null;
    $('terminal').replaceChildren();
    delete $('terminal').dataset.session;
    $('terminal-panel').hidden = true;
    document.body.classList.remove('term-open');
  }

  // For tests and for the curious: the terminal's visible text, one line per row.
  window.shedTerminalText = () => {
    if (!terminal) return '';
    const term = terminal.term;
    const buffer = term.buffer.active || term.buffer;
    const lines = [];
    for (let y = 0; y < term.rows; y++) {
      const line = buffer.getLine(buffer.viewportY + y);
      lines.push(line ? line.translateToString(true) : '');
    }
    return lines.join('\n');
  };
  // The terminal's size and connection, for the same readers.
  window.shedTerminalInfo = () => terminal && {
    cols: terminal.term.cols,
    rows: terminal.term.rows,
    connected: !!terminal.ws && terminal.ws.readyState === WebSocket.OPEN,
    socket: terminal.ws,
  };

  // --- start -----------------------------------------------------------------

  async function main() {
    $('terminal-close').addEventListener('click', closeTerminal);
    window.addEventListener('resize', () => { if (terminal) safeFit(terminal); });
    const info = await loadServers();
    page.readOnly = !!info.read_only;
    document.body.classList.toggle('read-only', page.readOnly);
    const servers = Array.isArray(info.servers) ? info.servers : [];
    // Only shed-server itself (API beside the page) has a login to leave.
    $('logout').hidden = !(servers.length > 0 && servers.every((s) => !s.base));
    setText($('conn'), page.readOnly ? 'read-only' : '');
    page.servers = servers.map(startServer);
    follow(info);
    window.addEventListener('pagehide', unfollow);
    // Back from the cache: the streams' `open` re-reads every server.
    window.addEventListener('pageshow', (ev) => { if (ev.persisted) follow(info); });
    renderInbox();
  }

  main();
})();
