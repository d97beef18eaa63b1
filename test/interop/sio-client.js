'use strict';
// A socket.io client in its default transport mode: it connects with
// long-polling, then upgrades to WebSocket. For each of --sessions
// sessions it checks that the first transport is polling, that the
// server's "welcome" arrives, that the upgrade to websocket happens, and
// that --emits "echo" events are acked over websocket with their payload.
//
// Each session's outcome is a JSON line on stdout (its sid, the backend
// that welcomed it, the cookies it held after the upgrade, or the error).
// Exit 0 when every session passed, 1 with "FAIL step: why" on stderr
// otherwise, also after --timeout-ms.
//
// Every session has its own cookie jar, as a browser tab would
// (withCredentials: in Node, engine.io-client ≥ 6.5 keeps the cookies its
// polling answers set and sends them on its later polls and on the
// websocket upgrade, and without it sends none); --with-credentials false
// turns the jar off. --parallel runs that many sessions at once, so that
// their requests interleave.
//
//   node sio-client.js --url http://127.0.0.1:8080 [--sessions 1] [--emits 20] [--parallel 1]

const { io } = require('socket.io-client');
const { args, emit, fail, deadline } = require('./lib');

const opts = args({
  url: undefined,
  sessions: '1',
  emits: '20',
  parallel: '1',
  'with-credentials': 'true',
  'session-timeout-ms': '8000',
  'timeout-ms': '25000',
});
if (!opts.url) fail('args', '--url is required');
if (!['true', 'false'].includes(opts['with-credentials'])) fail('args', '--with-credentials is true or false');
const withCredentials = opts['with-credentials'] === 'true';

let step = 'start';
const done = deadline(Number(opts['timeout-ms']), () => step);

function check(ok, what) {
  if (!ok) throw new Error(what);
}

// errorText spells out a connect_error: socket.io-client puts the
// transport's cause (an HTTP status, a socket error) in description and
// context.
function errorText(err) {
  let s = err.message;
  if (err.description !== undefined) s += ` (description: ${describe(err.description)})`;
  if (err.context && err.context.status !== undefined) s += ` (status ${err.context.status})`;
  if (err.context && err.context.responseText) s += ` (body ${JSON.stringify(err.context.responseText)})`;
  return s;
}

function describe(d) {
  if (d instanceof Error) return d.message;
  if (d && typeof d === 'object') return d.message || JSON.stringify(d);
  return String(d);
}

// cookieNames lists the cookies in an engine.io socket's jar (a private
// field of engine.io-client 6.x, which package.json pins).
function cookieNames(engine) {
  const jar = engine._cookieJar;
  return jar ? [...jar.cookies].map(([name]) => name).sort() : [];
}

// session runs one socket.io session; it resolves with what it saw or
// rejects with the step that failed.
function session(i) {
  return new Promise((resolve, reject) => {
    const seen = { session: i };
    let sub = 'connect';
    const socket = io(opts.url, { forceNew: true, reconnection: false, timeout: 5000, withCredentials });
    const timer = setTimeout(() => finish(new Error(`timed out at ${sub}`)), Number(opts['session-timeout-ms']));
    function finish(err) {
      clearTimeout(timer);
      socket.disconnect();
      if (err) reject(Object.assign(err, { sub, seen }));
      else resolve(seen);
    }

    let upgraded;
    const upgrade = new Promise((res) => (upgraded = res));
    socket.io.on('open', () => {
      const engine = socket.io.engine;
      seen.sid = engine.id;
      seen.firstTransport = engine.transport.name;
      if (engine.transport.name === 'websocket') upgraded();
      engine.on('upgrade', (t) => {
        seen.upgradedTo = t.name;
        upgraded();
      });
      engine.on('upgradeError', (err) => finish(new Error(`upgrade failed: ${describe(err)}`)));
    });
    socket.on('connect_error', (err) => finish(new Error(`connect_error: ${errorText(err)}`)));
    socket.on('disconnect', (reason) => {
      if (reason !== 'io client disconnect') finish(new Error(`disconnected: ${reason}`));
    });
    const welcome = new Promise((res) => socket.once('welcome', res));

    socket.once('connect', async () => {
      try {
        check(seen.firstTransport === 'polling', `first transport ${seen.firstTransport}, want polling`);
        sub = 'welcome';
        const w = await welcome;
        seen.backend = w.backend;
        check(w.sid === seen.sid, `welcome for sid ${w.sid}, this session is ${seen.sid}`);
        sub = 'upgrade';
        await upgrade;
        check(socket.io.engine.transport.name === 'websocket', `transport ${socket.io.engine.transport.name} after upgrade`);
        seen.cookies = cookieNames(socket.io.engine);
        sub = 'emit/ack';
        const n = Number(opts.emits);
        for (let k = 0; k < n; k++) {
          const payload = { k, text: `echo ${k} ✓` };
          const r = await socket.timeout(3000).emitWithAck('echo', payload);
          check(r.payload.k === k && r.payload.text === payload.text, `ack ${k} carried ${JSON.stringify(r.payload)}`);
          check(r.transport === 'websocket', `ack ${k}: server got the event over ${r.transport}`);
          check(r.backend === seen.backend, `ack ${k} from backend ${r.backend}, session is on ${seen.backend}`);
        }
        seen.acks = n;
        finish();
      } catch (err) {
        finish(err);
      }
    });
  });
}

(async () => {
  const n = Number(opts.sessions);
  let failed = 0;
  let first;
  let next = 0;
  // Each worker runs sessions one after another, the next one not yet
  // started, until there are none left.
  async function worker() {
    while (next < n) {
      const i = next++;
      step = `session ${i}`;
      try {
        emit('session', { ok: true, ...(await session(i)) });
      } catch (err) {
        failed++;
        first = first || `session ${i} at ${err.sub}: ${err.message}`;
        emit('session', { ok: false, ...err.seen, at: err.sub, error: err.message });
      }
    }
  }
  const parallel = Math.max(1, Math.min(n, Number(opts.parallel)));
  await Promise.all(Array.from({ length: parallel }, worker));
  done();
  emit('summary', { sessions: n, failed });
  if (failed) fail('sessions', `${failed} of ${n} failed; first: ${first}`);
  else process.exit(0);
})().catch((err) => fail(step, err.message));
