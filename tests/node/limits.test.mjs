// Server limits that need a configured server: the connection limit, WebSocket ping
// keep-alive, and the WebSocket message size limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { startServer, DEFAULT_CONFIG, api, sseSubscribe, wsConnect, withTimeout } from "./lib.mjs";

const T = { timeout: 60_000 };

test("connections over server.max_connections get 503 naming the limit; the server stays up", T, async (t) => {
	// a stream whose client left is noticed when a write fails: heartbeats every 100 ms
	const srv = await startServer({ config: { ...DEFAULT_CONFIG, server: { max_connections: 3, sse_heartbeat_ms: 100 } } });
	t.after(() => srv.stop());
	const streams = [];
	t.after(() => streams.forEach((s) => s.close()));
	for (let i = 0; i < 3; i++) streams.push(await sseSubscribe(srv));
	const r = await api(srv, "GET", "/session");
	assert.equal(r.status, 503);
	assert.equal(r.json.name, "ServiceUnavailable");
	assert.match(r.json.message, /max_connections is 3/);
	streams.pop().close();
	let ok = null;
	for (let i = 0; i < 100 && ok?.status !== 200; i++) {
		ok = await api(srv, "GET", "/global/health");
		if (ok.status !== 200) await new Promise((res) => setTimeout(res, 20));
	}
	assert.equal(ok.status, 200, "a freed slot is usable again");
});

test("the server pings idle WebSocket clients (server.ws_ping_s)", T, async (t) => {
	const srv = await startServer({ config: { ...DEFAULT_CONFIG, server: { ws_ping_s: 1 } } });
	t.after(() => srv.stop());
	const ws = new WebSocket(srv.url.replace("http", "ws") + "/ws");
	t.after(() => ws.close());
	await withTimeout(new Promise((res) => ws.once("ping", res)), 10_000, "a ping from the server");
});

test("a WebSocket message over 1 MiB closes the connection with 1009; others are unaffected", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const big = await wsConnect(srv.url.replace("http", "ws") + "/ws");
	const other = await wsConnect(srv.url.replace("http", "ws") + "/ws");
	t.after(() => other.ws.close());
	big.ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "session.create", params: { title: "x".repeat(1100 * 1024) } }));
	const info = await withTimeout(big._closed.promise, 10_000, "close of the oversized sender");
	assert.equal(info.code, 1009);
	const s = await other.call("session.create", { title: "still fine" });
	assert.equal(s.title, "still fine");
});
