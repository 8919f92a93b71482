// HTTP edge: auth, Origin, bind safety, limits and errors, policies, static files,
// graceful shutdown.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
	startServer,
	runBin,
	freePort,
	api,
	apiOk,
	rawHttp,
	createSession,
	promptAsync,
	getMessages,
	pollUntil,
	sseSubscribe,
	SSEReader,
	wsConnect,
	wsUpgradeStatus,
	isSessionIdle,
	withTimeout,
	REPO,
	listenAddrs,
	isLoopbackHex,
} from "./lib.mjs";

const T = { timeout: 90_000 };
const basic = (user, pass) => "Basic " + Buffer.from(`${user}:${pass}`).toString("base64");

/** The documented error body: {name, message, data:{message}}. */
function assertError(r, status, name, label) {
	assert.equal(r.status, status, `${label}: status (body ${r.text?.slice(0, 300)})`);
	assert.ok(r.json, `${label}: JSON error body, got ${JSON.stringify(r.text?.slice(0, 200))}`);
	assert.equal(r.json.name, name, `${label}: name`);
	assert.equal(typeof r.json.message, "string", `${label}: message`);
	assert.ok(r.json.message.length > 0, `${label}: non-empty message`);
	assert.equal(r.json.data?.message, r.json.message, `${label}: data.message`);
	const ct = r.headers.get ? r.headers.get("content-type") : r.headers["content-type"];
	assert.match(ct ?? "", /^application\/json/, `${label}: content-type`);
}

async function plain(srv, p, headers = {}) {
	const r = await fetch(srv.url + p, { headers });
	const text = await r.text();
	let json;
	try {
		json = JSON.parse(text);
	} catch {}
	return { status: r.status, headers: r.headers, text, json };
}

test("auth: --token requires Bearer or Basic on every route and on the WS upgrade", T, async (t) => {
	const srv = await startServer({ args: ["--token", "s3cret"] });
	t.after(() => srv.stop());

	const none = await plain(srv, "/global/health");
	assertError(none, 401, "Unauthorized", "no credentials");
	assert.match(none.headers.get("www-authenticate") ?? "", /^Basic realm="agentgate"/);

	assert.equal((await plain(srv, "/global/health", { authorization: "Bearer s3cret" })).status, 200, "Bearer right");
	assert.equal((await plain(srv, "/global/health", { authorization: basic("anyone", "s3cret") })).status, 200, "Basic right");
	assert.equal((await plain(srv, "/global/health", { authorization: basic("", "s3cret") })).status, 200, "Basic, empty user");
	for (const [label, h] of [
		["Bearer wrong", "Bearer nope"],
		["Bearer prefix", "Bearer s3cre"],
		["Bearer longer", "Bearer s3cretX"],
		["Basic wrong", basic("anyone", "nope")],
		["Basic token as user", basic("s3cret", "")],
		["garbage", "s3cret"],
	]) {
		const r = await plain(srv, "/global/health", { authorization: h });
		assertError(r, 401, "Unauthorized", label);
		assert.match(r.headers.get("www-authenticate") ?? "", /Basic/, `${label}: WWW-Authenticate`);
	}
	for (const p of ["/session", "/agent", "/session/status", "/", "/nope"])
		assert.equal((await plain(srv, p)).status, 401, `${p} without credentials`);
	const post = await fetch(srv.url + "/session", { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
	assert.equal(post.status, 401, "POST /session without credentials");
	assert.equal((await fetch(srv.url + "/session", { method: "GET" }).then((r) => r.status)), 401);

	const ev = await SSEReader.open(`${srv.url}/event`);
	assert.equal(ev.status, 401, "SSE without credentials");
	const evOk = await SSEReader.open(`${srv.url}/event`, { headers: { authorization: basic("u", "s3cret") } });
	assert.equal(evOk.status, 200, "SSE with Basic");
	await evOk.close();

	assert.equal(await wsUpgradeStatus(srv.wsUrl), 401, "WS upgrade without token");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { headers: { authorization: "Bearer nope" } }), 401, "WS wrong token");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { headers: { authorization: "Bearer s3cret" } }), 101, "WS with Bearer");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { headers: { authorization: basic("u", "s3cret") } }), 101, "WS with Basic");
	const c = await wsConnect(srv.wsUrl, { headers: { authorization: "Bearer s3cret" } });
	assert.ok(Array.isArray(await c.call("session.list", {})));
	await c.close();
});

