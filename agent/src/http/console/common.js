// Roboconf mesh console: plain JavaScript (ES2020 modules), no framework, no build step,
// nothing fetched from outside the agent.
// This module: shared helpers, the API client and token, the banner and notices, live
// events (WebSocket, falling back to SSE), and what every page uses. Every string from the
// API goes through esc().

export const API = '/roboconf-dm';
export const TOKEN_KEY = 'roboconf-token';
export const MAX_EVENTS = 500;
export const TRANSIENT = new Set(['DEPLOYING', 'STARTING', 'STOPPING', 'UNDEPLOYING']);
// The stable state each desired state leads to.
export const GOAL = { started: 'DEPLOYED_STARTED', deployed: 'DEPLOYED_STOPPED', not_deployed: 'NOT_DEPLOYED' };

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

export const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Escapes any value for HTML text and attribute values. */
export function esc(v) {
  return v === null || v === undefined ? '' : String(v).replace(/[&<>"']/g, (c) => ESC[c]);
}
/** A CSS class fragment made of safe characters only. */
export const cls = (v) => String(v ?? '').replace(/[^A-Za-z0-9_-]/g, '_');
export const enc = encodeURIComponent;
/** A query string (`?a=1&b=2`) with every value URL-encoded; null/undefined left out. */
export function qs(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined) parts.push(`${enc(k)}=${enc(v)}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}
export const parentOf = (path) => {
  const i = path.lastIndexOf('/');
  return i > 0 ? path.slice(0, i) : null;
};
export const compName = (i) => (typeof i.component === 'string' ? i.component : i.component?.name) || '';
export const stateOf = (i) => i.status || i.state || 'NOT_DEPLOYED';
export function fmtTime(ms) {
  if (!ms && ms !== 0) return '';
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toLocaleString('sv-SE');
}
export function stateBadge(state, extra = '') {
  return `<span class="state st-${cls(state)}${extra}">${esc(state)}</span>`;
}
export function kv(obj) {
  const keys = Object.keys(obj || {});
  if (!keys.length) return '<span class="muted">none</span>';
  return `<dl class="kv">${keys.map((k) => `<dt>${esc(k)}</dt><dd class="mono">${esc(fmtValue(obj[k]))}</dd>`).join('')}</dl>`;
}
export const fmtValue = (v) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : v);

// ---------------------------------------------------------------- token and API

export let token = sessionStorage.getItem(TOKEN_KEY) || '';

export class ApiError extends Error {
  constructor(status, message, details) {
    super(message);
    this.status = status;
    this.details = details || [];
  }
}

/** Calls the agent's API; throws ApiError with the server's `error` and `details`. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `The agent cannot be reached (${e.message}).`, []);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const message =
      (data && typeof data === 'object' && (data.error || data.message)) ||
      (typeof data === 'string' && data.trim()) ||
      `${res.status} ${res.statusText}`;
    const details = data && Array.isArray(data.details) ? data.details : [];
    const err = new ApiError(res.status, String(message), details);
    if (res.status === 401) showTokenBox(err.message);
    throw err;
  }
  return data;
}
export const appPath = (app, rest, params) => `${API}/app/${enc(app)}/${rest}${qs(params)}`;

// ---------------------------------------------------------------- banner, notice, token box

export const banner = $('#error-banner');
export const bannerText = $('.banner-text', banner);
$('.banner-close', banner).addEventListener('click', hideError);

export function showError(e) {
  if (e && e.status === 401) return; // the token box says it
  const status = e && e.status ? ` (${e.status})` : '';
  const prefix = e && e.status === 403 ? `Refused${status}: ` : e && e.status ? `Error${status}: ` : '';
  const details = e && e.details && e.details.length
    ? `<ul>${e.details.map((d) => `<li>${esc(fmtValue(d))}</li>`).join('')}</ul>`
    : '';
  const change = e && e.status === 403
    ? ' <button type="button" class="banner-token">Use another token</button>'
    : '';
  bannerText.innerHTML = `${esc(prefix)}${esc(e && e.message ? e.message : String(e))}${change}${details}`;
  const b = $('.banner-token', bannerText);
  if (b) b.addEventListener('click', () => showTokenBox('Paste a token allowed to make changes.'));
  banner.hidden = false;
}
export function hideError() {
  banner.hidden = true;
  bannerText.textContent = '';
}

export const noticeEl = $('#notice');
export let noticeTimer = 0;
export function notice(text) {
  noticeEl.textContent = text;
  noticeEl.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { noticeEl.hidden = true; }, 3500);
}

export const tokenBox = $('#token-box');
export const tokenInput = $('#token-input');
export function showTokenBox(why) {
  $('.token-why', tokenBox).textContent = why || 'This agent asks for a bearer token.';
  if (tokenBox.hidden) {
    tokenBox.hidden = false;
    tokenInput.value = '';
    tokenInput.focus();
  }
}
/** What shows the page again once a token is given (the router registers it). */
let rerender = () => {};
export function onTokenSaved(fn) {
  rerender = fn;
}
$('#token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = tokenInput.value.trim();
  if (!t) return;
  token = t;
  sessionStorage.setItem(TOKEN_KEY, t);
  tokenBox.hidden = true;
  hideError();
  live.restart();
  rerender();
});
$('#token-forget').addEventListener('click', () => {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  tokenInput.value = '';
});

/** Runs `fn` (an action) with its button busy; shows its message or its error. */
export async function act(btn, fn, after) {
  if (btn) {
    btn.disabled = true;
    btn.classList.add('busy');
  }
  try {
    const r = await fn();
    hideError();
    notice((r && r.message) || 'Done.');
    if (after) after(r);
  } catch (e) {
    showError(e);
  } finally {
    if (btn) {
      btn.disabled = false;
      btn.classList.remove('busy');
    }
    if (current && current.refreshButtons) current.refreshButtons();
  }
}

/** Coalesces reloads: one in flight at a time; asked again meanwhile, it runs once more. */
export function reloader(fn) {
  let inflight = false;
  let again = false;
  let timer = 0;
  let stopped = false;
  async function run() {
    timer = 0;
    if (stopped) return;
    if (inflight) {
      again = true;
      return;
    }
    inflight = true;
    try {
      await fn();
    } catch (e) {
      showError(e);
    }
    inflight = false;
    if (again && !stopped) {
      again = false;
      run();
    }
  }
  return {
    now: run,
    soon(ms = 250) {
      if (!timer && !stopped) timer = setTimeout(run, ms);
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------- live events

export const events = []; // newest first, at most MAX_EVENTS
export const liveEl = $('#live');

export const live = (() => {
  let ws = null;
  let es = null;
  let attempt = 0;
  let timer = 0;
  let wsFailures = 0;
  let openedOnce = false;

  function set(state) {
    liveEl.dataset.live = state;
    liveEl.textContent = state === 'on' ? 'live' : state === 'connecting' ? 'connecting…' : 'offline';
  }
  function close() {
    const w = ws;
    const e = es;
    ws = null;
    es = null;
    if (w) w.close();
    if (e) e.close();
  }
  function opened() {
    attempt = 0;
    set('on');
    // Whatever happened while we were not listening: read the state again.
    if (current && current.resync) current.resync();
    openedOnce = true;
  }
  function lost() {
    set(openedOnce ? 'connecting' : 'off');
    clearTimeout(timer);
    const delay = Math.min(10000, 400 * 2 ** attempt) + Math.random() * 250;
    attempt = Math.min(attempt + 1, 8);
    timer = setTimeout(connect, delay);
  }
  function connect() {
    clearTimeout(timer);
    close();
    set('connecting');
    const q = token ? `?access_token=${enc(token)}` : '';
    // WebSocket first; after three sockets that never opened, Server-Sent Events.
    if ('WebSocket' in window && (wsFailures < 3 || !('EventSource' in window))) {
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      let sock;
      try {
        sock = new WebSocket(`${proto}//${location.host}/roboconf-dm-websocket${q}`);
      } catch {
        wsFailures += 1;
        lost();
        return;
      }
      ws = sock;
      let ok = false;
      sock.onopen = () => {
        ok = true;
        wsFailures = 0;
        opened();
      };
      sock.onmessage = (m) => frame(m.data);
      sock.onclose = () => {
        if (ws !== sock) return;
        ws = null;
        if (!ok) wsFailures += 1;
        lost();
      };
    } else {
      const src = new EventSource(`${API}/events${q}`);
      es = src;
      src.onopen = opened;
      // Unnamed events and the agent's named ones (`event: CHANGED`, `event: notice`).
      for (const name of ['message', 'CHANGED', 'CREATED', 'DELETED', 'notice']) {
        src.addEventListener(name, (m) => frame(m.data));
      }
      src.onerror = () => {
        if (es !== src) return;
        src.close();
        es = null;
        wsFailures = 0; // the socket again next time
        lost();
      };
    }
  }
  return {
    start: connect,
    restart() {
      attempt = 0;
      wsFailures = 0;
      connect();
    },
  };
})();

