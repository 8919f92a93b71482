// The server never crashes on client input: seeded random HTTP requests (methods, paths,
// query strings, headers, bodies) and WebSocket frames against a live server, which must
// answer every one that it accepts and stay healthy. Deterministic (fixed seed).
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startServer, api, wsConnect } from "./lib.mjs";

const T = { timeout: 120_000 };

function rng(seed) {
	let x = seed >>> 0;
	return () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 4294967296);
}

const pick = (r, a) => a[Math.floor(r() * a.length)];
const junk = (r, n) => Array.from({ length: Math.floor(r() * n) }, () => String.fromCharCode(Math.floor(r() * 256))).join("");

function randomRequest(r) {
	const method = pick(r, ["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "HEAD", "BREW"]);
	const path = pick(r, ["/session", "/session/status", "/session/ses_x", "/session/ses_x/message", "/event",
		"/session/ses_x/prompt_async", "/session/ses_x/abort", "/agent", "/task/x", "/ws", "/", "/../x",
		"/%00", "/session/%ff%fe/message/..%2f", "/" + encodeURIComponent(junk(r, 40))]);
	const query = r() < 0.4 ? "?" + pick(r, ["sessionID=", "limit=", "since=", "roots=", "descendants="]) + encodeURIComponent(junk(r, 30)) : "";
	const bodies = ['{"parts":[{"type":"text","text":"echo x"}]}', '{"title":', "[]", "null", '{"parts":5}',
		'{"model":{"providerID":1}}', '{"policy":"sideways"}', junk(r, 200), "{".repeat(80)];
	const body = method === "GET" || method === "HEAD" ? "" : pick(r, bodies);
	const headers = [`Host: 127.0.0.1`, `Content-Length: ${Buffer.byteLength(body, "latin1")}`];
	if (r() < 0.3) headers.push(`X-${junk(r, 10).replace(/[^a-z]/gi, "a") || "a"}: ${junk(r, 50).replace(/[\r\n]/g, "")}`);
	if (r() < 0.2) headers.push("Last-Event-ID: " + pick(r, ["-1", "abc", "99999999999999999999", "0"]));
	return `${method} ${path}${query} HTTP/1.1\r\n${headers.join("\r\n")}\r\nConnection: close\r\n\r\n${body}`;
}

function send(port, raw) {
	return new Promise((resolve) => {
		const s = net.connect(port, "127.0.0.1");
		let got = "";
		const done = () => {
			s.destroy();
			resolve(got);
		};
		s.setTimeout(300, done); // SSE and held requests stay open: that is fine
		s.on("data", (d) => (got += d.toString("latin1")));
		s.on("error", done);
		s.on("close", done);
		s.write(Buffer.from(raw, "latin1"));
	});
}

test("random HTTP requests never take the server down", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const r = rng(12345);
	let answered = 0;
	for (let i = 0; i < 400; i++) {
		const out = await send(srv.port, randomRequest(r));
		if (out.startsWith("HTTP/1.1")) answered++;
		if (i % 100 === 99) assert.equal((await api(srv, "GET", "/global/health")).status, 200, `healthy after ${i + 1}`);
	}
	assert.ok(answered > 300, `most requests answered (${answered})`);
	assert.equal(srv.exitInfo, null, "still running");
});

test("random WebSocket frames never take the server down", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const r = rng(777);
	const ws = await wsConnect(srv.url.replace("http", "ws") + "/ws");
	t.after(() => ws.ws.close());
	const frames = ['{"jsonrpc":"2.0","id":"f1","method":"session.get","params":{"sessionID":5}}',
		'{"jsonrpc":"2.0","id":[],"method":"x"}', '{"jsonrpc":"1.0","id":"f2","method":"session.list"}',
		'{"jsonrpc":"2.0","id":"f3","method":"subscribe","params":{"since":"soon"}}',
		'{"jsonrpc":"2.0","id":"f4","method":"session.prompt","params":{"sessionID":"ses_x","parts":[{}]}}',
		'{"jsonrpc":"2.0","method":"session.create","params":[]}'];
	for (let i = 0; i < 300; i++) {
		const f = r() < 0.5 ? pick(r, frames) : junk(r, 300);
		ws.ws.send(r() < 0.1 ? Buffer.from(f, "latin1") : f);
	}
	const s = await ws.call("session.create", { title: "after the noise" });
	assert.equal(s.title, "after the noise");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200);
});