test("auth: AGENTGATE_TOKEN works like --token", T, async (t) => {
	const srv = await startServer({ env: { AGENTGATE_TOKEN: "from-env" } });
	t.after(() => srv.stop());
	assert.equal((await plain(srv, "/global/health")).status, 401);
	assert.equal((await plain(srv, "/global/health", { authorization: "Bearer from-env" })).status, 200);
});

test("WS Origin: foreign origins are refused with 403", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const own = `http://127.0.0.1:${srv.port}`;
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { origin: "http://evil.example" }), 403, "evil origin");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { origin: `http://evil.example:${srv.port}` }), 403, "evil origin, same port");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { origin: `http://127.0.0.1:${srv.port + 1}` }), 403, "other port");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { origin: "null" }), 403, "opaque origin");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { origin: own }), 101, "own origin");
	assert.equal(await wsUpgradeStatus(srv.wsUrl, { origin: `https://127.0.0.1:${srv.port}` }), 101, "own origin over https");
	assert.equal(await wsUpgradeStatus(srv.wsUrl), 101, "no Origin (not a browser)");
	const refused = await rawHttp(srv, {
		path: "/ws",
		headers: {
			connection: "Upgrade",
			upgrade: "websocket",
			"sec-websocket-version": "13",
			"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
			origin: "http://evil.example",
		},
	});
	assertError(refused, 403, "Forbidden", "403 body");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200);
});

test("bind: by default (and with --host 127.0.0.1) only loopback is listened on", T, async (t) => {
	// Read from the kernel's socket table, not by connecting to another address.
	for (const args of [[], ["--host", "127.0.0.1"]]) {
		const srv = await startServer({ args });
		try {
			const addrs = listenAddrs(srv.port);
			assert.ok(addrs.length > 0, "the listening socket is visible in /proc/net/tcp*");
			for (const a of addrs)
				assert.ok(isLoopbackHex(a), `serve ${args.join(" ") || "(no --host)"} listens on ${a} (/proc/net/tcp* hex), not only loopback`);
		} finally {
			await srv.stop();
		}
	}
});

test("bind: a non-loopback host needs --token or --insecure", T, async (t) => {
	const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-node-bind-"));
	t.after(() => fsp.rm(tmp, { recursive: true, force: true }));
	const port = await freePort();
	const r = await runBin(["serve", "--host", "0.0.0.0", "--port", String(port), "--data", tmp], { timeout: 10000 });
	assert.equal(r.timedOut, false, `it must refuse at start-up, not serve; output: ${r.stderr}`);
	assert.notEqual(r.code, 0, "non-zero exit");
	assert.match(r.stderr, /--token/, `stderr names --token: ${r.stderr}`);
	assert.match(r.stderr, /--insecure/, `stderr names --insecure: ${r.stderr}`);

	const ins = await startServer({ args: ["--host", "0.0.0.0", "--insecure"] });
	try {
		assert.equal((await api(ins, "GET", "/global/health")).status, 200, "--insecure starts (reached via 127.0.0.1)");
	} finally {
		const x = await ins.stop();
		assert.equal(x.code, 0);
	}
	const tok = await startServer({ args: ["--host", "0.0.0.0"], env: { AGENTGATE_TOKEN: "t0k" } });
	try {
		assert.equal((await plain(tok, "/global/health")).status, 401, "a token makes 0.0.0.0 fine, and it is enforced");
		assert.equal((await api(tok, "GET", "/global/health")).status, 200);
	} finally {
		await tok.stop();
	}
});

