'use strict';
// A socket.io server with its default options (long-polling, then the
// upgrade to WebSocket): says "welcome" to each new socket and acks every
// "echo" event with the payload, its name and the transport the event
// came over. Connections, upgrades, disconnects and engine.io's request
// errors (such as "Session ID unknown", when a session's request reaches a
// server that did not issue its sid) are JSON lines on stdout.
//
//   node sio-server.js --port 8010 --name a
//   node sio-server.js --fd 3 --name a      (a listening socket passed in)

const http = require('node:http');
const { Server } = require('socket.io');
const { args, emit, listen, headersOf } = require('./lib');

const opts = args({ port: undefined, fd: undefined, name: 'sio' });

const server = http.createServer();
const io = new Server(server);

io.engine.on('connection_error', (err) => {
  emit('connection_error', {
    name: opts.name,
    code: err.code,
    message: err.message,
    method: err.req.method,
    url: err.req.url,
  });
});

io.on('connection', (socket) => {
  const sid = socket.conn.id;
  emit('connection', {
    name: opts.name,
    sid,
    transport: socket.conn.transport.name,
    headers: headersOf(socket.request),
  });
  socket.conn.on('upgrade', (t) => emit('upgrade', { name: opts.name, sid, transport: t.name }));
  socket.on('echo', (payload, ack) => {
    if (typeof ack === 'function') ack({ payload, backend: opts.name, transport: socket.conn.transport.name });
  });
  socket.on('disconnect', (reason) => emit('disconnect', { name: opts.name, sid, reason }));
  socket.emit('welcome', { backend: opts.name, sid });
});

listen(server, opts, opts.name);
