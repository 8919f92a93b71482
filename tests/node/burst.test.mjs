// A burst of events reaches a WebSocket subscriber as completely as an SSE one: the
// WebSocket writer must not fall behind (and be cut off with 1008) where SSE keeps up.
// The readers here are lean (a regex per event, no waiters) so that the server's
// writers, not the test's parsing, decide who keeps up.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import WebSocket from "ws";
import { startServer, DEFAULT_CONFIG, createSession, promptAsync, deferred, withTimeout } from "./lib.mjs";

const T = { timeout: 120_000 };
const SESSIONS = 20;

/** Collects seqs until every session in ids has a session.idle; resolves {seqs}, rejects when the stream ends first. */
function collector(ids, label) {
	const seqs = [];
	const idle = new Set();
	const done = deferred();
	return {
		seqs,
		done: done.promise,
		add(text) {
			const seq = /"seq":(\d+)/.exec(text);
			if (seq) seqs.push(Number(seq[1]));
			if (text.includes('"type":"session.idle"')) {
				idle.add(/"sessionID":"([^"]+)"/.exec(text)?.[1]);
				if (ids.every((id) => idle.has(id))) done.resolve();
			}
		},
		end(why) {
			done.reject(new Error(`${label} ended before every session was idle (${seqs.length} events): ${why}`));
		},
	};
}

function sseReader(srv, c) {
	const ready = deferred();
	const req = http.get({ host: "127.0.0.1", port: srv.port, path: "/event", agent: false }, (res) => {
		let buf = "";
		res.setEncoding("utf8");
		res.on("data", (d) => {
			buf += d;
			const frames = buf.split("\n\n");
			buf = frames.pop();
			for (const f of frames) {
				if (f.includes("server.connected")) ready.resolve();
				else c.add(f);
			}
		});
		res.on("end", () => c.end("SSE closed"));
	});
	req.on("error", (e) => c.end(e.message));
	return { ready: ready.promise, close: () => req.destroy() };
}

function wsReader(srv, c) {
	const ready = deferred();
	const ws = new WebSocket(srv.wsUrl);
	ws.on("open", () => ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscribe", params: {} })));
	ws.on("message", (buf) => {
		const text = buf.toString();
		if (text.startsWith('{"jsonrpc":"2.0","id":1')) ready.resolve();
		else c.add(text);
	});
	ws.on("close", (code, reason) => c.end(`WS closed ${code} ${reason}`));
	ws.on("error", () => {});
	return { ready: ready.promise, close: () => ws.terminate() };
}

test("a WebSocket subscriber keeps up with a burst an SSE subscriber keeps up with", T, async (t) => {
	const srv = await startServer({ config: { ...DEFAULT_CONFIG, providers: { scripted: { pace_ms: 0 } } } });
	t.after(() => srv.stop());
	const ids = [];
	for (let i = 0; i < SESSIONS; i++) ids.push((await createSession(srv)).id);
	const viaSse = collector(ids, "SSE");
	const viaWs = collector(ids, "WebSocket");
	const sse = sseReader(srv, viaSse);
	const ws = wsReader(srv, viaWs);
	t.after(() => (sse.close(), ws.close()));
	await withTimeout(Promise.all([sse.ready, ws.ready]), 10000, "both subscribed");
	await Promise.all(ids.map((id) => promptAsync(srv, id, "long")));
	await withTimeout(Promise.all([viaSse.done, viaWs.done]), 60000, "every session idle on both");
	const last = Math.max(...viaSse.seqs);
	assert.ok(viaSse.seqs.length > 5000, `a burst (${viaSse.seqs.length} events)`);
	assert.equal(viaWs.seqs.filter((s) => s <= last).length, viaSse.seqs.length, "the WebSocket got every event SSE got");
});