test("limits and errors: 413, 400, 404, 405, and the server keeps answering", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const post = (body, headers = { "content-type": "application/json" }) =>
		rawHttp(srv, { method: "POST", path: "/session", headers, body });

	const big = '{"title":"' + "a".repeat(1024 * 1024) + '"}';
	assertError(await post(big), 413, "PayloadTooLarge", "body over 1 MiB");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200, "healthy after 413");

	const malformed = await post('{"title": ');
	assertError(malformed, 400, "BadRequest", "malformed JSON");
	assert.match(malformed.json.message, /json|pars|syntax|malformed|unexpected|invalid/i, `names the problem: ${malformed.json.message}`);
	assertError(await post("{'title': 'x'}"), 400, "BadRequest", "single quotes");
	assertError(await post('{"title":"x"} trailing'), 400, "BadRequest", "trailing garbage");

	const deep = (n) => "[".repeat(n) + "]".repeat(n);
	assertError(await post(deep(100)), 400, "BadRequest", "nesting depth 100 (array)");
	assertError(await post(`{"title":"deep","metadata":${deep(100)}}`), 400, "BadRequest", "nesting depth 100 inside an object");
	assertError(await post(deep(100000)), 400, "BadRequest", "nesting depth 100000");
	const shallow = await post(`{"title":"shallow","metadata":{"k":${deep(10)}}}`);
	assert.equal(shallow.status, 200, `nesting depth 12 is fine (unknown fields ignored): ${shallow.text.slice(0, 200)}`);

	const wrongType = await post('{"title": 5}');
	assertError(wrongType, 400, "BadRequest", "title: 5");
	assert.match(wrongType.json.message, /title/, `names the field: ${wrongType.json.message}`);
	const wrongParent = await post('{"parentID": 5}');
	assertError(wrongParent, 400, "BadRequest", "parentID: 5");
	assert.match(wrongParent.json.message, /parentID/);
	assertError(await post("[]"), 400, "BadRequest", "an array body");
	assertError(await post('"x"'), 400, "BadRequest", "a string body");

	const s = await createSession(srv, {});
	const p = (body) => api(srv, "POST", `/session/${s.id}/prompt_async`, body);
	assertError(await p({}), 400, "BadRequest", "prompt without parts");
	assertError(await p({ parts: "x" }), 400, "BadRequest", "parts not an array");
	assertError(await p({ parts: [{ type: "text", text: "hi" }], policy: "sometimes" }), 400, "BadRequest", "unknown policy");
	const badModel = await p({ parts: [{ type: "text", text: "hi" }], model: { providerID: "scripted", modelID: "nope" } });
	assert.ok([400, 404].includes(badModel.status), `unknown model → 400/404, got ${badModel.status}`);

	assertError(await api(srv, "GET", "/nope"), 404, "NotFoundError", "unknown route");
	assertError(await api(srv, "GET", `/session/${s.id}/bogus`), 404, "NotFoundError", "unknown sub-route");
	assertError(await api(srv, "GET", "/session/ses_unknown"), 404, "NotFoundError", "unknown session");
	assertError(await api(srv, "POST", "/session/ses_unknown/prompt_async", { parts: [{ type: "text", text: "x" }] }), 404, "NotFoundError", "prompt to unknown session");
	assertError(await api(srv, "GET", `/session/${s.id}/message/msg_unknown`), 404, "NotFoundError", "unknown message");
	assertError(await api(srv, "DELETE", "/session/ses_unknown"), 404, "NotFoundError", "delete unknown session");

	const put = await api(srv, "PUT", "/session", {});
	assertError(put, 405, "MethodNotAllowed", "PUT /session");
	const allow = (put.headers.get("allow") ?? "").toUpperCase();
	assert.ok(allow.includes("GET") && allow.includes("POST"), `Allow lists GET and POST: "${allow}"`);
	const del = await api(srv, "DELETE", "/global/health");
	assertError(del, 405, "MethodNotAllowed", "DELETE /global/health");
	assert.match(del.headers.get("allow") ?? "", /GET/);

	assert.equal((await api(srv, "GET", "/global/health")).status, 200, "still healthy");
	assert.equal((await createSession(srv, { title: "after the abuse" })).title, "after the abuse");
});

test("POST with an empty body (Content-Length: 0, no Content-Type, as the SDK sends) on a keep-alive connection", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const empty = await rawHttp(srv, { method: "POST", path: "/session", headers: { "content-length": "0" } });
	assert.equal(empty.status, 200, "POST /session with an empty body creates a session");
	assert.match(empty.json?.id ?? "", /^ses_/, `a Session JSON body, got ${JSON.stringify(empty.text.slice(0, 120))}`);
	assert.equal(Number(empty.headers["content-length"]), Buffer.byteLength(empty.text), "Content-Length matches the body");
	// Through fetch's keep-alive pool: the next response on the same connection must be intact.
	for (let i = 0; i < 3; i++) {
		const r = await fetch(`${srv.url}/session`, { method: "POST" });
		const text = await r.text();
		assert.equal(r.status, 200);
		assert.doesNotThrow(() => JSON.parse(text), `POST ${i}: body is JSON, got ${JSON.stringify(text.slice(0, 80))}`);
		const h = await fetch(`${srv.url}/global/health`);
		assert.deepEqual(await h.json().catch((e) => String(e)), { healthy: true, version: (await api(srv, "GET", "/global/health")).json.version });
	}
});

