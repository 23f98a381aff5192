// Roboconf mesh console: plain JavaScript (ES2020 modules), no framework, no build step,
// nothing fetched from outside the agent.
// Hash routes: #/apps, #/app/<name>[?instance=<path>], #/members, #/events, #/coordinator.
// This module: the applications, members, events and coordinator pages, and the router.

import {
  API,
  MAX_EVENTS,
  $,
  $$,
  esc,
  cls,
  enc,
  kv,
  api,
  showError,
  reloader,
  events,
  live,
  eventHtml,
  viewEl,
  loading,
  failed,
  setCurrent,
  onTokenSaved,
} from './common.js';
import { AppView } from './app-view.js';

let current = null;

// ---- Applications

function AppsView() {
  let el;
  const reload = reloader(async () => {
    const apps = await api('GET', `${API}/applications`);
    render(Array.isArray(apps) ? apps : []);
  });
  function render(apps) {
    if (!apps.length) {
      el.innerHTML = '<h1>Applications</h1><p class="empty">No application yet. Add one with <code>roboconf app add DIR</code>.</p>';
      return;
    }
    const cards = apps.map((a) => {
      const total = a.instances || 0;
      const started = a.started || 0;
      const pct = total ? Math.round((100 * started) / total) : 0;
      const health = a.health || 'ok';
      const problems = a.problems ? ` · <span class="bad-badge badge">${esc(a.problems)} problem${a.problems > 1 ? 's' : ''}</span>` : '';
      return `<li><a class="card" href="#/app/${esc(enc(a.name))}" data-app="${esc(a.name)}">
<div class="card-title"><strong>${esc(a.name)}</strong><span class="badge health-${cls(health)}">${esc(health)}</span></div>
<div class="muted small">version ${esc(a.version || '?')}</div>
<div><span class="started">${esc(started)}</span>/<span class="total">${esc(total)}</span> started${problems}</div>
<div class="meter" aria-hidden="true"><span style="width:${pct}%"></span></div></a></li>`;
    });
    el.innerHTML = `<h1>Applications <span class="count">${apps.length}</span></h1><ul class="cards">${cards.join('')}</ul>`;
  }
  return {
    page: 'apps',
    title: 'Applications',
    async mount(target) {
      el = target;
      loading(el, 'applications');
      try {
        const apps = await api('GET', `${API}/applications`);
        render(Array.isArray(apps) ? apps : []);
      } catch (e) {
        failed(el, e);
        showError(e);
      }
    },
    onEvent(ev) {
      if (ev.app || ev.msg) reload.soon(ev.inst ? 500 : 100);
    },
    resync: () => reload.soon(50),
    unmount: () => reload.stop(),
  };
}

// ---- Members

function MembersView() {
  let el;
  const reload = reloader(async () => render(await api('GET', `${API}/members`)));
  function render(list) {
    const members = (Array.isArray(list) ? list : []).slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    el.innerHTML = `<h1>Members <span class="count">${members.length}</span></h1>
<div class="table-wrap"><table><thead><tr><th>Name</th><th>State</th><th>Roles</th><th>Roots</th><th>Version</th><th>Addresses</th></tr></thead><tbody>
${members.map((m) => `<tr data-member="${esc(m.name)}"><td><strong>${esc(m.name)}</strong><div class="muted small mono">${esc(m.id)}</div></td>
<td><span class="badge m-${cls(m.state)}">${esc(m.state)}</span></td>
<td>${(m.roles || []).map((r) => `<span class="badge role role-${cls(r)}">${esc(r)}</span>`).join(' ') || '<span class="muted">—</span>'}</td>
<td class="wrap mono small">${(m.roots || []).map(esc).join('<br>') || '<span class="muted">—</span>'}</td>
<td>${esc(m.version)}</td>
<td class="wrap mono small">${(m.addresses || []).map(esc).join('<br>')}</td></tr>`).join('')}
</tbody></table></div>`;
  }
  return {
    page: 'members',
    title: 'Members',
    async mount(target) {
      el = target;
      loading(el, 'members');
      try {
        render(await api('GET', `${API}/members`));
      } catch (e) {
        failed(el, e);
        showError(e);
      }
    },
    onEvent(ev) {
      if (ev.member || ev.msg) reload.soon(200);
    },
    resync: () => reload.soon(50),
    unmount: () => reload.stop(),
  };
}

