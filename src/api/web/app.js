// vigil's web page: every view is drawn from the JSON API under /api/v1. The DOM is built from
// text nodes only (no innerHTML), so nothing read from the server becomes markup.
'use strict';

// Relative to the page, so the page also works under a reverse proxy's path prefix.
const API = 'api/v1';
const REFRESH_MS = 3000;
const STATES = ['success', 'running', 'failed', 'up_for_retry', 'upstream_failed', 'queued',
  'scheduled', 'skipped'];

// ---------- DOM helpers ----------

/** An element with attributes (`on*` are listeners, `text` its text) and children. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Appends children (arrays flattened, empty ones skipped), as `h` does. */
function put(el, ...children) { append(el, children); }

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

/** A square coloured by `state`, labelled for screen readers and tooltips. */
function square(state, label, href) {
  const cls = 'sq' + (state ? ' st-' + state : '');
  const title = label || state || 'no state';
  if (href) return h('a', { class: cls, href, title, 'aria-label': title });
  return h('span', { class: cls, title, role: 'img', 'aria-label': title });
}

function badge(state) {
  return h('span', { class: 'badge', 'data-state': state }, h('span', { class: 'sq st-' + state, 'aria-hidden': 'true' }), state);
}

function legend() {
  return h('div', { class: 'legend', 'aria-label': 'State colours' },
    STATES.map((st) => h('span', {}, h('span', { class: 'sq st-' + st, 'aria-hidden': 'true' }), ' ', st.replace(/_/g, ' '))));
}

function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function time(iso) {
  return iso ? h('time', { datetime: iso, title: iso }, when(iso)) : '—';
}

function seconds(ms) {
  if (ms == null || !isFinite(ms)) return '—';
  const s = ms / 1000;
  if (s < 1) return ms.toFixed(0) + ' ms';
  if (s < 60) return s.toFixed(1) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
}

function span(start, end) {
  if (!start) return null;
  return (end ? Date.parse(end) : Date.now()) - Date.parse(start);
}

function num(v, digits) {
  if (v == null || typeof v !== 'number') return v == null ? '—' : String(v);
  return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(digits == null ? 4 : digits);
}

// What a verdict says beyond its one look: the sequential test (which automatic rollback waits
// for) and, when INCONCLUSIVE, the rows still needed.
function evidence(j) {
  const parts = [];
  if (j.sequential) parts.push(j.sequential.lower > 0 ? 'established' : 'not yet established');
  if (j.more_rows_needed != null) parts.push('about ' + j.more_rows_needed + ' more rows');
  return parts.length ? parts.join('; ') : '—';
}

function say(message) {
  const status = document.getElementById('status');
  status.textContent = '';
  setTimeout(() => { status.textContent = message; }, 30);
}

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

let token = sessionStorage.getItem('vigil.token') || '';

async function api(path, options = {}, retried = false) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers.Authorization = 'Bearer ' + token;
  let body = options.body;
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(API + path, { method: options.method || 'GET', headers, body, signal: options.signal });
  if (response.status === 401 && !retried) {
    if (await askToken()) return api(path, options, true);
  }
  const type = response.headers.get('content-type') || '';
  const data = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(response.status, e.code || 'error', e.message || String(data));
  }
  return data;
}

const post = (path, body, headers) => api(path, { method: 'POST', body: body === undefined ? '' : body, headers });

/** Asks for the API token; true when one was given. */
function askToken() {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  input.value = token;
  return new Promise((resolve) => {
    const done = (ok) => {
      dialog.removeEventListener('close', onClose);
      if (dialog.open) dialog.close();
      resolve(ok);
    };
    const onClose = () => done(false);
    dialog.addEventListener('close', onClose);
    document.getElementById('token-form').onsubmit = (ev) => {
      ev.preventDefault();
      token = input.value.trim();
      sessionStorage.setItem('vigil.token', token);
      done(Boolean(token));
    };
    document.getElementById('token-cancel').onclick = () => done(false);
    document.getElementById('token-forget').onclick = () => {
      token = '';
      sessionStorage.removeItem('vigil.token');
      done(false);
    };
    dialog.showModal();
    input.focus();
  });
}

function errorBox(e) {
  return h('div', { class: 'error-box', role: 'alert' }, e instanceof ApiError ? e.message : 'The server could not be reached: ' + e.message);
}

// ---------- pages and the router ----------

let current = { gen: 0, refresh: null, abort: null };