// libwebsockets 4.1 does not deliver chunked request bodies, so the server refuses them
// at once with 411 and a message saying what to send instead (docs/API.md), whatever
// their size, rather than hanging or dropping the connection.
test("limits: a chunked request body gets 411 naming Content-Length", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const small = await rawHttp(srv, {
		method: "POST",
		path: "/session",
		headers: { "content-type": "application/json" },
		body: '{"title":"chunked"}',
		chunked: true,
		timeout: 10000,
	});
	assertError(small, 411, "LengthRequired", "small chunked body");
	assert.match(small.json.message, /Content-Length/);
	// A client still sending a large body when the 411 arrives may see the connection
	// close under it (the server does not read a body it refused); the server stays up.
	const big = '{"title":"' + "a".repeat(2 * 1024 * 1024) + '"}';
	const r = await rawHttp(srv, { method: "POST", path: "/session", headers: { "content-type": "application/json" }, body: big, chunked: true, timeout: 10000 }).catch((e) => e);
	if (r instanceof Error) assert.match(r.code ?? r.message, /EPIPE|ECONNRESET/);
	else assertError(r, 411, "LengthRequired", "chunked over 1 MiB");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200);
});

test("limits: a declared Content-Length over 1 MiB → 413 without waiting for the body", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const r = await rawHttp(srv, {
		method: "POST",
		path: "/session",
		headers: { "content-type": "application/json", "content-length": String(8 << 20) },
		timeout: 10000,
	});
	assertError(r, 413, "PayloadTooLarge", "Content-Length: 8 MiB, no body sent");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200);
});

test("policies: reject → 409 while busy, interrupt aborts the running turn", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const s = await createSession(srv);
	const all = await sseSubscribe(srv, `?sessionID=${s.id}`);
	t.after(() => all.close());
	await promptAsync(srv, s.id, "sleep 30000");
	const body = (text, policy) => ({ parts: [{ type: "text", text }], policy });
	assertError(await api(srv, "POST", `/session/${s.id}/prompt_async`, body("echo no", "reject")), 409, "SessionBusyError", "prompt_async reject");
	assertError(await api(srv, "POST", `/session/${s.id}/message`, body("echo no", "reject")), 409, "SessionBusyError", "message reject");

	// interrupt: the sleeping turn ends aborted, the new prompt runs.
	await apiOk(srv, "POST", `/session/${s.id}/prompt_async`, body("echo after", "interrupt"), 204);
	await all.waitFor(isSessionIdle(s.id), { timeout: 20000, label: "idle after the interrupting prompt" });
	const msgs = await getMessages(srv, s.id);
	const users = msgs.filter((m) => m.info.role === "user");
	assert.equal(users.length, 2, "the rejected prompts left no message");
	const replyTo = (u) => msgs.filter((m) => m.info.role === "assistant" && m.info.parentID === u.info.id && m.info.finish !== "tool-calls");
	const first = replyTo(users[0]);
	assert.equal(first.length, 1, "one terminal reply for the interrupted turn");
	assert.equal(first[0].info.error?.name, "MessageAbortedError", `interrupted reply: ${JSON.stringify(first[0].info.error)}`);
	const second = replyTo(users[1]);
	assert.equal(second.length, 1);
	assert.ok(second[0].parts.some((p) => p.type === "text" && p.text.includes("The echo tool returned: after")));

	const ok = await api(srv, "POST", `/session/${s.id}/prompt_async`, body("echo idle now", "reject"));
	assert.equal(ok.status, 204, "reject is fine when idle");
});

