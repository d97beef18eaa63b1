'use strict';
// A node ws client that checks what an application relies on, through
// whatever is at --url (wsgate, or the backend itself as a control).
//
// Connection 1 (no compression, subprotocols offered): the first offered
// subprotocol is selected; text (UTF-8), binary, a message sent in three
// fragments, a burst of 200 small messages in order, 1 MiB of random
// binary, a ping answered by a pong with the same payload, and a close
// with code 4001 and a reason that the server echoes back.
// Connection 2 (permessage-deflate offered, as ws does by default): the
// extension is negotiated; 64 KiB of compressible text and 1 MiB of random
// binary echo; the server closes with code 4002 and a reason the client
// sees.
//
// Each step is a JSON line on stdout; exit 0 when all pass, 1 with
// "FAIL step: why" on stderr otherwise, also after --timeout-ms.
//
//   node ws-client.js --url ws://127.0.0.1:8080/echo

const crypto = require('node:crypto');
const { once } = require('node:events');
const WebSocket = require('ws');
const { args, emit, fail, deadline } = require('./lib');

const opts = args({ url: undefined, 'timeout-ms': '15000' });
if (!opts.url) fail('args', '--url is required');

let step = 'start';
const done = deadline(Number(opts['timeout-ms']), () => step);

// inbox returns a function that resolves to the next message, in order.
function inbox(ws) {
  const queued = [];
  const waiting = [];
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    if (waiting.length) waiting.shift()(m);
    else queued.push(m);
  });
  return () => (queued.length ? Promise.resolve(queued.shift()) : new Promise((r) => waiting.push(r)));
}

function check(ok, what) {
  if (!ok) throw new Error(what);
}

async function open(url, protocols, options) {
  const ws = new WebSocket(url, protocols, { handshakeTimeout: 5000, ...options });
  ws.on('error', (err) => fail(step, `websocket error: ${err.message}`));
  ws.on('unexpected-response', (req, res) => fail(step, `handshake answered ${res.statusCode} ${res.statusMessage}`));
  const next = inbox(ws);
  await once(ws, 'open');
  return { ws, next };
}

async function echo(ws, next, data, binary, name) {
  step = name;
  ws.send(data, { binary });
  const m = await next();
  check(m.isBinary === binary, `${name}: echoed as ${m.isBinary ? 'binary' : 'text'}`);
  const want = Buffer.isBuffer(data) ? data : Buffer.from(data);
  check(want.equals(m.data), `${name}: echo differs (${m.data.length} bytes, want ${want.length})`);
  emit('ok', { step: name, bytes: want.length });
}

async function plain(url) {
  step = 'connect plain';
  const { ws, next } = await open(url, ['wsgate.interop', 'chat'], { perMessageDeflate: false });
  check(ws.protocol === 'wsgate.interop', `subprotocol "${ws.protocol}", want "wsgate.interop"`);
  check(ws.extensions === '', `extensions "${ws.extensions}", want none`);
  emit('ok', { step, protocol: ws.protocol });

  await echo(ws, next, 'héllo wsgate ✓', false, 'text');
  await echo(ws, next, crypto.randomBytes(256), true, 'binary');

  step = 'fragments';
  ws.send('one,', { binary: false, fin: false });
  ws.send('two,', { binary: false, fin: false });
  ws.send('three', { binary: false, fin: true });
  const f = await next();
  check(!f.isBinary && f.data.toString() === 'one,two,three', `fragments echoed as "${f.data}"`);
  emit('ok', { step });

  step = 'burst';
  const n = 200;
  for (let i = 0; i < n; i++) ws.send(`m-${i}`);
  for (let i = 0; i < n; i++) {
    const m = await next();
    check(m.data.toString() === `m-${i}`, `burst message ${i} came back as "${m.data}"`);
  }
  emit('ok', { step, messages: n });

  await echo(ws, next, crypto.randomBytes(1 << 20), true, '1 MiB binary');

  step = 'ping';
  const pong = once(ws, 'pong');
  ws.ping(Buffer.from('wsgate-ping'));
  const [payload] = await pong;
  check(payload.toString() === 'wsgate-ping', `pong payload "${payload}"`);
  emit('ok', { step });

  step = 'client close';
  const closed = once(ws, 'close');
  ws.close(4001, 'interop done');
  const [code, reason] = await closed;
  check(code === 4001 && reason.toString() === 'interop done', `close echoed as ${code} "${reason}"`);
  emit('ok', { step, code, reason: reason.toString() });
}

async function deflate(url) {
  step = 'connect deflate';
  const { ws, next } = await open(url, undefined, {});
  check(/permessage-deflate/.test(ws.extensions), `extensions "${ws.extensions}", want permessage-deflate`);
  emit('ok', { step, extensions: ws.extensions });

  await echo(ws, next, 'wsgate! '.repeat(8192), false, 'deflate text');
  await echo(ws, next, crypto.randomBytes(1 << 20), true, 'deflate 1 MiB binary');

  step = 'server close';
  const closed = once(ws, 'close');
  ws.send('/close 4002 server says bye');
  const [code, reason] = await closed;
  check(code === 4002 && reason.toString() === 'server says bye', `server close seen as ${code} "${reason}"`);
  emit('ok', { step, code, reason: reason.toString() });
}

(async () => {
  await plain(opts.url);
  await deflate(opts.url);
  done();
  emit('done');
  process.exit(0);
})().catch((err) => fail(step, err.message));