function route() {
  const hash = location.hash || '#/';
  const routes = [
    [/^#\/?$/, pageDags, 'dags'],
    [/^#\/dags\/([^/]+)$/, pageDag, 'dags'],
    [/^#\/runs\/(\d+)(?:\/([^/]+)(?:\/(\d+))?)?$/, pageRun, 'dags'],
    [/^#\/models$/, pageModels, 'models'],
    [/^#\/models\/([^/]+)$/, pageModel, 'models'],
    [/^#\/risk$/, pageRisk, 'risk'],
    [/^#\/alerts$/, pageAlerts, 'alerts'],
  ];
  for (const [re, page, section] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll('.top nav a')) {
      if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    show(page, m.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p))));
    return;
  }
  show(pageNotFound, []);
}

/** Draws `page` into <main>; what it returns is called again every few seconds. */
async function show(page, params) {
  if (current.abort) current.abort.abort();
  const gen = ++current.gen;
  current.refresh = null;
  current.abort = new AbortController();
  const main = document.getElementById('main');
  const view = { main, gen, signal: current.abort.signal, live: () => current.gen === gen, drawn: {} };
  try {
    const refresh = await page(view, ...params);
    if (view.live()) current.refresh = refresh || null;
  } catch (e) {
    if (!view.live()) return;
    clear(main);
    put(main, h('h1', { text: 'Something went wrong' }), errorBox(e));
  }
}

/** What identifies a focused control across a redraw: its id, label or link. */
function focusKey(el) {
  if (!el || el === document.body) return null;
  for (const a of ['id', 'aria-label', 'href']) if (el.getAttribute(a)) return [a, el.getAttribute(a)];
  return null;
}

async function tick() {
  const open = document.querySelector('dialog[open]');
  const active = document.activeElement;
  // Not while someone types or picks: a redraw would take their field away.
  const typing = active && ['INPUT', 'TEXTAREA', 'SELECT'].includes(active.tagName);
  if (current.refresh && !open && !typing && document.visibilityState === 'visible') {
    const gen = current.gen;
    const key = focusKey(active);
    try {
      await current.refresh();
      if (key && gen === current.gen) {
        const again = [...document.querySelectorAll('[' + key[0] + ']')].find((el) => el.getAttribute(key[0]) === key[1]);
        if (again && again !== document.activeElement) again.focus({ preventScroll: true });
      }
    } catch (e) { if (gen === current.gen) say('Refresh failed: ' + e.message); }
  }
  setTimeout(tick, REFRESH_MS);
}

/** True when `data` differs from what the view last drew under `key`: a refresh that finds
 * nothing new leaves the page (and the reader's focus and selection) alone. */
function changed(view, key, data) {
  const json = JSON.stringify(data);
  if (view.drawn[key] === json) return false;
  view.drawn[key] = json;
  return true;
}

function title(text) {
  document.title = text + ' · vigil';
}

async function pageNotFound(view) {
  clear(view.main);
  put(view.main, h('h1', { text: 'No such page' }), h('p', {}, h('a', { href: '#/' }, 'Back to the DAGs')));
}

// ---------- DAG list ----------

async function pageDags(view) {
  title('DAGs');
  const list = await api('/dags');
  const main = view.main;
  clear(main);
  const broken = h('div', {});
  const table = h('div', { class: 'scroll' });
  put(main, h('h1', { text: 'DAGs' }), broken, legend(), table);
  const draw = (list) => {
    clear(broken);
    if (list.errors.length) {
      const files = new Map();
      for (const d of list.errors) {
        if (!files.has(d.file)) files.set(d.file, []);
        files.get(d.file).push(d);
      }
      put(broken, h('div', { class: 'error-box', role: 'alert', id: 'broken-files' },
        h('strong', { text: files.size + ' DAG file(s) failed to load; the other DAGs run as usual.' }),
        h('ul', {}, [...files].map(([file, ds]) => h('li', {}, h('code', { text: file }),
          h('ul', {}, ds.map((d) => h('li', {}, d.line ? 'line ' + d.line + ', ' : '', d.key ? h('code', { text: d.key }) : '', d.key ? ': ' : '', d.message))))))));
    }
    clear(table);
    put(table, h('table', { id: 'dag-table' },
      h('caption', { class: 'visually-hidden', text: 'DAGs with their schedule and recent runs' }),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Active' }), h('th', { scope: 'col', text: 'DAG' }),
        h('th', { scope: 'col', class: 'hide-narrow', text: 'Schedule' }), h('th', { scope: 'col', text: 'Next run' }),
        h('th', { scope: 'col', text: 'Recent runs' }), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Actions' })))),
      h('tbody', {}, list.dags.map((d) => h('tr', { 'data-dag': d.id },
        h('td', {}, pauseSwitch(d, () => view.live() && refresh())),
        h('td', {}, h('a', { href: '#/dags/' + encodeURIComponent(d.id), text: d.id }),
          d.description ? h('div', { class: 'muted small', text: d.description }) : '',
          d.tags.length ? h('div', {}, d.tags.map((t) => h('span', { class: 'tag', text: t }))) : ''),
        h('td', { class: 'hide-narrow' }, d.schedule ? h('code', { text: d.schedule }) : h('span', { class: 'muted', text: 'manual' }),
          d.schedule ? h('div', { class: 'muted small', text: d.timezone }) : ''),
        h('td', {}, d.paused && d.schedule ? h('span', { class: 'muted', text: 'paused' }) : time(d.next_run)),
        h('td', { class: 'recent' }, d.last_runs.length ? d.last_runs.slice().reverse().map((st) => square(st)) : h('span', { class: 'muted small', text: 'no runs' })),
        h('td', {}, h('button', { type: 'button', class: 'trigger', 'aria-label': 'Trigger ' + d.id, text: 'Trigger', onclick: () => openTrigger(d.id) })))))));
  };
  const refresh = async () => { const l = await api('/dags'); if (view.live() && changed(view, 'dags', l)) draw(l); };
  changed(view, 'dags', list);
  draw(list);
  return refresh;
}

function pauseSwitch(d, after) {
  const b = h('button', {
    type: 'button', role: 'switch', class: 'switch', 'aria-checked': String(!d.paused),
    'aria-label': d.id + ' is ' + (d.paused ? 'paused' : 'active'), text: d.paused ? 'Paused' : 'Active',
  });
  b.onclick = async () => {
    b.disabled = true;
    try {
      await post('/dags/' + encodeURIComponent(d.id) + (d.paused ? '/unpause' : '/pause'));
      say(d.id + (d.paused ? ' unpaused' : ' paused'));
      await after();
    } catch (e) {
      alertError(e);
    } finally { b.disabled = false; }
  };
  return b;
}

function alertError(e) {
  say(e.message);
  window.alert(e.message);
}

/** The trigger form: the conf prefilled from the DAG's params, sent with an idempotency key. */
async function openTrigger(dagId) {
  const detail = await api('/dags/' + encodeURIComponent(dagId));
  const key = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
  const conf = h('textarea', { id: 'trigger-conf', spellcheck: 'false', 'aria-describedby': 'trigger-hint' });
  conf.value = JSON.stringify(detail.params || {}, null, 2);
  const date = h('input', { id: 'trigger-date', type: 'text', placeholder: 'now', 'aria-describedby': 'trigger-date-hint' });
  const problem = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit', id: 'trigger-submit', text: 'Trigger' });
  const dialog = h('dialog', { 'aria-labelledby': 'trigger-title', id: 'trigger-dialog' },
    h('form', { method: 'dialog' },
      h('h2', { id: 'trigger-title', text: 'Trigger ' + dagId }),
      h('label', { for: 'trigger-conf', text: 'Conf (JSON object)' }),
      h('p', { class: 'hint', id: 'trigger-hint', text: 'Prefilled from the DAG’s params; checked against them as `vigil dags trigger --conf` is.' }),
      conf,
      h('label', { for: 'trigger-date', text: 'Logical date (optional)' }),
      h('p', { class: 'hint', id: 'trigger-date-hint', text: 'RFC 3339, e.g. 2026-12-01T00:00:00Z; empty for now.' }),
      date, problem,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'quiet', text: 'Cancel', onclick: () => dialog.close() }), submit)));
  dialog.addEventListener('close', () => dialog.remove());
  dialog.querySelector('form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    problem.textContent = '';
    let parsed;
    try { parsed = JSON.parse(conf.value || '{}'); } catch (e) { problem.textContent = 'The conf is not JSON: ' + e.message; conf.focus(); return; }
    const body = { conf: parsed };
    if (date.value.trim()) body.logical_date = date.value.trim();
    submit.disabled = true;
    try {
      const out = await post('/dags/' + encodeURIComponent(dagId) + '/runs', body, { 'Idempotency-Key': key });
      dialog.close();
      say('Run ' + out.run.id + ' of ' + dagId + ' queued');
      location.hash = '#/dags/' + encodeURIComponent(dagId);
    } catch (e) {
      problem.textContent = e.message;
    } finally { submit.disabled = false; }
  });
  document.body.append(dialog);
  dialog.showModal();
  conf.focus();
}

