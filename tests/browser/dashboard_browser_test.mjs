// The dashboard in a real browser: Debian's chromium, headless, driven over its DevTools
// protocol on a pipe (--remote-debugging-pipe: no port, no download), against a live
// farm-coordinator (TLS, tokens, the dashboard on its HTTP port) with two farm-agents and a
// running bisect whose test prints, waits for the test to let it go, then prints again; the agents
// pass a health check first; a host x guest matrix no agent can serve shows its table of cells.
//
// usage: node dashboard_browser_test.mjs BIN_DIR SOURCE_DIR [SCREENSHOT_DIR]
// Exit 0: passed; 77: skipped (no chromium, no openssl); 1: failed, saying what.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [binDir, sourceDir, shotDir] = process.argv.slice(2).map((p) => path.resolve(p));
const SKIP = 77;
const children = [];
let browser = null;
let dir = null;

function fail(message) {
  console.error('FAILED: ' + message);
  cleanup();
  process.exit(1);
}
function cleanup() {
  // Tests still waiting (the agents are killed, not stopped) end at once.
  if (dir) fs.writeFileSync(path.join(dir, 'stop'), '');
  if (browser) browser.kill('SIGKILL');
  for (const c of children) c.kill('SIGKILL');
}
process.on('uncaughtException', (e) => fail(e.stack || String(e)));
process.on('unhandledRejection', (e) => fail((e && e.stack) || String(e)));

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}
const chromium = process.env.FARM_CHROMIUM || which('chromium') || which('chromium-browser');
if (!chromium) {
  console.log('SKIPPED: no chromium on PATH (apt-get install chromium; tests/setup-debian.sh)');
  process.exit(SKIP);
}
if (!which('openssl')) {
  console.log('SKIPPED: no openssl to make the coordinator a certificate');
  process.exit(SKIP);
}

dir = fs.mkdtempSync(path.join(os.tmpdir(), 'farm-browser-'));
const sh = (cmd) => {
  const r = spawnSync('sh', ['-c', cmd], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) fail(`${cmd}: ${r.stdout}${r.stderr}`);
  return r.stdout;
};

