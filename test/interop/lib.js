'use strict';
// Shared bits of the interop scripts: argument parsing, one JSON line per
// event on stdout (what interop_test.go reads), a hard time limit, and
// listening on a port or on a socket the Go test passes in (fd 3), so that
// the test can reserve a free port without a race.

const { parseArgs } = require('node:util');

// args parses --name value options; every option is a string.
function args(spec) {
  const options = {};
  for (const [name, def] of Object.entries(spec)) {
    options[name] = { type: 'string', default: def };
  }
  return parseArgs({ options, strict: true }).values;
}

// emit writes one event as a JSON line on stdout.
function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

// fail reports what went wrong on stderr and exits non-zero at once
// (writes to pipes and files are synchronous on Linux, so the events
// printed before are not lost).
function fail(step, message) {
  process.stderr.write(`FAIL ${step}: ${message}\n`);
  process.exit(1);
}

// deadline exits non-zero if the script is still running after ms,
// naming the step it was at.
function deadline(ms, currentStep) {
  const t = setTimeout(() => fail(currentStep(), `timed out after ${ms} ms`), ms);
  return () => clearTimeout(t);
}

// listen starts server on opts.fd (a listening socket inherited from the
// test) or on 127.0.0.1:opts.port, then emits "listening" with the port.
function listen(server, opts, name) {
  const target =
    opts.fd !== undefined ? { fd: Number(opts.fd) } : { host: '127.0.0.1', port: Number(opts.port || 0) };
  server.on('error', (err) => fail('listen', err.message));
  server.listen(target, () => {
    const a = server.address();
    emit('listening', { name, port: typeof a === 'object' && a ? a.port : a });
  });
  // The test ends a server with SIGTERM; exit at once, quietly.
  process.on('SIGTERM', () => process.exit(0));
}

// headersOf keeps the request headers a proxy is expected to set or keep.
function headersOf(req) {
  const keep = [
    'host',
    'x-real-ip',
    'x-forwarded-for',
    'x-forwarded-proto',
    'connection',
    'upgrade',
    'sec-websocket-protocol',
    'sec-websocket-extensions',
    'origin',
  ];
  const out = {};
  for (const k of keep) {
    if (req.headers[k] !== undefined) out[k] = req.headers[k];
  }
  return out;
}

module.exports = { args, emit, fail, deadline, listen, headersOf };