// ---------- one DAG: grid and graph ----------

async function pageDag(view, dagId) {
  title(dagId);
  const enc = encodeURIComponent(dagId);
  const [detail, grid] = await Promise.all([api('/dags/' + enc), api('/dags/' + enc + '/grid')]);
  const main = view.main;
  clear(main);
  let selected = grid.runs.length ? grid.runs[grid.runs.length - 1].run.id : null;
  let following = true; // the newest run stays selected as new runs come
  const head = h('div', {});
  const gridBox = h('div', { class: 'scroll', id: 'grid' });
  const graphBox = h('div', { class: 'scroll', id: 'graph' });
  const graphTitle = h('h2', { id: 'graph-title', text: 'Graph' });
  put(main, head, h('h2', { text: 'Grid' }), legend(), gridBox, graphTitle, graphBox);
  const drawHead = (detail) => {
    clear(head);
    const d = detail.dag;
    put(head, 
      h('h1', {}, h('span', { text: d.id }), pauseSwitch(d, () => view.live() && refresh()),
        h('button', { type: 'button', class: 'trigger', text: 'Trigger', 'aria-label': 'Trigger ' + d.id, onclick: () => openTrigger(d.id) })),
      d.description ? h('p', { class: 'muted', text: d.description }) : '',
      h('dl', { class: 'facts' },
        h('dt', { text: 'Schedule' }), h('dd', {}, d.schedule ? h('code', { text: d.schedule }) : 'manual only', d.schedule ? ' (' + d.timezone + ')' : ''),
        h('dt', { text: 'Next runs' }), h('dd', {}, detail.next_runs.length ? detail.next_runs.slice(0, 3).map((f, i) => [i ? ', ' : '', h('time', { datetime: f.logical_date, title: f.logical_date }, f.local)]) : '—'),
        h('dt', { text: 'File' }), h('dd', {}, h('code', { text: d.file })),
        h('dt', { text: 'Limits' }), h('dd', { text: detail.max_active_runs + ' active runs, ' + detail.max_active_tasks + ' tasks at once' })));
  };
  const drawGrid = (grid) => {
    clear(gridBox);
    if (!grid.runs.length) { put(gridBox, h('p', { class: 'muted', text: 'No runs yet: trigger one.' })); return; }
    const longest = Math.max(1, ...grid.runs.map((r) => span(r.run.started_at, r.run.ended_at) || 0));
    put(gridBox, h('table', { class: 'grid', 'aria-label': 'Runs (columns, oldest first) by task (rows)' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'task' }, h('span', { class: 'visually-hidden', text: 'Task' })),
        grid.runs.map((r) => {
          const ms = span(r.run.started_at, r.run.ended_at) || 0;
          const bar = h('button', {
            type: 'button', class: 'runbar st-' + r.run.state, 'data-run': r.run.id, 'data-state': r.run.state,
            'aria-pressed': String(r.run.id === selected),
            'aria-label': 'Run ' + r.run.id + ', ' + r.run.state + ', ' + when(r.run.logical_date) + '; show it in the graph',
            title: 'Run ' + r.run.id + ' · ' + r.run.state + ' · ' + when(r.run.logical_date) + ' · ' + seconds(ms),
            onclick: () => { selected = r.run.id; following = r === grid.runs[grid.runs.length - 1]; drawGrid(grid); drawGraph(detail, grid); },
          });
          bar.style.height = (10 + Math.round(40 * ms / longest)) + 'px';
          return h('th', { scope: 'col' }, bar);
        }))),
      h('tbody', {}, grid.tasks.map((task, row) => h('tr', {},
        h('th', { scope: 'row', class: 'task', title: task, text: task }),
        grid.runs.map((r) => {
          const c = r.cells[row];
          const label = task + ' in run ' + r.run.id + ': ' + (c ? c.state + (c.attempt > 1 ? ', attempt ' + c.attempt : '') : 'not in this run');
          return h('td', {}, c ? square(c.state, label, '#/runs/' + r.run.id + '/' + encodeURIComponent(task)) : square(null, label));
        }))))));
  };
  const drawGraph = (detail, grid) => {
    const run = grid.runs.find((r) => r.run.id === selected);
    graphTitle.textContent = run ? 'Graph of run ' + run.run.id + ' (' + run.run.state + ')' : 'Graph';
    clear(graphBox);
    put(graphBox, graph(detail, grid, run));
  };
  const refresh = async () => {
    const [d, g] = await Promise.all([api('/dags/' + enc), api('/dags/' + enc + '/grid')]);
    if (!view.live() || !changed(view, 'dag', [d, g])) return;
    if (following && g.runs.length) selected = g.runs[g.runs.length - 1].run.id;
    drawHead(d); drawGrid(g); drawGraph(d, g);
  };
  changed(view, 'dag', [detail, grid]);
  drawHead(detail); drawGrid(grid); drawGraph(detail, grid);
  return refresh;
}

