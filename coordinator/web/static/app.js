// The dashboard: a few pages over /api/v1 (docs/api.md). Data is only ever put into the page as
// text (never as HTML), since job descriptions, subjects and logs are other people's text.
'use strict';

const TOKEN_KEY = 'farm_token';
const view = document.getElementById('view');
const errorBox = document.getElementById('error');
let timer = null;
let session = null;
let cancelArmed = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

async function api(path, options) {
  const headers = {};
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const res = await fetch('/api/v1' + path, Object.assign({ headers }, options || {}));
  const body = await res.json().catch(() => ({ error: { message: 'the reply is not JSON' } }));
  if (!res.ok) {
    const err = new Error((body.error && body.error.message) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}

function short(sha) { return (sha || '').slice(0, 12); }
function stateName(s) { return (s || '').replace(/^TASK_/, ''); }
function stateSpan(s) { return el('span', { class: 'state state-' + s }, s); }
function seconds(x) {
  x = Number(x || 0);
  if (x < 60) return x.toFixed(0) + ' s';
  if (x < 3600) return (x / 60).toFixed(1) + ' min';
  return (x / 3600).toFixed(1) + ' h';
}
function pills(map) {
  const keys = Object.keys(map || {}).sort();
  if (!keys.length) return el('span', { class: 'muted' }, '-');
  return el('span', {}, ...keys.map((k) => el('span', { class: 'pill' }, k + '=' + map[k])));
}

async function refreshSession() {
  const who = document.getElementById('who');
  const login = document.getElementById('nav-login');
  try {
    session = await api('/session');
    who.textContent = session.caller === 'user' ? 'logged in' : 'anonymous (read-only)';
  } catch (e) {
    session = null;
    who.textContent = 'not logged in';
  }
  login.textContent = localStorage.getItem(TOKEN_KEY) ? 'Log out' : 'Log in';
}

// --- pages ---

async function queuePage() {
  const data = await api('/jobs?limit=200');
  const rows = (data.jobs || []).map((j) => {
    const spec = j.spec || {};
    return el('tr', { 'data-job-id': j.job_id },
      el('td', {}, el('a', { href: '#/job/' + j.job_id }, j.job_id)),
      el('td', {}, j.owner || spec.owner || '-'),
      el('td', {}, j.priority !== undefined ? j.priority : (spec.priority !== undefined ? spec.priority : '-')),
      el('td', {}, stateSpan(j.state)),
      el('td', {}, j.state === 'RUNNING'
        ? `${j.candidates} candidates, ${j.testable} to test, ~${j.rounds_left} rounds, ${(j.running || []).length} running`
        : (j.first_bad && j.first_bad.length ? 'first bad ' + short(j.first_bad[0]) : (j.error || ''))),
      el('td', {}, spec.description || `${short(spec.bad)} not ${(spec.good || []).map(short).join(' ')}`),
      el('td', {}, seconds(j.elapsed_seconds)));
  });
  view.replaceChildren(
    el('h1', {}, 'Queue'),
    rows.length
      ? el('table', { id: 'jobs-table' },
          el('tr', {}, ...['job', 'owner', 'priority', 'state', 'progress', 'what', 'elapsed'].map((h) => el('th', {}, h))),
          ...rows)
      : el('p', { class: 'muted', id: 'jobs-table' }, 'no jobs yet'));
  return true;
}

// The commit range of a job: verdicts, candidates left, tasks in flight and cancelled ones.
function rangeStrip(j) {
  const finished = j.finished || [];
  const running = new Set((j.running || []).map((t) => t.commit));
  const verdictOf = {};
  const cancelled = [];
  for (const t of finished) {
    if (t.state === 'TASK_DONE' && t.verdict !== 'VERDICT_UNSPECIFIED') verdictOf[t.commit] = t.verdict.toLowerCase();
    if (t.state === 'TASK_CANCELLED') cancelled.push(t);
  }
  const cells = [];
  const cell = (cls, title) => el('span', { class: 'cell ' + cls, title });
  for (const [c, v] of Object.entries(verdictOf)) if (v === 'good') cells.push(cell('good', short(c) + ' good'));
  for (const c of j.candidate_commits || []) {
    if (verdictOf[c]) continue;
    cells.push(cell(running.has(c) ? 'inflight' : 'candidate', short(c) + (running.has(c) ? ' in flight' : ' candidate')));
  }
  for (const t of j.running || []) {
    if (!(j.candidate_commits || []).includes(t.commit)) cells.push(cell('inflight', short(t.commit) + ' in flight'));
  }
  for (const [c, v] of Object.entries(verdictOf)) if (v !== 'good') cells.push(cell(v, short(c) + ' ' + v));
  for (const t of cancelled) cells.push(cell('cancelled', short(t.commit) + ' cancelled'));
  const count = (cls) => cells.filter((c) => c.classList.contains(cls)).length;
  const legend = el('div', { class: 'legend', id: 'range-legend' },
    ...[['candidate', 'candidates not yet tested'], ['good', 'good'], ['bad', 'bad'], ['skip', 'skipped'],
        ['inflight', 'in flight'], ['cancelled', 'cancelled']].map(([cls, label]) =>
      el('span', { 'data-kind': cls }, el('span', { class: 'cell ' + cls }), `${label}: ${count(cls)}`)));
  return el('div', {}, el('div', { class: 'range', id: 'range' }, ...cells), legend);
}

const logState = { job: null, commit: null, task: null, offset: 0 };

async function pollLog() {
  if (!logState.commit) return;
  const q = `/jobs/${logState.job}/log?commit=${encodeURIComponent(logState.commit)}` +
    (logState.task ? `&task=${encodeURIComponent(logState.task)}&offset=${logState.offset}` : '');
  const data = await api(q);
  const logs = data.logs || [];
  if (!logs.length) return;
  const log = logState.task ? logs[0] : logs[logs.length - 1];
  const pre = document.getElementById('live-log');
  if (!pre) return;
  if (!logState.task) {
    logState.task = log.task_id;
    pre.textContent = '';
    const text = log.text;
    logState.offset = log.next_offset;
    pre.textContent = text;
  } else {
    pre.append(log.text);
    logState.offset = log.next_offset;
  }
  document.getElementById('log-title').textContent =
    `log of task ${log.task_id} (${short(log.commit)}, ${stateName(log.state)}, ${logState.offset} bytes)`;
  pre.scrollTop = pre.scrollHeight;
}

function followLog(jobId, commit) {
  Object.assign(logState, { job: jobId, commit, task: null, offset: 0 });
  const pre = document.getElementById('live-log');
  if (pre) pre.textContent = '';
  pollLog().catch((e) => showError(e.message));
}

function taskRow(jobId, t) {
  return el('tr', { 'data-task-id': t.task_id },
    el('td', {}, t.task_id),
    el('td', {}, el('a', { class: 'commit', onclick: () => followLog(jobId, t.commit) }, short(t.commit))),
    el('td', {}, t.subject || ''),
    el('td', {}, t.agent || ''),
    el('td', {}, stateName(t.state)),
    el('td', {}, t.verdict && t.verdict !== 'VERDICT_UNSPECIFIED' ? t.verdict : ''),
    el('td', {}, seconds(t.seconds)),
    el('td', {}, t.detail || ''));
}

// A matrix job's host x guest table (spec.matrix: hosts, guests, and the commit of each cell at
// h * max(1, guests) + g): each cell's verdict from its tasks, a link to its log, the culprit
// cells of a two-dimensional bisect (first_bad) and the sentence its report gives.
function matrixTable(jobId, j) {
  const m = (j.spec || {}).matrix;
  if (!m || !(m.cells || []).length) return [];
  const hosts = m.hosts || [];
  const guests = m.guests || [];
  const width = Math.max(1, guests.length);
  const hostName = (h) => h.label || short(h.key) || h.image || '?';
  const culprits = new Set(j.first_bad || []);
  const cellOf = (commit) => {
    const running = (j.running || []).some((t) => t.commit === commit);
    const done = (j.finished || []).filter((t) => t.commit === commit);
    const verdicts = done.filter((t) => t.verdict && t.verdict !== 'VERDICT_UNSPECIFIED');
    if (verdicts.length) return { text: verdicts[verdicts.length - 1].verdict, done: true };
    if (running) return { text: 'RUNNING', done: true };
    const failed = done.filter((t) => t.state === 'TASK_INFRA_ERROR');
    if (failed.length) return { text: 'REFUSED', detail: failed[failed.length - 1].detail, done: true };
    return { text: 'WAITING', done: false };
  };
  const rows = hosts.map((h, hi) => el('tr', {},
    el('th', { class: 'matrix-host' }, hostName(h)),
    ...Array.from({ length: width }, (_, gi) => {
      const commit = m.cells[hi * width + gi];
      const c = cellOf(commit);
      const culprit = culprits.has(commit);
      return el('td', { class: `matrix-cell cell-${c.text}${culprit ? ' culprit' : ''}`,
        'data-host': String(hi), 'data-guest': String(gi), 'data-verdict': c.text,
        title: c.detail || '' },
      c.done ? el('a', { class: 'cell-log', onclick: () => followLog(jobId, commit) }, c.text) : c.text,
      culprit ? el('span', { class: 'culprit-mark' }, ' culprit') : null);
    })));
  const sentence = ((j.report || '').match(/cells tested\n([^\n]+)/) || [])[1];
  const culpritText = [...culprits].map((c) => {
    const i = m.cells.indexOf(c);
    if (i < 0) return short(c);
    const g = guests.length ? ` with guest ${guests[i % width]}` : '';
    return `host ${hostName(hosts[Math.floor(i / width)] || {})}${g}`;
  });
  return [
    el('h2', {}, m.bisect ? 'Host x guest bisect' : 'Host x guest matrix'),
    el('table', { id: 'matrix-table' },
      el('tr', {}, el('th', {}, 'host \\ guest'),
        ...(guests.length ? guests : ['(host only)']).map((g) => el('th', { class: 'matrix-guest' }, g))),
      ...rows),
    ...(culpritText.length ? [el('p', { id: 'matrix-culprits' }, 'culprits: ' + culpritText.join('; '))] : []),
    ...(sentence ? [el('p', { id: 'matrix-sentence' }, sentence)] : []),
  ];
}

async function jobPage(id) {
  const j = await api('/jobs/' + encodeURIComponent(id));
  const spec = j.spec || {};
  if (logState.job !== id) Object.assign(logState, { job: id, commit: null, task: null, offset: 0 });
  if (!logState.commit && (j.running || []).length) logState.commit = j.running[0].commit;
  const canCancel = j.state === 'RUNNING' && session && session.can_cancel;
  // Two clicks, so that a stray one does not end someone's bisect.
  const armed = cancelArmed === id;
  const cancel = canCancel ? el('button', { id: 'cancel-job', onclick: async () => {
    if (cancelArmed !== id) { cancelArmed = id; route(); return; }
    cancelArmed = null;
    try { await api(`/jobs/${id}/cancel`, { method: 'POST' }); route(); } catch (e) { showError(e.message); }
  } }, armed ? 'Really cancel this job?' : 'Cancel job') : null;
  const existing = document.getElementById('live-log');
  const pre = existing && existing.dataset.job === id ? existing : el('pre', { id: 'live-log', 'data-job': id });
  if (pre !== existing) Object.assign(logState, { task: null, offset: 0 });
  view.replaceChildren(
    el('h1', {}, `Job ${id} `, el('span', { id: 'job-state', class: 'state state-' + j.state }, j.state), ' ', cancel),
    el('p', {}, spec.description || '', ' ', el('code', {}, spec.repo || ''), ' ',
      `bad ${short(spec.bad)}, good ${(spec.good || []).map(short).join(' ')}`),
    el('p', { id: 'job-progress' }, j.state === 'RUNNING'
      ? `${j.candidates} candidates left, ${j.testable} to test, about ${j.rounds_left} rounds; ${j.agents_connected} agents connected; ${seconds(j.elapsed_seconds)}`
      : `${(j.first_bad || []).length ? 'first bad: ' + (j.first_bad || []).map(short).join(' ') : ''} ${j.error || ''} (${seconds(j.elapsed_seconds)})`),
    ...matrixTable(id, j),
    el('h2', {}, 'Commit range'),
    rangeStrip(j),
    el('h2', {}, 'Tasks'),
    el('table', { id: 'tasks-table' },
      el('tr', {}, ...['task', 'commit', 'subject', 'agent', 'state', 'verdict', 'time', 'detail'].map((h) => el('th', {}, h))),
      ...(j.running || []).map((t) => taskRow(id, t)),
      ...(j.finished || []).slice().reverse().map((t) => taskRow(id, t))),
    el('h2', { id: 'log-title' }, logState.commit ? `log of ${short(logState.commit)}` : 'log: pick a commit above'),
    pre,
    ...(j.report ? [el('h2', {}, 'Report'), el('pre', { id: 'report' }, j.report)] : []));
  if (logState.commit) await pollLog();
  return j.state === 'RUNNING';
}

async function agentsPage() {
  const data = await api('/agents');
  const agents = data.agents || [];
  const stateOf = (a) => a.state || (!a.connected ? 'disconnected' : a.quarantined ? 'quarantined'
    : a.draining ? 'draining' : 'good');
  // The last health check: its result, when, and a link to its output (fetched from the API).
  const healthOf = (a) => {
    const h = a.health_check;
    if (!h || !h.task_id) return el('td', { class: 'health muted' }, '-');
    const when = new Date(1000 * Number(h.running ? h.started_unix : h.ended_unix)).toISOString()
      .replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    const verdict = h.running ? 'running' : h.passed ? 'passed' : 'failed';
    const link = el('a', { href: '#', class: 'health-log' }, 'log');
    link.addEventListener('click', async (ev) => {
      ev.preventDefault();
      const out = await api(h.log_path.replace(/^\/api\/v1/, ''));
      const pre = document.getElementById('health-log') || el('pre', { id: 'health-log' });
      pre.textContent = `${h.task_id} on ${a.agent_id}:\n${out.text}`;
      view.appendChild(pre);
    });
    return el('td', { class: 'health health-' + verdict, 'data-task-id': h.task_id },
      `${verdict} ${when} `, link, h.detail ? el('div', { class: 'muted' }, h.detail) : null);
  };
  view.replaceChildren(
    el('h1', {}, 'Agents'),
    agents.length ? el('table', { id: 'agents-table' },
      el('tr', {}, ...['agent', 'host', 'state', 'health check', 'slots', 'current tasks', 'kernel', 'labels', 'capabilities', 'last seen'].map((h) => el('th', {}, h))),
      ...agents.map((a) => el('tr', { 'data-agent-id': a.agent_id },
        el('td', {}, a.agent_id),
        el('td', {}, a.hostname),
        el('td', {}, stateOf(a), (a.state_reason || a.quarantine_reason)
          ? el('div', { class: 'muted' }, a.state_reason || a.quarantine_reason) : null),
        healthOf(a),
        el('td', {}, a.slots),
        el('td', {}, (a.running_tasks || []).join(' ') || el('span', { class: 'muted' }, 'idle')),
        el('td', {}, (a.capabilities || {}).kernel || (a.labels || {}).kernel || '-'),
        el('td', {}, pills(a.labels)),
        el('td', {}, pills(a.capabilities)),
        el('td', {}, seconds(a.last_seen_seconds_ago) + ' ago'))))
      : el('p', { class: 'muted', id: 'agents-table' }, 'no agents have connected'));
  return true;
}

function verdictName(v) { return { GOOD: 'pass', BAD: 'FAIL', SKIP: 'skip' }[v] || (v || '').toLowerCase(); }
function unixTime(t) { return t && Number(t) ? new Date(Number(t) * 1000).toISOString().replace('T', ' ').slice(0, 16) : '-'; }
function jobLink(id) { return id ? el('a', { href: '#/job/' + id }, id) : '-'; }

// The monitor's state in a word: an open regression, a head being tested, a poll error, or the
// last head's verdict.
function monitorStatus(m) {
  if (m.error) return el('span', { class: 'state state-FAILED', title: m.error }, 'error: ' + m.error);
  if (m.open_regression) return el('span', { class: 'state state-FAILED' }, 'regression ' + m.open_regression);
  if (m.probe_job) return el('span', {}, 'testing ', short(m.last_tested), ' (job ', jobLink(m.probe_job), ')');
  const h = m.history || [];
  return h.length ? el('span', {}, verdictName(h[h.length - 1].verdict)) : el('span', { class: 'muted' }, 'not tested yet');
}

function verificationOf(r) {
  const v = (r.verification || '').replace(/^VERIFICATION_NONE$/, '');
  if (!v) return el('td', { class: 'verification' }, el('span', { class: 'muted' }, '-'));
  return el('td', { class: 'verification verification-' + v.toLowerCase() }, v,
    r.verification_reason ? el('div', { class: 'muted' }, r.verification_reason) : null);
}

async function monitorsPage() {
  const data = await api('/monitors');
  const monitors = data.monitors || [];
  const regressions = data.regressions || [];
  view.replaceChildren(
    el('h1', {}, 'Monitors & regressions'),
    monitors.length ? el('table', { id: 'monitors-table' },
      el('tr', {}, ...['monitor', 'owner', 'repository', 'branch', 'every', 'last passing head', 'status', 'history (oldest first)'].map((h) => el('th', {}, h))),
      ...monitors.map((m) => el('tr', { 'data-monitor-id': m.monitor_id },
        el('td', {}, m.monitor_id), el('td', {}, m.owner || '-'), el('td', {}, m.repo),
        el('td', {}, m.branch), el('td', {}, seconds(m.every_seconds)), el('td', {}, short(m.last_pass) || '-'),
        el('td', { class: 'monitor-status' }, monitorStatus(m)),
        el('td', { class: 'history' }, ...(m.history || []).map((h) =>
          el('a', { href: '#/job/' + h.job_id, class: 'pill verdict-' + verdictName(h.verdict).toLowerCase(),
            title: unixTime(h.tested_unix) }, short(h.commit).slice(0, 7) + ' ' + verdictName(h.verdict)))))))
      : el('p', { class: 'muted', id: 'monitors-empty' }, 'no monitors (farm watch-branch adds one)'),
    el('h2', {}, 'Regressions'),
    regressions.length ? el('table', { id: 'regressions-table' },
      el('tr', {}, ...['regression', 'monitor', 'state', 'range', 'bisect', 'culprit', 'verification', 'opened', 'fixed by'].map((h) => el('th', {}, h))),
      ...regressions.map((r) => el('tr', { 'data-regression-id': r.regression_id },
        el('td', {}, r.regression_id), el('td', {}, r.monitor_id),
        el('td', {}, stateSpan((r.state || '').replace(/^REGRESSION_/, ''))),
        el('td', {}, short(r.last_pass) + '..' + short(r.first_fail)),
        el('td', {}, jobLink(r.bisect_job), ' ', el('span', { class: 'muted' }, (r.bisect_state || '').replace(/^JOB_/, ''))),
        el('td', { class: 'culprit' }, (r.culprits || []).length === 1 ? short(r.culprits[0])
          : (r.culprits || []).length ? (r.culprits.length + ' candidates: ' + r.culprits.map(short).join(' ')) : '-',
        r.error ? el('div', { class: 'muted' }, r.error) : null),
        verificationOf(r), el('td', {}, unixTime(r.opened_unix)), el('td', {}, short(r.fixed_by) || '-'))))
      : el('p', { class: 'muted', id: 'regressions-empty' }, 'no regressions'));
  return true;
}

function loginPage() {
  const has = !!localStorage.getItem(TOKEN_KEY);
  const input = el('input', { type: 'password', id: 'token', placeholder: 'farm token', autocomplete: 'off' });
  const form = el('form', { id: 'login-form', onsubmit: async (ev) => {
    ev.preventDefault();
    localStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await api('/session');
      await refreshSession();
      location.hash = '#/queue';
    } catch (e) {
      localStorage.removeItem(TOKEN_KEY);
      showError(e.message);
    }
  } }, input, ' ', el('button', { class: 'primary', type: 'submit' }, 'Log in'));
  view.replaceChildren(
    el('h1', {}, 'Log in'),
    el('p', {}, 'The same token as the farm command line (--token-file or FARM_TOKEN). It is kept in this browser only.'),
    form,
    has ? el('p', {}, el('button', { id: 'logout', onclick: () => {
      localStorage.removeItem(TOKEN_KEY); refreshSession(); location.hash = '#/login'; route();
    } }, 'Log out')) : null);
  return false;
}

async function route() {
  clearTimeout(timer);
  const hash = location.hash || '#/queue';
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', hash.startsWith(a.getAttribute('href')));
  let live = false;
  try {
    showError('');
    const m = hash.match(/^#\/job\/([^/]+)$/);
    if (hash === '#/login') live = loginPage();
    else if (m) live = await jobPage(decodeURIComponent(m[1]));
    else if (hash === '#/agents') live = await agentsPage();
    else if (hash === '#/monitors') live = await monitorsPage();
    else live = await queuePage();
  } catch (e) {
    showError(e.message + (e.status === 401 ? ' (see "Log in")' : ''));
    if (e.status === 401) view.replaceChildren();
  }
  document.body.dataset.loaded = hash;
  if (live) timer = setTimeout(route, 1000);
}

window.addEventListener('hashchange', route);
refreshSession().then(route);
