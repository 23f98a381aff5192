// Roboconf mesh console: plain JavaScript (ES2020 modules), no framework, no build step,
// nothing fetched from outside the agent.
// This module: one application's page — the instance tree, the selected instance with its
// actions and script runs, commands, history and jobs.

import {
  API,
  GOAL,
  $,
  esc,
  cls,
  enc,
  qs,
  parentOf,
  compName,
  stateOf,
  fmtTime,
  stateBadge,
  kv,
  fmtValue,
  api,
  appPath,
  showError,
  act,
  reloader,
  events,
  failed,
} from './common.js';

// ---- One application: the instance tree, the selected instance, commands, history, jobs

export function AppView(params) {
  const app = params.app;
  let selected = params.instance || null;
  const insts = new Map(); // path -> instance
  const rows = new Map(); // path -> .row element
  const collapsed = new Set();
  let components = null; // Map component name -> children it may hold ("" = roots)
  let loaded = false;
  let alive = true;
  let filter = '';
  let el;
  let treeEl;
  let layoutEl;
  let detailEl;
  let countEl;
  const openRuns = new Set();
  let runsSeen = false;

  // The first load renders the tree; later ones (events it cannot patch, reconnects,
  // after actions) patch the rows that changed.
  const reload = reloader(async () => {
    let list;
    try {
      list = await api('GET', appPath(app, 'instances', { 'all-children': 'true' }));
    } catch (e) {
      if (alive && !loaded) treeEl.innerHTML = `<li class="error-inline">${esc(e.message)}</li>`;
      throw e;
    }
    if (!alive) return;
    list = Array.isArray(list) ? list : [];
    if (loaded) reconcile(list);
    else renderTree(list);
  });
  const reloadRuns = reloader(async () => {
    if (alive) await loadRuns();
  });

  // -- rows

  function rowInner(i, hasKids) {
    const state = stateOf(i);
    const parts = [];
    parts.push(hasKids
      ? `<button type="button" class="twisty" tabindex="-1" aria-label="Collapse or expand"></button>`
      : '<span class="twisty-pad"></span>');
    parts.push(`<a class="name" href="#/app/${esc(enc(app))}?instance=${esc(enc(i.path))}">${esc(i.name || i.path)}</a>`);
    parts.push(stateBadge(state));
    parts.push(`<span class="comp">${esc(compName(i))}</span>`);
    const meta = [];
    meta.push(`<span class="node">${i.node ? `on ${esc(i.node)}` : 'no host'}</span>`);
    const goal = i.desiredUnsure ? null : GOAL[i.desired];
    if (goal && goal !== state) meta.push(`<span class="desired">wants ${esc(i.desired)}</span>`);
    if (i.retry && typeof i.retry === 'object') {
      meta.push(`<span class="retry">retry ${esc(i.retry.attempt)} at ${esc(fmtTime(i.retry.at_ms))}</span>`);
    }
    const m = i.machine;
    if (m && typeof m === 'object') {
      meta.push(`<span class="machine">machine <span class="badge m-${cls(m.state)}">${esc(m.state)}</span>${m.address ? ` ${esc(m.address)}` : ''}</span>`);
    }
    const ex = i.exports && typeof i.exports === 'object' ? Object.keys(i.exports) : [];
    if (ex.length) {
      const short = ex.slice(0, 3).map((k) => `${k}=${fmtValue(i.exports[k])}`).join(', ') + (ex.length > 3 ? ', …' : '');
      meta.push(`<details class="exports"><summary>${esc(short)}</summary>${kv(i.exports)}</details>`);
    }
    parts.push(`<div class="meta">${meta.join('')}</div>`);
    if (i.last_error) parts.push(`<div class="err">${esc(i.last_error)}</div>`);
    return parts.join('');
  }

  function renderTree(list) {
    insts.clear();
    for (const i of list) if (i && typeof i.path === 'string') insts.set(i.path, i);
    const kids = new Map();
    const roots = [];
    for (const path of insts.keys()) {
      const p = parentOf(path);
      if (p !== null && insts.has(p)) {
        let k = kids.get(p);
        if (!k) kids.set(p, (k = []));
        k.push(path);
      } else {
        roots.push(path);
      }
    }
    const out = [];
    const node = (path) => {
      const i = insts.get(path);
      const ch = kids.get(path);
      const isCollapsed = ch && collapsed.has(path);
      out.push(`<li role="treeitem"${ch ? ` aria-expanded="${!isCollapsed}"` : ''}${isCollapsed ? ' class="collapsed"' : ''}>`);
      out.push(`<div class="row" data-path="${esc(path)}" aria-selected="false">${rowInner(i, !!ch)}</div>`);
      if (ch) {
        out.push('<ul role="group">');
        for (const c of ch) node(c);
        out.push('</ul>');
      }
      out.push('</li>');
    };
    for (const r of roots) node(r);
    treeEl.innerHTML = out.length ? out.join('') : '<li class="empty">No instance.</li>';
    rows.clear();
    for (const row of treeEl.getElementsByClassName('row')) rows.set(row.dataset.path, row);
    loaded = true;
    countEl.textContent = `${insts.size} instance${insts.size === 1 ? '' : 's'}`;
    performance.mark('tree-rendered');
    requestAnimationFrame(() => setTimeout(() => performance.mark('tree-painted'), 0));
    applyFilter();
    select(selected, true);
  }

  /** A fresh list: patches the rows that changed, re-renders only when paths changed. */
  function reconcile(list) {
    const fresh = new Map();
    for (const i of list) if (i && typeof i.path === 'string') fresh.set(i.path, i);
    let same = fresh.size === insts.size;
    if (same) for (const p of fresh.keys()) if (!insts.has(p)) { same = false; break; }
    if (!same) {
      renderTree(list);
      return;
    }
    for (const [path, i] of fresh) {
      if (JSON.stringify(i) !== JSON.stringify(insts.get(path))) {
        insts.set(path, i);
        patchRow(path);
      }
    }
  }

  function patchRow(path) {
    const row = rows.get(path);
    const i = insts.get(path);
    if (!row || !i) return;
    const open = row.querySelector('.exports')?.open;
    row.innerHTML = rowInner(i, !!row.parentElement.querySelector(':scope > ul'));
    if (open) row.querySelector('.exports')?.setAttribute('open', '');
    if (path === selected) renderInfo();
  }

  function toggle(li, path) {
    const c = li.classList.toggle('collapsed');
    li.setAttribute('aria-expanded', String(!c));
    if (c) collapsed.add(path);
    else collapsed.delete(path);
  }
  function setAllCollapsed(c) {
    for (const li of treeEl.querySelectorAll('li[aria-expanded]')) {
      const path = li.firstElementChild.dataset.path;
      li.classList.toggle('collapsed', c);
      li.setAttribute('aria-expanded', String(!c));
      if (c) collapsed.add(path);
      else collapsed.delete(path);
    }
  }

  function applyFilter() {
    const q = filter.trim().toLowerCase();
    treeEl.classList.toggle('filtering', !!q);
    if (!q) {
      for (const row of rows.values()) row.parentElement.hidden = false;
      return;
    }
    const show = new Set();
    for (const [path, i] of insts) {
      const hay = `${path} ${compName(i)} ${stateOf(i)} ${i.node || ''}`.toLowerCase();
      if (hay.includes(q)) {
        for (let p = path; p !== null && !show.has(p); p = parentOf(p)) show.add(p);
      }
    }
    for (const [path, row] of rows) row.parentElement.hidden = !show.has(path);
  }

  // -- the selected instance

  function select(path, quiet) {
    if (selected && rows.get(selected)) rows.get(selected).setAttribute('aria-selected', 'false');
    selected = path && insts.has(path) ? path : null;
    if (!selected) {
      detailEl.hidden = true;
      detailEl.innerHTML = '';
      layoutEl.classList.remove('with-detail');
      return;
    }
    const row = rows.get(selected);
    if (row) {
      row.setAttribute('aria-selected', 'true');
      for (let p = parentOf(selected); p !== null; p = parentOf(p)) {
        const r = rows.get(p);
        if (r && r.parentElement.classList.contains('collapsed')) toggle(r.parentElement, p);
      }
      if (!quiet) row.scrollIntoView({ block: 'nearest' });
    }
    openRuns.clear();
    runsSeen = false;
    renderDetail();
    reloadRuns.now();
  }

  function renderDetail() {
    const i = insts.get(selected);
    if (!i) return;
    const isRoot = parentOf(i.path) === null;
    const hasKids = !!rows.get(i.path)?.parentElement.querySelector(':scope > ul');
    detailEl.hidden = false;
    layoutEl.classList.add('with-detail');
    detailEl.innerHTML = `<div class="detail" data-detail="${esc(i.path)}">
<div class="detail-head"><h2>${esc(i.name || i.path)}</h2><button type="button" class="detail-close" aria-label="Close">&times;</button></div>
<div class="detail-info"></div>
<div class="actions">
<button type="button" class="primary" data-action="start">Deploy &amp; start</button>
<button type="button" data-action="stop">Stop</button>
<button type="button" data-action="undeploy">Undeploy</button>
<button type="button" data-action="create" aria-expanded="false">Create child</button>
${isRoot ? '<button type="button" data-action="replicate" aria-expanded="false">Replicate</button>' : ''}
<button type="button" class="danger" data-action="delete">Delete</button>
</div>
${hasKids ? `<div class="row-buttons small"><span class="muted">Everything below:</span>
<button type="button" data-action="deploy-all" data-scope="instance">Deploy &amp; start all</button>
<button type="button" data-action="stop-all" data-scope="instance">Stop all</button>
<button type="button" data-action="undeploy-all" data-scope="instance">Undeploy all</button></div>` : ''}
<form class="inline create-form" hidden>
<select name="component" aria-label="Component" required></select>
<input type="text" name="name" placeholder="Name of the new instance" aria-label="Name" required>
<button type="submit" class="primary">Create</button>
</form>
<form class="inline replicate-form" hidden>
<input type="text" name="name" placeholder="Name of the copy" aria-label="Name of the copy" required>
<button type="submit" class="primary">Replicate</button>
</form>
<h3>Script runs</h3>
<div class="runs-body"><p class="muted">Loading…</p></div>
</div>`;
    renderInfo();
  }

  function renderInfo() {
    const i = insts.get(selected);
    const info = detailEl.querySelector('.detail-info');
    if (!i || !info) return;
    const state = stateOf(i);
    const m = i.machine && typeof i.machine === 'object' ? i.machine : null;
    const data = i.data && typeof i.data === 'object' ? i.data : {};
    const dataShown = Object.keys(data).filter((k) => data[k] !== null && data[k] !== '' && data[k] !== undefined);
    info.innerHTML = `<dl class="kv">
<dt>Path</dt><dd class="mono path">${esc(i.path)}</dd>
<dt>Component</dt><dd>${esc(compName(i))}</dd>
<dt>State</dt><dd>${stateBadge(state)}</dd>
<dt>Desired</dt><dd>${i.desiredUnsure ? '<span class="muted">…</span>' : esc(i.desired || '—')}</dd>
<dt>Host node</dt><dd>${i.node ? esc(i.node) : '<span class="muted">none</span>'}</dd>
${i.last_error ? `<dt>Last error</dt><dd class="error-inline">${esc(i.last_error)}</dd>` : ''}
${i.retry && typeof i.retry === 'object' ? `<dt>Retry</dt><dd>attempt ${esc(i.retry.attempt)} failed; next at ${esc(fmtTime(i.retry.at_ms))}</dd>` : ''}
</dl>
${m ? `<h3>Machine</h3><dl class="kv">
<dt>State</dt><dd><span class="badge m-${cls(m.state)}">${esc(m.state)}</span>${m.reason ? ` ${esc(m.reason)}` : ''}</dd>
<dt>Address</dt><dd class="mono">${esc(m.address || '—')}</dd>
<dt>Target</dt><dd>${esc(m.target)} <span class="muted">(${esc(m.handler)})</span></dd>
<dt>Machine id</dt><dd class="mono">${esc(m.id || '—')}</dd>
<dt>Its agent</dt><dd>${esc(m.node || '—')}</dd></dl>` : ''}
<h3>Exports</h3>${kv(i.exports)}
${dataShown.length ? `<h3>Data</h3>${kv(Object.fromEntries(dataShown.map((k) => [k, data[k]])))}` : ''}`;
    refreshButtons();
  }

  function refreshButtons() {
    const i = insts.get(selected);
    if (!i || !detailEl) return;
    const state = stateOf(i);
    const d = i.desired;
    const set = (action, off, why) => {
      const b = detailEl.querySelector(`[data-action="${action}"]`);
      if (b && !b.classList.contains('busy')) {
        b.disabled = !!off;
        b.title = off ? why : '';
      }
    };
    set('start', state === 'DEPLOYED_STARTED' && d === 'started', 'Already started');
    set('stop', state === 'DEPLOYED_STOPPED' && d === 'deployed', 'Already stopped');
    set('undeploy', state === 'NOT_DEPLOYED' && d === 'not_deployed', 'Not deployed');
    const allowed = components ? components.get(compName(i)) || [] : null;
    set('create', allowed !== null && !allowed.length, `No component may be created under ${compName(i)}`);
  }

  async function loadRuns() {
    const path = selected;
    const body = detailEl.querySelector('.runs-body');
    if (!path || !body) return;
    let runs;
    try {
      runs = await api('GET', appPath(app, 'runs', { 'instance-path': path }));
    } catch (e) {
      if (selected === path && body.isConnected) failed(body, e);
      return;
    }
    if (!alive || selected !== path || !body.isConnected) return;
    runs = (Array.isArray(runs) ? runs : []).slice().sort((a, b) => (b.seq || 0) - (a.seq || 0));
    for (const d of body.querySelectorAll('details[data-seq]')) {
      if (d.open) openRuns.add(d.dataset.seq);
      else openRuns.delete(d.dataset.seq);
    }
    if (!runs.length) {
      body.innerHTML = '<p class="muted">No script has run for this instance here.</p>';
      return;
    }
    if (!runsSeen) openRuns.add(String(runs[0].seq));
    runsSeen = true;
    body.innerHTML = `<ul class="runs">${runs.map((r) => `<li><details data-seq="${esc(r.seq)}"${openRuns.has(String(r.seq)) ? ' open' : ''}>
<summary><span class="badge ${r.ok ? 'health-ok' : 'bad-badge'}">${r.ok ? 'ok' : 'failed'}</span><strong>${esc(r.action)}</strong><span class="muted small">#${esc(r.seq)} · ${esc(fmtTime(r.at_ms))}${r.code !== null && r.code !== undefined ? ` · exit ${esc(r.code)}` : ''}</span></summary>
${r.error ? `<p class="error-inline">${esc(r.error)}</p>` : ''}<pre>${r.output ? esc(r.output) : '<span class="muted">(no output)</span>'}</pre></details></li>`).join('')}</ul>`;
  }

  async function ensureComponents() {
    if (components) return components;
    const list = await api('GET', appPath(app, 'components'));
    components = new Map((Array.isArray(list) ? list : []).map((c) => [c.name || '', c.children || []]));
    return components;
  }
  function fillSelect(select, names) {
    select.innerHTML = names.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join('');
  }

  // -- actions

  function changeState(btn, newState) {
    const path = selected;
    act(btn, () => api('POST', appPath(app, 'change-state', { 'new-state': newState, 'instance-path': path })), () => reload.soon(800));
  }

  async function onDetailClick(ev) {
    const btn = ev.target.closest('button');
    if (!btn || !selected) return;
    if (btn.classList.contains('detail-close')) {
      location.hash = `#/app/${enc(app)}`;
      return;
    }
    const path = selected;
    const i = insts.get(path);
    switch (btn.dataset.action) {
      case 'start': return changeState(btn, 'DEPLOYED_STARTED');
      case 'stop': return changeState(btn, 'DEPLOYED_STOPPED');
      case 'undeploy': return changeState(btn, 'NOT_DEPLOYED');
      case 'deploy-all':
      case 'stop-all':
      case 'undeploy-all':
        if (btn.dataset.action === 'undeploy-all' && !confirm(`Undeploy everything under ${path}?`)) return;
        return act(btn, () => api('POST', appPath(app, btn.dataset.action, { 'instance-path': path })), () => reload.soon(800));
      case 'create': {
        const form = detailEl.querySelector('.create-form');
        form.hidden = !form.hidden;
        btn.setAttribute('aria-expanded', String(!form.hidden));
        if (!form.hidden) {
          try {
            const c = await ensureComponents();
            fillSelect(form.component, c.get(compName(i)) || []);
            refreshButtons();
            form.name.focus();
          } catch (e) {
            showError(e);
          }
        }
        return;
      }
      case 'replicate': {
        const form = detailEl.querySelector('.replicate-form');
        form.hidden = !form.hidden;
        btn.setAttribute('aria-expanded', String(!form.hidden));
        if (!form.hidden) {
          form.name.value = `${i.name || ''}-copy`;
          form.name.select();
        }
        return;
      }
      case 'delete':
        if (!confirm(`Delete ${path} and every instance under it?`)) return;
        return act(btn, () => api('DELETE', appPath(app, 'instances', { 'instance-path': path })), () => {
          location.hash = `#/app/${enc(app)}`;
          reload.soon(300);
        });
      default:
    }
  }

  function onDetailSubmit(ev) {
    ev.preventDefault();
    const form = ev.target;
    const btn = form.querySelector('button[type="submit"]');
    const parent = selected;
    const name = form.name.value.trim();
    if (!name) return;
    if (form.classList.contains('create-form')) {
      const component = form.component.value;
      act(btn, () => api('POST', appPath(app, 'instances', { 'instance-path': parent }), { name, component: { name: component } }), () => {
        form.hidden = true;
        reload.soon(300);
      });
    } else if (form.classList.contains('replicate-form')) {
      act(btn, () => api('POST', appPath(app, 'replicate', { 'instance-path': parent, name })), () => {
        form.hidden = true;
        reload.soon(300);
      });
    }
  }

  async function loadCommands() {
    const body = el.querySelector('#commands');
    try {
      const list = await api('GET', appPath(app, 'commands'));
      if (!alive) return;
      const names = Array.isArray(list) ? list.map((c) => (typeof c === 'string' ? c : c.name)) : [];
      body.innerHTML = names.length
        ? `<div class="table-wrap"><table><tbody>${names.map((n) => `<tr><td class="wrap mono">${esc(n)}</td><td style="text-align:right"><button type="button" data-action="execute" data-command="${esc(n)}">Execute</button></td></tr>`).join('')}</tbody></table></div>`
        : '<p class="muted">This application has no command.</p>';
    } catch (e) {
      if (alive) failed(body, e);
    }
  }
  async function loadHistory() {
    const body = el.querySelector('#history');
    try {
      const list = await api('GET', `${API}/history/commands${qs({ app })}`);
      if (!alive) return;
      const items = (Array.isArray(list) ? list : []).slice().sort((a, b) => (b.start_ms || 0) - (a.start_ms || 0) || (b.id || 0) - (a.id || 0)).slice(0, 200);
      body.innerHTML = items.length
        ? `<div class="table-wrap"><table><thead><tr><th>When</th><th>Command</th><th>Origin</th><th>Result</th><th>Took</th></tr></thead><tbody>${items.map((h) => {
          const result = typeof h.result === 'object' && h.result !== null ? JSON.stringify(h.result) : String(h.result ?? '');
          const bad = /fail|error|refus|abort/i.test(result);
          return `<tr><td>${esc(fmtTime(h.start_ms))}</td><td class="mono wrap">${esc(h.command)}</td><td>${esc(h.origin)}${h.details ? ` <span class="muted small">${esc(h.details)}</span>` : ''}</td><td><span class="badge ${bad ? 'bad-badge' : 'health-ok'}">${esc(result)}</span>${h.reason ? ` <span class="small">${esc(h.reason)}</span>` : ''}</td><td>${h.duration_ms !== undefined ? `${esc(h.duration_ms)} ms` : ''}</td></tr>`;
        }).join('')}</tbody></table></div>`
        : '<p class="muted">No command has run yet.</p>';
    } catch (e) {
      if (alive) failed(body, e);
    }
  }
  async function loadJobs() {
    const body = el.querySelector('#jobs');
    try {
      const list = await api('GET', `${API}/scheduler${qs({ 'app-name': app })}`);
      if (!alive) return;
      const jobs = Array.isArray(list) ? list : [];
      body.innerHTML = jobs.length
        ? `<div class="table-wrap"><table><thead><tr><th>Job</th><th>Command</th><th>Cron</th><th>Next</th></tr></thead><tbody>${jobs.map((j) => `<tr><td>${esc(j.name)}</td><td class="mono">${esc(j.command)}</td><td class="mono">${esc(j.cron)}</td><td>${j.next_ms ? esc(fmtTime(j.next_ms)) : '<span class="muted">never</span>'}</td></tr>`).join('')}</tbody></table></div>`
        : '<p class="muted">No scheduled job.</p>';
    } catch (e) {
      if (alive) failed(body, e);
    }
  }
  const reloadHistory = reloader(loadHistory);

  function onAppClick(ev) {
    const btn = ev.target.closest('button');
    if (!btn) return;
    const action = btn.dataset.action;
    if (action === 'deploy-all' || action === 'stop-all' || action === 'undeploy-all') {
      if (action === 'undeploy-all' && !confirm(`Undeploy every instance of ${app}?`)) return;
      act(btn, () => api('POST', appPath(app, action)), () => reload.soon(800));
    } else if (action === 'new-root') {
      const form = el.querySelector('.root-form');
      form.hidden = !form.hidden;
      btn.setAttribute('aria-expanded', String(!form.hidden));
      if (!form.hidden) {
        ensureComponents().then((c) => {
          fillSelect(form.component, c.get('') || []);
          form.name.focus();
        }, showError);
      }
    } else if (action === 'expand-all') setAllCollapsed(false);
    else if (action === 'collapse-all') setAllCollapsed(true);
    else if (action === 'execute') {
      act(btn, () => api('POST', appPath(app, 'commands/execute', { 'command-name': btn.dataset.command })), () => reloadHistory.soon(1000));
    }
  }

  return {
    page: 'app',
    title: app,
    app,
    async mount(target) {
      el = target;
      el.innerHTML = `<p class="muted small"><a href="#/apps">Applications</a> /</p>
<h1>${esc(app)} <span class="count"></span></h1>
<div class="toolbar app-toolbar">
<button type="button" class="primary" data-action="deploy-all">Deploy &amp; start all</button>
<button type="button" data-action="stop-all">Stop all</button>
<button type="button" class="danger" data-action="undeploy-all">Undeploy all</button>
<button type="button" data-action="new-root" aria-expanded="false">New root</button>
<div class="grow"><input type="search" class="filter" placeholder="Filter by name, state, component or node" aria-label="Filter instances"></div>
<button type="button" data-action="expand-all" title="Expand all">Expand</button>
<button type="button" data-action="collapse-all" title="Collapse all">Collapse</button>
</div>
<form class="inline root-form" hidden>
<select name="component" aria-label="Root component" required></select>
<input type="text" name="name" placeholder="Name of the new root instance" aria-label="Name" required>
<button type="submit" class="primary">Create</button>
</form>
<div class="app-layout">
<div class="panel tree-panel"><ul class="tree" role="tree" aria-label="Instances"><li class="empty">Loading instances…</li></ul></div>
<aside class="panel detail-panel" aria-label="Selected instance" hidden></aside>
</div>
<section class="block"><details open><summary>Commands</summary><div class="body" id="commands"><p class="muted">Loading…</p></div></details></section>
<section class="block"><details open><summary>Commands history</summary><div class="body" id="history"><p class="muted">Loading…</p></div></details></section>
<section class="block"><details open><summary>Scheduled jobs</summary><div class="body" id="jobs"><p class="muted">Loading…</p></div></details></section>`;
      treeEl = el.querySelector('.tree');
      layoutEl = el.querySelector('.app-layout');
      detailEl = el.querySelector('.detail-panel');
      countEl = el.querySelector('h1 .count');
      el.querySelector('.app-toolbar').addEventListener('click', onAppClick);
      el.querySelector('#commands').addEventListener('click', onAppClick);
      el.querySelector('.filter').addEventListener('input', (ev) => {
        filter = ev.target.value;
        applyFilter();
      });
      el.querySelector('.root-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const form = ev.target;
        const name = form.name.value.trim();
        if (!name) return;
        act(form.querySelector('button'), () => api('POST', appPath(app, 'instances'), { name, component: { name: form.component.value } }), () => {
          form.hidden = true;
          reload.soon(300);
        });
      });
      treeEl.addEventListener('click', (ev) => {
        const row = ev.target.closest('.row');
        if (!row) return;
        if (ev.target.closest('.twisty')) {
          toggle(row.parentElement, row.dataset.path);
          return;
        }
        if (ev.target.closest('.exports') || ev.target.closest('a')) return;
        location.hash = `#/app/${enc(app)}?instance=${enc(row.dataset.path)}`;
      });
      detailEl.addEventListener('click', onDetailClick);
      detailEl.addEventListener('submit', onDetailSubmit);
      document.addEventListener('keydown', onKey);
      await reload.now();
      if (!alive || !loaded) return;
      loadCommands();
      reloadHistory.now();
      loadJobs();
      ensureComponents().then(() => refreshButtons(), () => {});
    },
    update(p) {
      if (!loaded) {
        selected = p.instance || null;
        return;
      }
      if ((p.instance || null) !== selected) select(p.instance || null);
    },
    onEvent(ev) {
      if (ev.msg) {
        reload.soon(50);
        return;
      }
      if (!ev.app || ev.app.name !== app) return;
      if (!ev.inst) {
        if (ev.event === 'DELETED') showError(new Error(`The application ${app} was removed.`));
        else reload.soon(100);
        return;
      }
      if (!loaded) {
        reload.soon(200);
        return;
      }
      const path = ev.inst.path;
      const i = insts.get(path);
      if (ev.event === 'CREATED' || ev.event === 'DELETED' || !i) {
        reload.soon(150);
        return;
      }
      const before = stateOf(i);
      if (ev.inst.status && ev.inst.status !== before) {
        i.status = ev.inst.status;
        // Events do not carry the desired state: unknown until the next read.
        i.desiredUnsure = true;
      }
      const data = ev.inst.data || {};
      if (typeof data.node === 'string' && data.node) i.node = data.node;
      if ('last.problem' in data) i.last_error = data['last.problem'] || null;
      if (ev.inst.exports && typeof ev.inst.exports === 'object') i.exports = ev.inst.exports;
      patchRow(path);
      if (path === selected) reloadRuns.soon(400);
      // Machines, errors and exports are not all in events: read them again soon.
      if (before !== stateOf(i)) reload.soon(500);
    },
    resync: () => reload.soon(50),
    refreshButtons,
    unmount() {
      alive = false;
      reload.stop();
      reloadRuns.stop();
      reloadHistory.stop();
      document.removeEventListener('keydown', onKey);
    },
  };

  function onKey(ev) {
    if (ev.key === 'Escape' && selected && !ev.target.closest('input, select, textarea')) {
      location.hash = `#/app/${enc(app)}`;
    }
  }
}