/** The DAG laid out in dependency layers (left to right), each task coloured by its state in `run`. */
function graph(detail, grid, run) {
  const tasks = detail.tasks;
  const index = new Map(tasks.map((t, i) => [t.id, i]));
  const layer = new Array(tasks.length).fill(0);
  // Tasks come in dependency order, so one pass sets every layer.
  tasks.forEach((t, i) => { for (const u of t.depends_on) if (index.has(u)) layer[i] = Math.max(layer[i], layer[index.get(u)] + 1); });
  const layers = [];
  tasks.forEach((t, i) => { (layers[layer[i]] = layers[layer[i]] || []).push(i); });
  const W = 160, H = 36, GX = 56, GY = 14, PAD = 12;
  const pos = new Array(tasks.length);
  layers.forEach((ids, x) => ids.forEach((i, y) => { pos[i] = [PAD + x * (W + GX), PAD + y * (H + GY)]; }));
  const width = PAD * 2 + layers.length * (W + GX) - GX;
  const height = PAD * 2 + Math.max(...layers.map((l) => l.length)) * (H + GY) - GY;
  const stateOf = (id) => {
    if (!run) return null;
    const row = grid.tasks.indexOf(id);
    const c = row >= 0 ? run.cells[row] : null;
    return c ? c.state : null;
  };
  const edges = detail.edges.filter(([a, b]) => index.has(a) && index.has(b)).map(([a, b]) => {
    const [x1, y1] = pos[index.get(a)], [x2, y2] = pos[index.get(b)];
    const sx = x1 + W, sy = y1 + H / 2, tx = x2, ty = y2 + H / 2, mx = (sx + tx) / 2;
    return s('path', { d: `M${sx},${sy} C${mx},${sy} ${mx},${ty} ${tx},${ty}`, fill: 'none', stroke: '#8c959f', 'stroke-width': 1.5, 'marker-end': 'url(#arrow)' });
  });
  const nodes = tasks.map((t, i) => {
    const [x, y] = pos[i];
    const st = stateOf(t.id);
    const label = t.id + ' (' + t.type + '): ' + (st || 'no state');
    const colour = st ? getComputedStyle(document.documentElement).getPropertyValue('--' + st).trim() : '#ffffff';
    const name = t.id.length > 20 ? t.id.slice(0, 19) + '…' : t.id;
    const inner = [
      s('title', { text: label }),
      s('rect', { x, y, width: W, height: H, rx: 6, fill: '#ffffff', stroke: colour === '#ffffff' ? '#8c959f' : colour, 'stroke-width': 3 }),
      s('rect', { x: x + 6, y: y + 11, width: 14, height: 14, rx: 3, fill: colour, stroke: 'rgba(0,0,0,0.35)' }),
      s('text', { x: x + 26, y: y + 15, text: name }),
      s('text', { x: x + 26, y: y + 29, class: 'muted', 'font-size': 10, fill: '#57606a', text: st ? st.replace(/_/g, ' ') : t.type }),
    ];
    const g = s('g', { class: 'node', 'data-task': t.id, 'data-state': st || '' }, inner);
    return run ? s('a', { href: '#/runs/' + run.run.id + '/' + encodeURIComponent(t.id), 'aria-label': label }, g) : g;
  });
  return s('svg', { class: 'graph', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'Task dependencies of ' + detail.dag.id },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' },
      s('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#8c959f' }))),
    edges, nodes);
}

// ---------- one run ----------

async function pageRun(view, runId, taskId, attemptText) {
  title('Run ' + runId);
  const detail = await api('/runs/' + runId);
  const main = view.main;
  clear(main);
  const head = h('div', {});
  const tasksBox = h('div', { class: 'scroll', id: 'tasks' });
  const panel = h('section', { class: 'panel', id: 'task-panel', hidden: true, 'aria-labelledby': 'task-title' });
  put(main, head, h('h2', { text: 'Tasks' }), tasksBox, panel);
  let last = detail;
  const drawHead = (d) => {
    clear(head);
    const r = d.run;
    put(head, 
      h('h1', {}, h('span', { text: 'Run ' + r.id }), badge(r.state)),
      h('p', {}, 'of ', h('a', { href: '#/dags/' + encodeURIComponent(r.dag_id), text: r.dag_id })),
      h('dl', { class: 'facts' },
        h('dt', { text: 'Type' }), h('dd', { text: r.run_type }),
        h('dt', { text: 'Logical date' }), h('dd', {}, time(r.logical_date)),
        h('dt', { text: 'Started' }), h('dd', {}, time(r.started_at)),
        h('dt', { text: 'Ended' }), h('dd', {}, time(r.ended_at)),
        h('dt', { text: 'Duration' }), h('dd', { text: seconds(span(r.started_at, r.ended_at)) }),
        r.owner ? [h('dt', { text: 'Daemon' }), h('dd', {}, h('code', { text: r.owner }))] : '',
        r.note ? [h('dt', { text: 'Note' }), h('dd', { text: r.note })] : '',
        h('dt', { text: 'Conf' }), h('dd', {}, h('pre', { class: 'json', id: 'run-conf', text: JSON.stringify(r.conf, null, 2) }))));
  };
  const drawTasks = (d) => {
    clear(tasksBox);
    const r = d.run;
    const t0 = Date.parse(r.started_at || r.queued_at);
    const t1 = r.ended_at ? Date.parse(r.ended_at) : Date.now();
    const total = Math.max(1, t1 - t0);
    put(tasksBox, h('table', { id: 'task-table' },
      h('thead', {}, h('tr', {}, ['Task', 'State', 'Attempt', 'Started', 'Duration', 'Timeline'].map((c) => h('th', { scope: 'col', text: c })),
        h('th', { scope: 'col', class: 'hide-narrow', text: 'Worker' }), h('th', { scope: 'col', class: 'hide-narrow', text: 'Error' }))),
      h('tbody', {}, d.tasks.map((t) => {
        const bar = h('span', { class: 'st-' + t.state });
        if (t.started_at) {
          const a = Date.parse(t.started_at) - t0, b = (t.ended_at ? Date.parse(t.ended_at) : Date.now()) - t0;
          bar.style.left = Math.max(0, 100 * a / total) + '%';
          bar.style.width = Math.max(0.5, 100 * (b - a) / total) + '%';
        } else bar.hidden = true;
        const ms = span(t.started_at, t.ended_at);
        return h('tr', { 'data-task': t.task_id, 'data-state': t.state },
          h('td', {}, h('a', { href: '#/runs/' + r.id + '/' + encodeURIComponent(t.task_id), text: t.task_id, 'aria-current': t.task_id === taskId ? 'true' : null })),
          h('td', {}, badge(t.state)),
          h('td', { class: 'num', text: t.attempt + ' / ' + t.max_attempts }),
          h('td', {}, time(t.started_at)),
          h('td', { class: 'num', text: seconds(ms) }),
          h('td', {}, h('div', { class: 'gantt', role: 'img', 'aria-label': t.task_id + ' ran ' + seconds(ms) }, bar)),
          h('td', { class: 'hide-narrow' }, t.worker ? h('code', { text: t.worker }) : ''),
          h('td', { class: 'hide-narrow error', text: t.error || '' }));
      }))));
  };
  drawHead(detail);
  drawTasks(detail);
  if (taskId) await drawPanel(view, panel, detail, taskId, attemptText ? Number(attemptText) : null);
  return async () => {
    if (last.run.state === 'success' || last.run.state === 'failed') return;
    const d = await api('/runs/' + runId);
    if (!view.live() || !changed(view, 'run', d)) return;
    last = d;
    drawHead(d); drawTasks(d);
  };
}