export function frame(text) {
  let ev;
  try {
    ev = JSON.parse(text);
  } catch {
    return;
  }
  if (!ev || typeof ev !== 'object') return;
  ev.received = Date.now();
  events.unshift(ev);
  if (events.length > MAX_EVENTS) events.length = MAX_EVENTS;
  if (ev.msg) notice(String(ev.msg));
  if (current && current.onEvent) current.onEvent(ev);
}

/** One line of HTML telling what an event says. */
export function describe(ev) {
  if (ev.msg) return `<span class="badge">notice</span> <span class="what">${esc(ev.msg)}</span>`;
  const kind = esc(ev.event || '?');
  if (ev.inst) {
    const node = ev.inst.data && ev.inst.data.node ? ` <span class="muted">on ${esc(ev.inst.data.node)}</span>` : '';
    const app = ev.app && ev.app.name ? ev.app.name : '';
    return `<span class="badge">${kind}</span> <a href="#/app/${esc(enc(app))}?instance=${esc(enc(ev.inst.path || ''))}">${esc(app)}</a> <span class="what mono">${esc(ev.inst.path || ev.inst.name)}</span> ${ev.inst.status ? stateBadge(ev.inst.status) : ''}${node}`;
  }
  if (ev.member) {
    return `<span class="badge">member</span> <span class="what">${esc(ev.member.name || ev.member.id)}</span> <span class="badge m-${cls(ev.member.state)}">${esc(ev.member.state)}</span>`;
  }
  if (ev.app) {
    return `<span class="badge">${kind}</span> application <a href="#/app/${esc(enc(ev.app.name || ''))}">${esc(ev.app.name)}</a>`;
  }
  return `<span class="badge">${kind}</span> <span class="what mono">${esc(JSON.stringify(ev))}</span>`;
}
export const eventHtml = (ev) => `<li><time>${esc(new Date(ev.received).toLocaleTimeString('sv-SE'))}</time> ${describe(ev)}</li>`;

// ---------------------------------------------------------------- views

export const viewEl = $('#view');
let current = null;
/** The page shown (the router sets it; live events and actions reach it). */
export function setCurrent(view) {
  current = view;
}

export function loading(el, what) {
  el.innerHTML = `<p class="muted">Loading ${esc(what)}…</p>`;
}
export function failed(el, e) {
  if (e.status === 401) {
    el.innerHTML = '<p class="muted">Waiting for a token.</p>';
  } else {
    el.innerHTML = `<p class="error-inline">${esc(e.message)}</p>`;
  }
}
