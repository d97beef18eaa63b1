'use strict';
// A WebSocket echo server on node's ws package, as users run behind nginx:
// echoes every message with its type, answers pings (ws does), picks the
// first offered subprotocol, negotiates permessage-deflate when offered,
// and closes with a code and reason when a client sends
// "/close CODE REASON". Every connection, ping and close it sees is one
// JSON line on stdout.
//
//   node ws-echo-server.js --port 8010 [--name a]
//   node ws-echo-server.js --fd 3          (a listening socket passed in)

const http = require('node:http');
const { WebSocketServer } = require('ws');
const { args, emit, listen, headersOf } = require('./lib');

const opts = args({ port: undefined, fd: undefined, name: 'ws-echo' });

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${opts.name}: a WebSocket echo server\n`);
});

const wss = new WebSocketServer({
  server,
  perMessageDeflate: true,
  handleProtocols: (protocols) => (protocols.size ? protocols.values().next().value : false),
});

let nextID = 0;
wss.on('connection', (ws, req) => {
  const id = ++nextID;
  emit('connection', {
    id,
    url: req.url,
    headers: headersOf(req),
    protocol: ws.protocol,
    extensions: ws.extensions,
  });
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const m = /^\/close (\d+) ?(.*)$/s.exec(data.toString());
      if (m) {
        emit('server-close', { id, code: Number(m[1]), reason: m[2] });
        ws.close(Number(m[1]), m[2]);
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('ping', (data) => emit('ping', { id, data: data.toString() }));
  ws.on('close', (code, reason) => emit('close', { id, code, reason: reason.toString() }));
  ws.on('error', (err) => emit('ws-error', { id, message: err.message }));
});

listen(server, opts, opts.name);