async function drawPanel(view, panel, detail, taskId, attempt) {
  const t = detail.tasks.find((x) => x.task_id === taskId);
  panel.hidden = false;
  clear(panel);
  if (!t) { put(panel, errorBox(new ApiError(404, 'not_found', 'Run ' + detail.run.id + ' has no task ' + taskId))); return; }
  const chosen = attempt || Math.max(1, t.attempt);
  const base = '/runs/' + detail.run.id + '/tasks/' + encodeURIComponent(taskId);
  const log = h('pre', { class: 'log', id: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Log of attempt ' + chosen });
  const logState = h('p', { class: 'muted small', id: 'log-state', text: 'Loading the log…' });
  const result = h('pre', { class: 'json', id: 'result', text: '…' });
  const attempts = [];
  for (let a = 1; a <= Math.max(1, t.attempt); a++) {
    attempts.push(h('a', { class: 'button quiet', href: '#/runs/' + detail.run.id + '/' + encodeURIComponent(taskId) + '/' + a, 'aria-current': a === chosen ? 'page' : null, text: 'Attempt ' + a }));
  }
  put(panel, h('h2', { id: 'task-title', text: taskId + ' · attempt ' + chosen }),
    h('nav', { class: 'tabs', 'aria-label': 'Attempts' }, attempts),
    h('h3', { text: 'Log' }), logState, log, h('h3', { text: 'Result' }), result);
  panel.scrollIntoView({ block: 'nearest' });
  followLog(view, base, chosen, log, logState);
  try {
    const r = await api(base + '/result?attempt=' + chosen, { signal: view.signal });
    result.textContent = JSON.stringify(r.value, null, 2);
  } catch (e) {
    result.textContent = e.status === 404 ? 'No result (the attempt has not succeeded, or returned nothing).' : e.message;
  }
}

function logLine(pre, l) {
  const cls = l.level === 'warn' ? 'warn' : l.level === 'error' ? 'error' : '';
  pre.append(h('span', { class: 'ts', text: new Date(l.ts).toLocaleTimeString() + ' ' }), h('span', { class: cls, text: l.level.padEnd(5) + ' ' + l.message + '\n' }));
}

/** Follows one attempt's log: the server's event stream (lines as they are stored), or polling when the server keeps no more streams. */
async function followLog(view, base, attempt, pre, state) {
  let after = null;
  const add = (l) => { logLine(pre, l); after = l.seq; };
  try {
    const headers = { Accept: 'text/event-stream' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const response = await fetch(API + base + '/logs/stream?attempt=' + attempt, { headers, signal: view.signal });
    if (response.ok && response.body) {
      state.textContent = 'Following the log…';
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = 'message', data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
          }
          if (event === 'line') add(JSON.parse(data));
          else if (event === 'end') { state.textContent = pre.childElementCount ? 'The attempt is over: the whole log is shown.' : 'The attempt is over and logged nothing.'; return; }
          else if (event === 'error') { state.textContent = data; return; }
        }
      }
      return;
    }
    if (response.status !== 503) {
      const e = await response.json().catch(() => ({}));
      state.textContent = (e.error && e.error.message) || 'The log could not be read.';
      return;
    }
  } catch (e) {
    if (!view.live()) return;
  }
  // Too many streams are open on the server: poll instead.
  state.textContent = 'Following the log (polling)…';
  while (view.live()) {
    const lines = await api(base + '/logs?attempt=' + attempt + (after == null ? '' : '&after=' + after), { signal: view.signal }).catch(() => []);
    lines.forEach(add);
    const d = await api('/runs/' + base.split('/')[2], { signal: view.signal }).catch(() => null);
    const t = d && d.tasks.find((x) => base.endsWith('/' + encodeURIComponent(x.task_id)));
    if (!t || t.attempt > attempt || t.state !== 'running') { state.textContent = 'The attempt is over.'; return; }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---------- models ----------

async function pageModels(view) {
  title('Models');
  const models = await api('/models');
  const main = view.main;
  clear(main);
  put(main, h('h1', { text: 'Models' }),
    models.length ? h('div', { class: 'scroll' }, h('table', { id: 'model-table' },
      h('thead', {}, h('tr', {}, ['Model', 'Production', 'Updated'].map((c) => h('th', { scope: 'col', text: c })))),
      h('tbody', {}, models.map((m) => h('tr', {},
        h('td', {}, h('a', { href: '#/models/' + encodeURIComponent(m.name), text: m.name })),
        h('td', {}, m.production_version ? h('code', { text: m.production_version }) : h('span', { class: 'muted', text: 'none' })),
        h('td', {}, time(m.updated_at)))))))
      : h('p', { class: 'muted', text: 'No model is registered yet (`vigil model register`, or `vigil demo`).' }));
  return null;
}

async function pageModel(view, name) {
  title(name);
  const enc = encodeURIComponent(name);
  const load = () => Promise.all([api('/models/' + enc), api('/models/' + enc + '/versions'), api('/models/' + enc + '/deployments'), api('/models/' + enc + '/alerts')]);
  const data = await load();
  const main = view.main;
  let metric = null;
  const draw = ([status, versions, deployments, alerts]) => {
    clear(main);
    const prod = status.production ? status.production.version : null;
    const target = status.previous ? status.previous.version : null;
    const metrics = [...new Set(versions.flatMap((v) => Object.keys(v.version.metrics || {})))].sort();
    if (!metric || !metrics.includes(metric)) metric = metrics[0] || null;
    const rollback = h('button', { type: 'button', class: 'danger', id: 'rollback', disabled: !target || !prod, text: target ? 'Roll back to ' + target : 'Nothing to roll back to' });
    rollback.onclick = () => confirmRollback(name, prod, target, () => view.live() && load().then((d) => view.live() && draw(d)));
    const chartBox = h('div', {});
    const select = h('select', { id: 'metric', onchange: () => { metric = select.value; clear(chartBox); put(chartBox, chart(versions, metric, prod)); } },
      metrics.map((m) => h('option', { value: m, selected: m === metric, text: m })));
    put(chartBox, chart(versions, metric, prod));
    const verdicts = alerts.filter((a) => a.kind === 'check' && a.details && a.details.judgement);
    put(main, 
      h('h1', {}, h('span', { text: name }), prod ? h('span', { class: 'badge', id: 'production' }, 'production ', h('code', { text: prod })) : h('span', { class: 'badge', text: 'no production version' }), rollback),
      h('h2', { text: 'Versions' }),
      h('div', { class: 'scroll' }, h('table', { id: 'versions' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Version' }), metrics.map((m) => h('th', { scope: 'col', class: 'num', text: m })),
          h('th', { scope: 'col', text: 'Registered' }), h('th', { scope: 'col', class: 'hide-narrow', text: 'Source' }))),
        h('tbody', {}, versions.map((v) => h('tr', { 'data-version': v.version.version },
          h('td', {}, h('code', { text: v.version.version }), v.in_production ? [' ', h('span', { class: 'badge', text: 'production' })] : ''),
          metrics.map((m) => h('td', { class: 'num', text: num(v.version.metrics[m]) })),
          h('td', {}, time(v.version.created_at)),
          h('td', { class: 'hide-narrow', text: v.version.source || '' })))))),
      h('h2', { text: 'Metric over versions' }),
      metrics.length ? [h('label', { for: 'metric', text: 'Metric' }), select, chartBox] : h('p', { class: 'muted', text: 'No version has metrics.' }),
      h('h2', { text: 'Verdicts' }),
      verdicts.length ? h('div', { class: 'scroll' }, h('table', { id: 'verdicts' },
        h('thead', {}, h('tr', {}, ['When', 'Verdict', 'Production', 'Baseline', 'Metric', 'Estimate', 'Interval', 'p-value', 'n', 'Across checks'].map((c) => h('th', { scope: 'col', text: c })))),
        h('tbody', {}, verdicts.map((a) => {
          const j = a.details.judgement;
          return h('tr', {},
            h('td', {}, time(a.at)), h('td', {}, h('strong', { text: j.verdict }), a.dry_run ? ' (dry run)' : ''),
            h('td', {}, h('code', { text: a.details.production || '' })), h('td', {}, h('code', { text: a.details.baseline || '' })),
            h('td', { text: j.metric + ' (' + (j.test || '').replace(/_/g, ' ') + ')' }),
            h('td', { class: 'num', text: num(j.estimate) }),
            h('td', { class: 'num', text: j.interval ? '[' + num(j.interval[0]) + ', ' + num(j.interval[1]) + ']' : '—' }),
            h('td', { class: 'num', text: j.p_value == null ? '—' : num(j.p_value) }),
            h('td', { class: 'num', text: j.n }),
            h('td', { text: evidence(j) }));
        })))) : h('p', { class: 'muted', text: 'No checks yet.' }),
      h('h2', { text: 'Deployment events' }),
      h('div', { class: 'scroll' }, h('table', { id: 'deployments' },
        h('thead', {}, h('tr', {}, ['When', 'Change', 'By', 'Reason'].map((c) => h('th', { scope: 'col', text: c })))),
        h('tbody', {}, deployments.map((d) => h('tr', {},
          h('td', {}, time(d.at)), h('td', {}, h('code', { text: d.from_version || '—' }), ' → ', h('code', { text: d.to_version })),
          h('td', { text: d.actor }), h('td', { text: d.reason })))))));
  };
  changed(view, 'model', data);
  draw(data);
  return async () => { const d = await load(); if (view.live() && changed(view, 'model', d)) draw(d); };
}

/** The confirmation names the model, the version in production and the one that replaces it. */
function confirmRollback(model, from, to, after) {
  const reason = h('input', { type: 'text', id: 'rollback-reason', required: true, 'aria-describedby': 'rollback-hint' });
  const dry = h('input', { type: 'checkbox', id: 'rollback-dry' });
  const problem = h('p', { class: 'error', role: 'alert' });
  const confirm = h('button', { type: 'submit', class: 'danger', id: 'rollback-confirm', text: 'Roll back to ' + to });
  const dialog = h('dialog', { 'aria-labelledby': 'rollback-title', 'aria-describedby': 'rollback-what', id: 'rollback-dialog' },
    h('form', { method: 'dialog' },
      h('h2', { id: 'rollback-title', text: 'Roll back ' + model + '?' }),
      h('p', { id: 'rollback-what' }, 'Production changes from ', h('strong', { text: from }), ' to ', h('strong', { id: 'rollback-target', text: to }), '. The change is recorded with your reason and announced to the model’s audience.'),
      h('label', { for: 'rollback-reason', text: 'Reason' }),
      h('p', { class: 'hint', id: 'rollback-hint', text: 'Kept with the deployment event.' }),
      reason,
      h('label', { class: 'inline' }, dry, 'Dry run: show what would happen, change nothing'),
      problem,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'quiet', text: 'Cancel', onclick: () => dialog.close() }), confirm)));
  dialog.addEventListener('close', () => dialog.remove());
  dialog.querySelector('form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!reason.value.trim()) { problem.textContent = 'Give a reason: it is kept with the deployment event.'; reason.focus(); return; }
    confirm.disabled = true;
    try {
      const out = await post('/models/' + encodeURIComponent(model) + '/rollback', { to, reason: reason.value.trim(), dry_run: dry.checked });
      // The guard may refuse: a target worse than production is never restored.
      if (out.kind === 'refused') { problem.textContent = 'Refused: ' + out.why; return; }
      dialog.close();
      say(out.kind === 'done' ? model + ' rolled back from ' + out.from + ' to ' + out.to
        : out.kind === 'would_roll_back' ? 'Dry run: would roll back ' + out.from + ' to ' + out.to + '; nothing changed'
          : out.version + ' already is in production; nothing changed');
      await after(out);
    } catch (e) {
      problem.textContent = e.message;
    } finally { confirm.disabled = false; }
  });
  document.body.append(dialog);
  dialog.showModal();
  reason.focus();
}