// Waits until `check()` returns a truthy value, polling every 100 ms, at most `seconds`.
async function until(what, seconds, check) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) fail(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function start(name, argv) {
  const log = fs.openSync(path.join(dir, name + '.log'), 'w');
  const child = spawn(argv[0], argv.slice(1), { cwd: dir, stdio: ['ignore', log, log] });
  children.push(child);
  return () => fs.readFileSync(path.join(dir, name + '.log'), 'utf8');
}

// --- the farm ---
sh('openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=farm-ca -keyout ca.key -out ca.pem 2>/dev/null');
sh('openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null');
sh("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext");
sh('openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null');
const token = 'browser-test-token-5f2c9e';
fs.writeFileSync(path.join(dir, 'tokens'), token + '\n', { mode: 0o600 });
fs.writeFileSync(path.join(dir, 'token'), token + '\n', { mode: 0o600 });
const repo = JSON.parse(sh(`python3 ${sourceDir}/tests/lib/make_repo.py ${dir}/repo --commits 40 --seed 12`));
// The test: the first two tasks (tickets 0 and 1) say they started, wait for the gate the
// browser test opens, say more and give their verdict; later ones say they started and wait to be
// cancelled (bounded, and ended by the `stop` file, so that nothing outlives the test for long).
fs.writeFileSync(path.join(dir, 'test.sh'), `#!/bin/sh
t=0; while ! mkdir ${dir}/ticket.$t 2>/dev/null; do t=$((t+1)); done
echo "phase one: testing $(git rev-parse --short HEAD) (ticket $t)"
if [ $t -lt 2 ]; then
  i=0; while [ ! -e ${dir}/gate ] && [ ! -e ${dir}/stop ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  echo "phase two: the gate opened"
  test -f bug && exit 1
  exit 0
fi
i=0; while [ ! -e ${dir}/stop ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
exit 0
`, { mode: 0o755 });

fs.writeFileSync(path.join(dir, 'check.sh'), '#!/bin/sh\necho "the bench is fine"\n', { mode: 0o755 });

const coordLog = start('coordinator', [path.join(binDir, 'farm-coordinator'), '--listen', '127.0.0.1:0',
  '--db', path.join(dir, 'farm.db'), '--tls-cert', path.join(dir, 'server.pem'), '--tls-key',
  path.join(dir, 'server.key'), '--tokens', path.join(dir, 'tokens'), '--http-listen', '127.0.0.1:0',
  '--health-check', `*=${dir}/check.sh`]);
const coordOut = await until('the coordinator to listen', 30, () => {
  const t = coordLog();
  return /dashboard at/.test(t) && t;
});
const grpcAddr = coordOut.match(/listening on (\S+)/)[1];
const web = coordOut.match(/dashboard at (http:\/\/[^/\s]+)/)[1];
for (const id of ['agent-a', 'agent-b']) {
  start(id, [path.join(binDir, 'farm-agent'), '--coordinator', grpcAddr, '--workdir',
    path.join(dir, id), '--id', id, '--tls-ca', path.join(dir, 'ca.pem'), '--label', 'rack=r1']);
}
const farm = (command, args = '') =>
  sh(`${path.join(binDir, 'farm')} --tls-ca ca.pem --token-file token ${command} --coordinator ${grpcAddr} ${args}`);
await until('both agents to connect', 60, () => /agent-a/.test(farm('agents')) && /agent-b/.test(farm('agents')));
const job = farm('submit', `--repo ${repo.path} --good ${repo.root} --bad ${repo.bad} --max-parallel 2 --description 'boot test fails since the scheduler rework' -- ${dir}/test.sh`).trim();
if (!/^\d+$/.test(job)) fail('farm submit printed ' + job);

// What anyone can see without the browser: the API refuses an anonymous caller.
const anon = await fetch(web + '/api/v1/jobs');
if (anon.status !== 401) fail(`anonymous GET /api/v1/jobs: ${anon.status}, want 401`);

// --- the browser, over the DevTools protocol on fds 3 (its input) and 4 (its output) ---
browser = spawn(chromium, ['--headless=new', '--no-sandbox', '--disable-gpu', '--remote-debugging-pipe',
  `--user-data-dir=${dir}/chromium`, '--no-first-run', '--no-default-browser-check',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-extensions', '--window-size=1280,860', 'about:blank'],
{ stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'chromium.log'), 'w'), 'pipe', 'pipe'] });
const toBrowser = browser.stdio[3];
const fromBrowser = browser.stdio[4];
let nextId = 1;
const pending = new Map();
let buffered = Buffer.alloc(0);
fromBrowser.on('data', (chunk) => {
  buffered = Buffer.concat([buffered, chunk]);
  let nul;
  while ((nul = buffered.indexOf(0)) >= 0) {
    const msg = JSON.parse(buffered.subarray(0, nul).toString('utf8'));
    buffered = buffered.subarray(nul + 1);
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject, method } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
      else resolve(msg.result);
    }
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  toBrowser.write(JSON.stringify({ id, method, params, sessionId }) + '\0');
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject, method }));
}
const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
const page = (method, params) => send(method, params, sessionId);
await page('Page.enable');
await page('Emulation.setDeviceMetricsOverride', { width: 1280, height: 860, deviceScaleFactor: 1, mobile: false });
async function js(expression) {
  const r = await page('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
  if (r.exceptionDetails) fail(`${expression}: ${r.exceptionDetails.text}`);
  return r.result.value;
}
const text = (selector) => js(`(document.querySelector(${JSON.stringify(selector)}) || {}).textContent || ''`);
async function go(hash) {
  await js(`location.hash = ${JSON.stringify(hash)}`);
  await until(`page ${hash} to load`, 20, () => js(`document.body.dataset.loaded === ${JSON.stringify(hash)}`));
}
async function shot(name) {
  if (!shotDir) return;
  fs.mkdirSync(shotDir, { recursive: true });
  const { data } = await page('Page.captureScreenshot', { format: 'png' });
  fs.writeFileSync(path.join(shotDir, name + '.png'), Buffer.from(data, 'base64'));
}
const checks = [];
const ok = (what) => { checks.push(what); console.log('ok: ' + what); };

// An anonymous visitor: the page loads, the data is refused with the reason.
await page('Page.navigate', { url: web + '/#/queue' });
await until('the refusal', 20, async () => /log in with your farm token/.test(await text('#error')));
if (await js(`document.querySelectorAll('#jobs-table tr[data-job-id]').length`) !== 0) fail('an anonymous visitor saw jobs');
ok('an anonymous visitor is refused: ' + (await text('#error')).slice(0, 70) + '...');

// Log in with the CLI's token.
await go('#/login');
await shot('login');
await js(`document.getElementById('token').value = ${JSON.stringify(token)}; document.getElementById('login-form').requestSubmit()`);
await until('the queue after logging in', 20, () => js(`location.hash === '#/queue' && document.body.dataset.loaded === '#/queue'`));
await until(`job ${job} in the queue`, 20, () => js(`!!document.querySelector('#jobs-table tr[data-job-id="${job}"]')`));
const row = await text(`#jobs-table tr[data-job-id="${job}"]`);
if (!/RUNNING/.test(row)) fail('the queue row of the job says ' + row);
ok(`the queue lists job ${job}: ${row}`);
await shot('queue');

// Agents, each on a task of the job.
await go('#/agents');
await until('both agents busy on the agents page', 30, () => js(`
  ['agent-a', 'agent-b'].every((id) => { const r = document.querySelector('#agents-table tr[data-agent-id="' + id + '"]');
    return r && /${job}\\.\\d+/.test(r.textContent) && /rack=r1/.test(r.textContent); })`));
ok('the agents page shows agent-a and agent-b, their labels and their current tasks');
// Each passed its health check on connecting; its output is one click away.
await until('the health checks passed', 20, () => js(`['agent-a', 'agent-b'].every((id) =>
  (document.querySelector('#agents-table tr[data-agent-id="' + id + '"] td.health') || {}).dataset?.taskId &&
  document.querySelector('#agents-table tr[data-agent-id="' + id + '"] td.health').classList.contains('health-passed'))`));
await js(`document.querySelector('#agents-table tr[data-agent-id="agent-a"] a.health-log').click()`);
await until('the health check\'s log', 20, async () => /agent-a:\n[\s\S]*the bench is fine/.test(await text('#health-log')));
ok('the agents page shows each agent\'s passed health check and its log: ' + JSON.stringify(await text('#health-log')));
await shot('agents');

// The job page: the range, then a log that grows while its task runs.
await go('#/job/' + job);
await until('the range drawn', 20, () => js(`document.querySelectorAll('#range .cell.inflight').length === 2 && document.querySelectorAll('#range .cell.candidate').length > 0`));
ok('the job page draws the range: ' + (await text('#range-legend')));
await until('phase one in the live log', 60, async () => /phase one/.test(await text('#live-log')));
if (/phase two/.test(await text('#live-log'))) fail('phase two in the log before the gate opened');
fs.writeFileSync(path.join(dir, 'gate'), '');
await until('the live log to grow', 30, async () => {
  const t = await text('#live-log');
  return /phase one[\s\S]*phase two/.test(t) && (t.match(/phase one/g) || []).length === 1;
});
ok('the live log grew while the task ran: ' + JSON.stringify(await text('#live-log')));
// The two verdicts drawn, and the two tasks started after them in flight.
await until('two verdicts and two tasks in flight', 30, () => js(`
  document.querySelectorAll('#range .cell.good, #range .cell.bad').length === 2 &&
  document.querySelectorAll('#range .cell.inflight').length === 2`));
ok('the range shows the verdicts: ' + (await text('#range-legend')));
await shot('job');

// Cancel from the page (two clicks), and the coordinator's own answer agrees.
await go('#/job/' + job);
await until('the cancel button', 10, () => js(`!!document.getElementById('cancel-job')`));
await js(`document.getElementById('cancel-job').click()`);
await until('the cancel to be armed', 10, async () => /Really/.test(await text('#cancel-job')));
await js(`document.getElementById('cancel-job').click()`);
await until('the page to say CANCELLED', 20, async () => (await text('#job-state')) === 'CANCELLED');
// The tasks in flight when the job was cancelled are drawn as cancelled, with any cancelled before.
await until('the cancelled tasks drawn', 20, () => js(`document.querySelectorAll('#range .cell.inflight').length === 0 &&
  document.querySelectorAll('#range .cell.cancelled').length >= 2`));
ok('after the cancel the range shows: ' + (await text('#range-legend')));
await shot('job-cancelled');
const status = farm('status', job);
if (!/CANCELLED|cancelled/.test(status)) fail('farm status after the cancel says ' + status);
ok('cancel from the page cancelled the job (farm status agrees)');

// A host x guest matrix: its cells need kexec agents, which this farm lacks, so they wait; the
// job page draws the table from the API (spec.matrix and the tasks).
for (const name of ['vmlinuz-6.1', 'vmlinuz-6.2', 'bzImage-a', 'bzImage-b']) {
  fs.writeFileSync(path.join(dir, name), 'image ' + name + '\n');
}
start('matrix', ['sh', '-c', `XDG_CACHE_HOME=${dir}/cache exec ${path.join(binDir, 'farm')} --tls-ca ca.pem ` +
  `--token-file token matrix --coordinator ${grpcAddr} --host-kernels ${dir}/vmlinuz-6.1 ${dir}/vmlinuz-6.2 ` +
  `--guest-kernels ${dir}/bzImage-a ${dir}/bzImage-b -- true`]);
const matrixJob = String(Number(job) + 1);
await until('the matrix job', 30, async () =>
  (await fetch(`${web}/api/v1/jobs/${matrixJob}`, { headers: { Authorization: 'Bearer ' + token } })).ok);
await go('#/job/' + matrixJob);
await until('the matrix table', 20, () => js(`document.querySelectorAll('#matrix-table td.matrix-cell').length === 4`));
const cells = await js(`[...document.querySelectorAll('#matrix-table td.matrix-cell')].map((c) =>
  c.dataset.host + ',' + c.dataset.guest + ':' + c.dataset.verdict).join(' ')`);
if (cells !== '0,0:WAITING 0,1:WAITING 1,0:WAITING 1,1:WAITING') fail('the matrix cells are ' + cells);
const heads = await js(`[...document.querySelectorAll('#matrix-table th.matrix-host, #matrix-table th.matrix-guest')].map((h) => h.textContent).join(' ')`);
if (!/bzImage-a bzImage-b/.test(heads) || !/vmlinuz-6\.1/.test(heads) || !/vmlinuz-6\.2/.test(heads)) fail('the matrix headers are ' + heads);
ok(`the matrix job's page shows its 2 x 2 table: ${heads}; ${cells}`);
await shot('matrix');
farm('cancel', matrixJob);

// A branch monitor: its first head passes; the branch then moves to a failing head, which opens a
// regression whose bisect (verified, as the service's always are) names the culprit.
await go('#/monitors');
await until('the empty monitors page', 10, async () => /no monitors/.test(await text('#monitors-empty')));
// (Not the root commit: a head test needs the head's parent.)
sh(`git -C ${repo.path} branch watched ${repo.commits[2]}`);
fs.writeFileSync(path.join(dir, 'no-bug.sh'), '#!/bin/sh\ntest ! -f bug\n', { mode: 0o755 });
const added = farm('watch-branch', `--repo ${repo.path} --branch watched --every 1s -- ${dir}/no-bug.sh`);
const monitor = (added.match(/^monitor (\d+):/m) || [])[1];
if (!monitor) fail('farm watch-branch printed ' + added);
await until('the first head passed on the monitors page', 60, () => js(`
  /pass/.test((document.querySelector('#monitors-table tr[data-monitor-id="${monitor}"] td.history') || {}).textContent || '')`));
ok('the monitors page shows monitor ' + monitor + ': ' + (await text(`#monitors-table tr[data-monitor-id="${monitor}"]`)));
sh(`git -C ${repo.path} branch -f watched ${repo.bad}`);
const culprit = repo.culprit.slice(0, 12);
await until('the regression verified on the monitors page', 180, () => js(`
  [...document.querySelectorAll('#regressions-table tr[data-regression-id]')].some((r) =>
    r.querySelector('td.culprit').textContent.startsWith(${JSON.stringify(culprit)}) &&
    /VERIFIED|UNRELIABLE|INCONCLUSIVE/.test(r.querySelector('td.verification').textContent))`));
const regression = await text('#regressions-table tr[data-regression-id]');
if (!/VERIFIED/.test(regression) || /UNRELIABLE|INCONCLUSIVE/.test(regression)) fail('the regression row says ' + regression);
await until('the monitor to show the failing head', 20, () => js(`
  /FAIL/.test((document.querySelector('#monitors-table tr[data-monitor-id="${monitor}"] td.history') || {}).textContent || '')`));
ok('the monitors page shows the regression, its culprit and its verification: ' + regression);
await shot('monitors');
farm('unwatch', monitor);

// Logging out makes the visitor anonymous again.
await js(`localStorage.removeItem('farm_token')`);
await page('Page.navigate', { url: web + '/#/agents' });
await until('the refusal after logging out', 20, async () => /log in/.test(await text('#error')));
ok('after logging out the agents page is refused');

console.log(`PASSED: ${checks.length} checks`);
cleanup();
// The directory goes once nothing writes into it any more.
await Promise.all([browser, ...children].map((c) =>
  c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r))));
try {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
} catch (e) {
  console.log(`(left ${dir}: ${e.message})`);
}
process.exit(0);
