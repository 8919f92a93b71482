// Server limits that need a configured server: the connection limit, WebSocket ping
// keep-alive, and the WebSocket message size limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { startServer, DEFAULT_CONFIG, api, apiOk, sseSubscribe, wsConnect, withTimeout, pollUntil, createSession, promptAsync, getMessages } from "./lib.mjs";

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

test("SIGTERM answers held prompts: the running one with its terminal reply, the queued one with 503; the queued prompt runs after a restart", T, async (t) => {
	const srv = await startServer();
	const dir = srv.dir;
	const a = await createSession(srv);
	const b = await createSession(srv);
	await promptAsync(srv, a.id, "sleep 60000");
	const held = (id, text) =>
		api(srv, "POST", `/session/${id}/message`, { parts: [{ type: "text", text }] }, { timeout: 20000 });
	const queued = held(a.id, "echo after the restart");
	const running = held(b.id, "sleep 60000");
	await pollUntil(async () => Object.keys(await apiOk(srv, "GET", "/session/status")).length === 2, { label: "both busy" });
	await new Promise((r) => setTimeout(r, 100)); // the held requests reached the server
	const exit = srv.kill("SIGTERM");
	const [q, r] = await Promise.all([queued, running]);
	assert.equal((await exit).code, 0, "graceful exit");
	assert.equal(q.status, 503);
	assert.match(q.json.message, /saved and runs when the server starts again/);
	assert.equal(r.status, 200);
	assert.equal(r.json.info.finish, "error");
	assert.match(r.json.info.error.data.message, /interrupted/);
	await srv.stop({ keepDir: true });
	const again = await startServer({ dir });
	t.after(() => again.stop());
	await pollUntil(
		async () => {
			const msgs = await getMessages(again, a.id);
			return msgs.some((m) => m.parts.some((p) => p.text === "The echo tool returned: after the restart"));
		},
		{ timeout: 10000, label: "the queued prompt answered after the restart" },
	);
});

test("an unreadable query argument is a 400, never a dropped filter", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const r = await api(srv, "GET", `/event?sessionID=${"x".repeat(2000)}`);
	assert.equal(r.status, 400);
	assert.equal(r.json.name, "BadRequest");
	// past libwebsockets' header space (4 KiB) the connection is refused outright
	const r2 = await api(srv, "GET", `/session?junk=${"y".repeat(5000)}&roots=true`).catch((e) => e);
	assert.ok(r2 instanceof Error || r2.status >= 400, "an oversize request line is refused");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200);
});

test("only the API's WebSocket subprotocol can be asked for", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const url = srv.url.replace("http", "ws") + "/ws";
	const status = (proto) =>
		new Promise((res) => {
			const ws = proto ? new WebSocket(url, proto) : new WebSocket(url);
			ws.on("open", () => {
				ws.close();
				res(101);
			});
			ws.on("unexpected-response", (q, r) => res(r.statusCode));
			ws.on("error", () => res(-1));
		});
	assert.equal(await status(undefined), 101);
	assert.equal(await status("agentgate"), 101);
	assert.equal(await status("agentgate-inbox"), 400);
	assert.equal(await status("chat"), 400);
});

test("an idle SSE stream gets heartbeat comments (server.sse_heartbeat_ms)", T, async (t) => {
	const srv = await startServer({ config: { ...DEFAULT_CONFIG, server: { sse_heartbeat_ms: 200 } } });
	t.after(() => srv.stop());
	const s = await sseSubscribe(srv);
	t.after(() => s.close());
	await s.until((r) => r.comments.filter((c) => /heartbeat/.test(c)).length >= 2, { label: "two heartbeats", timeout: 10000 });
});