/** The metric of each version at its registration time; production ringed. */
function chart(versions, metric, prod) {
  const pts = versions.filter((v) => typeof (v.version.metrics || {})[metric] === 'number')
    .map((v) => ({ t: Date.parse(v.version.created_at), y: v.version.metrics[metric], v: v.version.version }))
    .sort((a, b) => a.t - b.t);
  if (!pts.length) return h('p', { class: 'muted', text: 'No version has ' + metric + '.' });
  const W = 640, H = 240, L = 56, R = 44, T = 16, B = 40;
  let [y0, y1] = [Math.min(...pts.map((p) => p.y)), Math.max(...pts.map((p) => p.y))];
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const pad = (y1 - y0) * 0.1; y0 -= pad; y1 += pad;
  const n = pts.length;
  // Evenly spaced by order, labelled with version and date: versions registered seconds apart stay readable.
  const X = (i) => L + (n === 1 ? (W - L - R) / 2 : i * (W - L - R) / (n - 1));
  const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const path = pts.map((p, i) => (i ? 'L' : 'M') + X(i).toFixed(1) + ',' + Y(p.y).toFixed(1)).join(' ');
  const ticks = [y0 + pad, (y0 + y1) / 2, y1 - pad];
  return s('svg', { class: 'chart', id: 'metric-chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    'aria-label': metric + ' by version: ' + pts.map((p) => p.v + ' ' + num(p.y)).join(', ') },
    s('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#8c959f' }),
    s('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#8c959f' }),
    ticks.map((y) => [s('text', { x: L - 6, y: Y(y) + 4, 'text-anchor': 'end', text: num(y, 3) }), s('line', { x1: L, x2: W - R, y1: Y(y), y2: Y(y), stroke: '#eaeef2' })]),
    s('path', { d: path, fill: 'none', stroke: '#0b5cad', 'stroke-width': 2 }),
    pts.map((p, i) => [
      s('circle', { cx: X(i), cy: Y(p.y), r: p.v === prod ? 7 : 4, fill: p.v === prod ? '#008000' : '#0b5cad', stroke: '#fff', 'stroke-width': 2 }, s('title', { text: p.v + ': ' + metric + ' ' + p.y + ' (' + new Date(p.t).toLocaleString() + ')' + (p.v === prod ? ', production' : '') })),
      s('text', { x: X(i), y: H - B + 14, 'text-anchor': 'middle', text: p.v + (p.v === prod ? ' ★' : '') }),
      s('text', { x: X(i), y: H - B + 28, 'text-anchor': 'middle', fill: '#57606a', text: new Date(p.t).toLocaleDateString() }),
    ]));
}

