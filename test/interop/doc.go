// Package interop holds tests that put wsgate between the clients and
// servers its users run today — node's ws package, wscat, socket.io — and
// check that they keep working through it, as they do directly. Each case
// runs twice: straight to the backend (the control) and through an
// in-process wsgate engine, so that a failure only through wsgate is a
// wsgate bug. The sticky-cookie tests (sticky_test.go) need two backends
// and cannot go direct; their control is the same client through wsgate
// without stickiness, which must fail.
//
// The node side lives beside this file: ws-echo-server.js and
// ws-client.js, sio-server.js and sio-client.js, with their packages
// pinned in package.json and package-lock.json. Install them with
//
//	npm ci --prefix test/interop
//
// Without them the tests skip, unless WSGATE_CI is set (.ci/run sets it
// after installing them), where they fail instead.
//
// websocat is not covered: it is neither in Debian bookworm nor on npm
// (the npm package of that name downloads a release binary at install
// time, which this project's machines cannot fetch).
package interop
