// Cross-site and DNS-rebinding protection: a web page must not drive the gateway on
// 127.0.0.1 — not by posting prompts from its own origin (text/plain and form bodies
// need no CORS preflight), nor through a DNS name rebound to 127.0.0.1 (Host is then
// the attacker's name). Clients that are not browsers (curl, the SDK) are unaffected.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createOpencodeClient } from "@opencode-ai/sdk";
import { startServer, DEFAULT_CONFIG, api, rawHttp, createSession, getMessages, wsUpgradeStatus } from "./lib.mjs";

const T = { timeout: 60_000 };
const EVIL = "rebind.evil.example";

function assertError(r, status, name, re, label) {
	assert.equal(r.status, status, `${label}: status (body ${r.text})`);
	assert.equal(r.json?.name, name, `${label}: name`);
	assert.match(r.json?.message ?? "", re, `${label}: message`);
	assert.equal(r.json?.data?.message, r.json?.message, `${label}: data.message`);
}

test("a request whose Host is not this server's is refused with 403 naming the Host: routes, SSE, static files, WebSocket", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const host = { host: `${EVIL}:${srv.port}` };
	for (const p of ["/session", "/event", "/", "/index.html", "/global/health"]) {
		const r = await rawHttp(srv, { path: p, headers: host });
		assertError(r, 403, "Forbidden", new RegExp(`Host "${EVIL}:${srv.port}"`), `GET ${p}`);
	}
	const post = await rawHttp(srv, { method: "POST", path: "/session", headers: { ...host, "content-type": "application/json" }, body: "{}" });
	assertError(post, 403, "Forbidden", /server\.allowed_hosts/, "POST /session");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { headers: host }), 403, "WebSocket upgrade");
	assert.deepEqual((await api(srv, "GET", "/session")).json, [], "no session was created");
});

test("the server's own names pass Host, with or without a port; server.allowed_hosts adds names", T, async (t) => {
	const srv = await startServer({ config: { ...DEFAULT_CONFIG, server: { allowed_hosts: ["Agentgate.Internal"] } } });
	t.after(() => srv.stop());
	for (const h of ["127.0.0.1", `127.0.0.1:${srv.port}`, "localhost", `LOCALHOST:${srv.port}`, `[::1]:${srv.port}`, `agentgate.internal:${srv.port}`]) {
		const r = await rawHttp(srv, { path: "/session", headers: { host: h } });
		assert.equal(r.status, 200, `Host: ${h}`);
	}
	assert.equal((await rawHttp(srv, { path: "/session", headers: { host: "agentgate.internal.evil.example" } })).status, 403);
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { headers: { host: `agentgate.internal:${srv.port}` }, origin: `http://agentgate.internal:${srv.port}` }), 101);
});

test("browser requests from a foreign origin are refused with 403; same-origin and no-Origin requests pass", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const s = await createSession(srv);
	const prompt = JSON.stringify({ parts: [{ type: "text", text: "echo from a web page" }] });
	const post = (headers, body = prompt) =>
		rawHttp(srv, { method: "POST", path: `/session/${s.id}/prompt_async`, headers: { "content-type": "application/json", ...headers }, body });
	assertError(await post({ origin: "http://evil.example" }), 403, "Forbidden", /Origin "http:\/\/evil\.example"/, "foreign Origin");
	assertError(await post({ origin: "null" }), 403, "Forbidden", /Origin "null"/, "opaque Origin");
	assertError(await post({ "sec-fetch-site": "cross-site" }), 403, "Forbidden", /cross-site/, "Sec-Fetch-Site: cross-site");
	assertError(await rawHttp(srv, { path: "/event", headers: { origin: "http://evil.example" } }), 403, "Forbidden", /Origin/, "SSE from a foreign Origin");
	assertError(await rawHttp(srv, { path: "/", headers: { "sec-fetch-site": "cross-site" } }), 403, "Forbidden", /cross-site/, "static file, cross-site");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { origin: "http://evil.example" }), 403, "WebSocket from a foreign Origin");
	assert.deepEqual(await getMessages(srv, s.id), [], "no prompt got through");
	assert.equal((await post({ origin: `http://127.0.0.1:${srv.port}`, "sec-fetch-site": "same-origin" })).status, 204, "same origin");
	assert.equal((await post({})).status, 204, "no Origin (curl)");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { origin: `http://127.0.0.1:${srv.port}` }), 101, "same-origin WebSocket");
});

test("JSON routes take only application/json bodies: text/plain and form bodies get 415 naming the type", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const s = await createSession(srv);
	const path = `/session/${s.id}/prompt_async`;
	const body = JSON.stringify({ parts: [{ type: "text", text: "echo sneaky" }] });
	for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp"]) {
		const r = await rawHttp(srv, { method: "POST", path, headers: { "content-type": type }, body });
		assertError(r, 415, "UnsupportedMediaType", new RegExp(type.split(";")[0].replace("/", "\\/")), type);
	}
	const none = await rawHttp(srv, { method: "POST", path, body });
	assertError(none, 415, "UnsupportedMediaType", /Content-Type/, "no Content-Type");
	const patch = await rawHttp(srv, { method: "PATCH", path: `/session/${s.id}`, headers: { "content-type": "text/plain" }, body: '{"title":"x"}' });
	assert.equal(patch.status, 415, "PATCH");
	assert.deepEqual(await getMessages(srv, s.id), [], "no prompt got through");
	const ok = await rawHttp(srv, { method: "POST", path, headers: { "content-type": "application/json; charset=utf-8" }, body });
	assert.equal(ok.status, 204, "application/json with a charset");
	const empty = await rawHttp(srv, { method: "POST", path: `/session/${s.id}/abort`, headers: { "content-length": "0" } });
	assert.equal(empty.status, 200, "an empty body needs no Content-Type");
});

test("the official SDK still works against the protected server", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const client = createOpencodeClient({ baseUrl: srv.url });
	const created = await client.session.create({ body: { title: "sdk" } });
	assert.equal(created.data?.title, "sdk", JSON.stringify(created.error));
	const list = await client.session.list();
	assert.equal(list.data?.length, 1);
});