// ---------- risk ----------

async function pageRisk(view) {
  title('Deployment risk');
  const main = view.main;
  let summary;
  try {
    summary = await api('/risk');
  } catch (e) {
    clear(main);
    put(main, h('h1', { text: 'Deployment rollback risk' }), e.status === 404
      ? h('p', { class: 'muted', text: 'No risk model is registered: train one with `vigil risk train` (or run the deployment_risk DAG).' })
      : errorBox(e));
    return null;
  }
  clear(main);
  const e = summary.holdout, b = summary.baseline, pos = e.report.classes[1];
  const figures = h('div', { class: 'figures' });
  const csv = h('textarea', { id: 'score-csv', spellcheck: 'false', 'aria-describedby': 'score-hint' });
  const spec = summary.spec || { id: 'deployment_id', time: 'timestamp', group: 'service' };
  csv.value = [spec.id, spec.group, spec.time, ...summary.features].filter(Boolean).join(',') + '\n';
  const problem = h('p', { class: 'error', role: 'alert' });
  const scored = h('div', { class: 'scroll', id: 'scored' });
  const submit = h('button', { type: 'submit', id: 'score-submit', text: 'Score' });
  const form = h('form', { id: 'score-form' },
    h('label', { for: 'score-csv', text: 'Candidate deployments (CSV)' }),
    h('p', { class: 'hint', id: 'score-hint', text: 'One row per deployment under this header, as `vigil risk score` reads it.' }),
    csv, problem, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    problem.textContent = '';
    submit.disabled = true;
    try {
      const out = await post('/risk/score', csv.value, { 'Content-Type': 'text/csv' });
      clear(scored);
      put(scored, h('p', {}, 'Worst band: ', badge(out.worst)),
        h('table', {}, h('thead', {}, h('tr', {}, ['Deployment', 'Service', 'Probability', 'Band', 'Drivers', 'Unfamiliar'].map((c) => h('th', { scope: 'col', text: c })))),
          h('tbody', {}, out.deployments.map((d) => h('tr', {}, h('td', { text: d.deployment_id }), h('td', { text: d.service }),
            h('td', { class: 'num', text: (100 * d.probability).toFixed(1) + '%' }), h('td', {}, badge(d.band)),
            h('td', { text: d.drivers.map((x) => x.feature + ' ' + num(x.value, 2) + ' (typical ' + num(x.typical, 2) + ', +' + (100 * x.adds).toFixed(0) + ' pts)').join('; ') }),
            // The model has no basis for such a score: say so beside it.
            h('td', { class: (d.unfamiliar || []).length ? 'error' : '', text: (d.unfamiliar || []).join('; ') }))))));
    } catch (err) {
      problem.textContent = err.message;
    } finally { submit.disabled = false; }
  });
  const metric = (label, forest, base) => h('tr', {}, h('th', { scope: 'row', text: label }), h('td', { class: 'num', text: num(forest, 3) }), h('td', { class: 'num', text: base == null ? '—' : num(base, 3) }));
  put(main, h('h1', {}, h('span', { text: 'Deployment rollback risk' }), h('span', { class: 'badge' }, summary.model + ' ', h('code', { text: summary.version.version }))),
    h('p', { class: 'muted', text: 'A deployment whose predicted probability of rollback is above ' + summary.threshold.toFixed(2) + ' is flagged. Trained on ' + (summary.training.rows || '?') + ' deployments.' }),
    h('h2', { text: 'Hold-out metrics' }),
    h('div', { class: 'scroll' }, h('table', { id: 'holdout' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Metric' }), h('th', { scope: 'col', class: 'num', text: summary.kept === 'logistic' ? 'Kept: logistic' : 'Kept: forest' }), h('th', { scope: 'col', class: 'num', text: 'Logistic baseline' }))),
      h('tbody', {}, metric('F1 (rolled back)', pos.f1, b.f1), metric('Calibration error (ECE)', e.calibration ? e.calibration.ece : null), metric('ROC AUC', e.roc_auc, b.roc_auc), metric('PR AUC', e.pr_auc),
        metric('Precision', pos.precision), metric('Recall', pos.recall), metric('Accuracy', e.report.accuracy), metric('Brier score', e.brier),
        metric('Hold-out rows', e.rows), metric('Rolled back in hold-out', e.positives)))),
    h('h2', { text: 'Figures' }), figures,
    h('h2', { text: 'Feature importance' }),
    h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Feature' }), ['ROC AUC drop when shuffled', '±'].map((c) => h('th', { scope: 'col', class: 'num', text: c })))),
      h('tbody', {}, summary.importance.map((i) => h('tr', {}, h('td', {}, h('code', { text: i.feature })), h('td', { class: 'num', text: num(i.auc_drop, 4) }), h('td', { class: 'num', text: num(i.std, 4) })))))),
    h('h2', { text: 'Score candidates' }), form, scored);
  for (const [name, alt] of [['confusion_matrix', 'Confusion matrix of the hold-out'], ['feature_importance', 'Feature importance on the hold-out']]) {
    const img = h('img', { alt, id: 'figure-' + name, width: 640 });
    put(figures, img);
    // Fetched with the token (an <img> cannot send one), shown from a blob.
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    fetch(API + '/risk/figures/' + name + '.svg', { headers, signal: view.signal })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error('HTTP ' + r.status))))
      .then((blob) => { img.src = URL.createObjectURL(blob); })
      .catch(() => { img.alt = alt + ' (could not be drawn)'; });
  }
  return null;
}