test("static files: index, content types, cache headers, no traversal", T, async (t) => {
	const root = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-node-web-"));
	t.after(() => fsp.rm(root, { recursive: true, force: true }));
	const web = path.join(root, "web");
	await fsp.mkdir(path.join(web, "sub"), { recursive: true });
	const index = "<!doctype html><title>agentgate test</title><p>index</p>";
	await fsp.writeFile(path.join(web, "index.html"), index);
	await fsp.writeFile(path.join(web, "app.js"), "console.log('app');\n");
	await fsp.writeFile(path.join(web, "style.css"), "body{color:black}\n");
	await fsp.writeFile(path.join(web, "sub", "x.svg"), '<svg xmlns="http://www.w3.org/2000/svg"/>');
	await fsp.writeFile(path.join(root, "secret.txt"), "TOPSECRET\n");
	const srv = await startServer({ args: ["--web", web] });
	t.after(() => srv.stop());

	const home = await rawHttp(srv, { path: "/" });
	assert.equal(home.status, 200);
	assert.match(home.headers["content-type"] ?? "", /^text\/html/);
	assert.equal(home.text, index);
	const idx = await rawHttp(srv, { path: "/index.html" });
	assert.equal(idx.status, 200);
	assert.match(idx.headers["content-type"] ?? "", /^text\/html/);

	for (const [p, type] of [
		["/app.js", /^(text|application)\/javascript/],
		["/style.css", /^text\/css/],
		["/sub/x.svg", /^image\/svg\+xml/],
	]) {
		const r = await rawHttp(srv, { path: p });
		assert.equal(r.status, 200, p);
		assert.match(r.headers["content-type"] ?? "", type, `${p} content-type`);
		assert.ok(r.headers["cache-control"], `${p} has Cache-Control`);
	}
	assert.equal((await rawHttp(srv, { path: "/missing.js" })).status, 404);

	for (const p of [
		"/../../etc/passwd",
		"/%2e%2e/%2e%2e/etc/passwd",
		"/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
		"/..%2f..%2f..%2f..%2fetc/passwd",
		"/../secret.txt",
		"/%2e%2e/secret.txt",
		"/sub/../../secret.txt",
		"/sub/%2e%2e/%2e%2e/secret.txt",
		"/..%5csecret.txt",
		"//etc/passwd",
		"/%2fetc%2fpasswd",
	]) {
		const r = await rawHttp(srv, { path: p });
		assert.ok(!/root:|TOPSECRET/.test(r.text), `${p} must never return file contents`);
		assert.equal(r.status, 404, `${p} → 404 (got ${r.status})`);
	}
	// A NUL in the path is malformed: 404/400, or the connection closed without an answer.
	const nul = await rawHttp(srv, { path: "/index.html%00.js" }).catch((e) => ({ status: 0, text: "", error: e }));
	assert.ok([0, 400, 404].includes(nul.status), `%00 path → ${nul.status}`);
	assert.ok(!/agentgate test/.test(nul.text), "%00 does not truncate the path to index.html");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200);
});

test("static files: the repository's web/index.html is served at / by default", T, async (t) => {
	assert.ok(fs.existsSync(path.join(REPO, "web", "index.html")), "web/index.html exists in the repository");
	const srv = await startServer();
	t.after(() => srv.stop());
	const r = await rawHttp(srv, { path: "/" });
	assert.equal(r.status, 200);
	assert.match(r.headers["content-type"] ?? "", /^text\/html/);
	assert.match(r.text, /<html|<!doctype/i);
});

test("graceful shutdown: SSE clients get server.shutdown, WS clients are closed, exit 0", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const s = await createSession(srv);
	const sse = await sseSubscribe(srv, "");
	const ws = await wsConnect(srv.wsUrl);
	await ws.call("subscribe", {});
	await promptAsync(srv, s.id, "echo before shutdown");
	await sse.waitFor(isSessionIdle(s.id), { label: "idle before shutdown" });

	const exit = srv.kill("SIGTERM");
	await sse.waitEnd(10000);
	const last = sse.frames.at(-1)?.json;
	assert.equal(last?.type, "server.shutdown", `the last SSE event: ${JSON.stringify(last)}`);
	assert.ok(!sse.error, `the stream ended cleanly (${sse.error?.message})`);
	const closed = await ws.closed(10000);
	assert.ok(closed.code !== 1006, `WS closed with a close frame (got ${closed.code} ${closed.reason})`);
	const x = await exit;
	assert.equal(x.signal, null, "not killed by the signal");
	assert.equal(x.code, 0, "exit code 0");
});