// ---- Events

function EventsView() {
  let list;
  let count;
  function renderAll() {
    list.innerHTML = events.map(eventHtml).join('');
    count.textContent = String(events.length);
  }
  return {
    page: 'events',
    title: 'Events',
    mount(target) {
      target.innerHTML = `<h1>Events <span class="count"></span></h1>
<div class="toolbar"><span class="muted small grow">Live from this agent, newest first (the last ${MAX_EVENTS} are kept).</span><button type="button" class="clear">Clear</button></div>
<ul class="events" aria-live="off"></ul>`;
      list = target.querySelector('.events');
      count = target.querySelector('.count');
      target.querySelector('.clear').addEventListener('click', () => {
        events.length = 0;
        renderAll();
      });
      renderAll();
    },
    onEvent(ev) {
      list.insertAdjacentHTML('afterbegin', eventHtml(ev));
      while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
      count.textContent = String(events.length);
    },
  };
}

// ---- Coordinator

function CoordinatorView() {
  let el;
  const reload = reloader(async () => render(await api('GET', `${API}/coordinator`)));
  function render(c) {
    const voters = (c && Array.isArray(c.voters) ? c.voters : []);
    const leader = c && c.leader ? voters.find((v) => v.id === c.leader) : null;
    el.innerHTML = `<h1>Coordinator</h1>
<dl class="kv">
<dt>Leader</dt><dd class="leader">${c && c.leader ? `${leader ? `<strong>${esc(leader.name)}</strong> ` : ''}<span class="mono small">${esc(c.leader)}</span>` : '<span class="badge bad-badge">none</span>'}</dd>
<dt>Term</dt><dd class="term">${esc(c ? c.term : '')}</dd>
<dt>Voters</dt><dd>${voters.length}</dd>
</dl>
<div class="table-wrap"><table><thead><tr><th>Voter</th><th>State</th><th>Id</th></tr></thead><tbody>
${voters.map((v) => `<tr><td><strong>${esc(v.name)}</strong>${c.leader === v.id ? ' <span class="badge role role-leader">leader</span>' : ''}</td><td><span class="badge m-${cls(v.state)}">${esc(v.state)}</span></td><td class="mono small wrap">${esc(v.id)}</td></tr>`).join('')}
</tbody></table></div>`;
  }
  return {
    page: 'coordinator',
    title: 'Coordinator',
    async mount(target) {
      el = target;
      loading(el, 'the coordinator');
      try {
        render(await api('GET', `${API}/coordinator`));
      } catch (e) {
        failed(el, e);
        showError(e);
      }
    },
    onEvent(ev) {
      if (ev.member || ev.msg) reload.soon(300);
    },
    resync: () => reload.soon(50),
    unmount: () => reload.stop(),
  };
}

// ---------------------------------------------------------------- router

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const q = h.indexOf('?');
  const path = q < 0 ? h : h.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  const parts = path.split('/');
  const dec = (s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  switch (parts[0]) {
    case 'app':
      if (parts.length > 1 && parts[1]) return { page: 'app', app: dec(parts.slice(1).join('/')), instance: params.get('instance') };
      return { page: 'apps' };
    case 'members':
    case 'events':
    case 'coordinator':
      return { page: parts[0] };
    default:
      return { page: 'apps' };
  }
}

const VIEWS = { apps: AppsView, app: AppView, members: MembersView, events: EventsView, coordinator: CoordinatorView };

function route(force) {
  const p = parseHash();
  if (!force && current && current.page === p.page && p.page === 'app' && current.app === p.app) {
    current.update(p);
    return;
  }
  if (current && current.unmount) current.unmount();
  const nav = p.page === 'app' ? 'apps' : p.page;
  for (const a of $$('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  current = VIEWS[p.page](p);
  setCurrent(current);
  document.title = `${current.title} · Roboconf mesh`;
  current.mount(viewEl);
}

onTokenSaved(() => route(true));
window.addEventListener('hashchange', () => route(false));
if (!location.hash) history.replaceState(null, '', '#/apps');
route(true);
live.start();