// ---------- alerts and outbox ----------

async function pageAlerts(view) {
  title('Alerts & outbox');
  const main = view.main;
  const load = async () => {
    const models = await api('/models');
    const alerts = (await Promise.all(models.map((m) => api('/models/' + encodeURIComponent(m.name) + '/alerts')))).flat()
      .sort((a, b) => Date.parse(b.at) - Date.parse(a.at)).slice(0, 100);
    const outbox = await api('/outbox');
    return [alerts, outbox];
  };
  const draw = ([alerts, outbox]) => {
    clear(main);
    put(main, h('h1', { text: 'Alerts & outbox' }),
      h('h2', { text: 'Model alerts' }),
      alerts.length ? h('div', { class: 'scroll' }, h('table', { id: 'alerts' },
        h('thead', {}, h('tr', {}, ['When', 'Model', 'Kind', 'Verdict', 'Message'].map((c) => h('th', { scope: 'col', text: c })))),
        h('tbody', {}, alerts.map((a) => h('tr', {}, h('td', {}, time(a.at)), h('td', {}, h('a', { href: '#/models/' + encodeURIComponent(a.model), text: a.model })),
          h('td', { text: a.kind + (a.dry_run ? ' (dry run)' : '') }), h('td', { text: a.verdict || '' }), h('td', { text: a.message }))))))
        : h('p', { class: 'muted', text: 'No alerts.' }),
      h('h2', { text: 'Outbox' }),
      h('p', { class: 'muted small', text: 'Every message vigil sends is written here first and delivered with retries; a failed one can be sent again.' }),
      outbox.length ? h('div', { class: 'scroll' }, h('table', { id: 'outbox' },
        h('thead', {}, h('tr', {}, ['#', 'Created', 'Kind', 'To', 'Subject', 'State', 'Attempts', 'Last error', ''].map((c) => h('th', { scope: 'col', text: c })))),
        h('tbody', {}, outbox.map((m) => h('tr', { 'data-message': m.id },
          h('td', { class: 'num', text: m.id }), h('td', {}, time(m.created_at)), h('td', { text: m.kind + ' · ' + m.channel }),
          h('td', { text: (m.recipients || []).join(', ') }), h('td', { text: m.subject }), h('td', { text: m.state }),
          h('td', { class: 'num', text: m.attempts }), h('td', { class: 'error', text: m.last_error || '' }),
          h('td', {}, m.state === 'failed' ? h('button', { type: 'button', class: 'quiet', text: 'Send again', 'aria-label': 'Send message ' + m.id + ' again',
            onclick: async () => { try { await post('/outbox/' + m.id + '/retry'); say('Message ' + m.id + ' queued again'); draw(await load()); } catch (e) { alertError(e); } } }) : ''))))))
        : h('p', { class: 'muted', text: 'The outbox is empty.' }));
  };
  const first = await load();
  changed(view, 'alerts', first);
  draw(first);
  return async () => { const d = await load(); if (view.live() && changed(view, 'alerts', d)) draw(d); };
}

// ---------- start ----------

document.getElementById('token-button').addEventListener('click', () => askToken());
window.addEventListener('hashchange', route);
route();
setTimeout(tick, REFRESH_MS);
