// Package handshake parses, validates and rewrites the HTTP/1.1 heads that
// wsgate sees while it sets a tunnel up: the client's request (usually a
// WebSocket Upgrade), the head the backend receives, and the backend's answer.
//
// Everything works on bytes the engine already holds, returns slices into
// them and allocates nothing on the happy path. Parsing is strict on
// purpose: wsgate sits between clients and backends whose HTTP parsers it
// does not know, so any head two parsers could read differently (request
// smuggling, RFC 9112 section 11.2) is rejected with a status and a reason
// instead of being forwarded. Every rejection is a *Reject: an HTTP status,
// a snake_case reason that is also the metric label, and a one-line text.
//
// Files: head.go finds the end of a head and checks its lines, request.go
// parses and validates a request, rewrite.go writes the head the backend
// receives, response.go handles the backend's answer, body.go follows a
// body's framing, reject.go holds every rejection and its status, field.go
// the header fields wsgate recognises and the hop-by-hop rule.
package handshake
