// web/src/client.js on its own, in Node (the `ws` package as its WebSocket), against a real
// serve: requests and errors, resume from the last seq across a server restart with
// nothing missed or doubled, resync against a server that lost its log, timeouts.
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { AgentgateClient, RpcError } from "../../web/src/client.js";
import { promptAsync, startServer, createSession, pollUntil, freePort } from "./lib.mjs";

const T = { timeout: 60000 };

function recorder(c) {
	const r = { events: [], ready: [], resync: [], states: [] };
	c.on("event", (e) => r.events.push(e));
	c.on("ready", (x) => r.ready.push(x));
	c.on("resync", (x) => r.resync.push(x));
	c.on("state", (s) => r.states.push(s.status));
	return r;
}

const client = (srv, opts = {}) => new AgentgateClient({ url: srv.wsUrl, WebSocket, backoff: { min: 50, max: 400 }, ...opts });

test("client: requests with ids, JSON-RPC errors as RpcError, calls made before the connection wait for it", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const c = client(srv);
	t.after(() => c.close());
	c.connect();
	// made while still connecting: sent once open
	const [a, b] = await Promise.all([c.call("session.create", { title: "one" }), c.call("session.create", { title: "two" })]);
	assert.equal(a.title, "one");
	assert.equal(b.title, "two");
	await assert.rejects(c.call("session.get", { sessionID: "ses_nope" }), (e) => e instanceof RpcError && e.code === -32004 && /ses_nope/.test(e.rpcMessage));
	await assert.rejects(c.call("no.such.method"), (e) => e instanceof RpcError && e.code === -32601);
	assert.equal(c.status, "open");
});

test("client: after the server restarts it resumes from the last seq — every event once, in order, none missed", T, async (t) => {
	let srv = await startServer();
	const { port, dir } = srv;
	t.after(() => srv.stop());
	const c = client(srv);
	t.after(() => c.close());
	const r = recorder(c);
	c.subscribe({});
	c.connect();
	await pollUntil(() => r.ready.length === 1, { label: "ready" });
	assert.equal(r.ready[0].resumed, false);
	const s = await c.call("session.create", {});
	await c.call("session.prompt_async", { sessionID: s.id, text: "echo before" });
	await pollUntil(() => r.events.some((e) => e.type === "session.idle" && e.sessionID === s.id), { label: "first turn idle" });
	const seenBefore = r.events.length;
	await srv.kill("SIGKILL");
	await pollUntil(() => c.status === "waiting", { label: "the client noticing" });
	// while the client is away, another client's prompt runs on the restarted server
	srv = await startServer({ dir, port });
	await promptAsync(srv, s.id, "echo while away");
	await pollUntil(() => r.ready.length === 2, { label: "reconnected", timeout: 15000 });
	assert.equal(r.ready[1].resumed, true, "resumed, not reloaded");
	await pollUntil(() => r.events.slice(seenBefore).some((e) => e.type === "message.part.updated" && /echo tool returned: while away/.test(e.properties?.part?.text || "")), {
		label: "the missed reply, replayed or live",
		timeout: 15000,
	});
	const seqs = r.events.map((e) => e.seq);
	for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq ${seqs[i]} after ${seqs[i - 1]}: in order, never twice`);
	assert.equal(r.resync.length, 0);
	assert.ok(r.states.includes("waiting") && r.states.at(-1) === "open");
});

test("client: a server that lost its log (a new data directory) makes it reload: ready with resumed false", T, async (t) => {
	const port = await freePort();
	let srv = await startServer({ port });
	t.after(() => srv.stop());
	const c = client(srv);
	t.after(() => c.close());
	const r = recorder(c);
	c.subscribe({});
	c.connect();
	await pollUntil(() => r.ready.length === 1, { label: "ready" });
	const s = await createSession(srv);
	for (let i = 0; i < 3; i++) await promptAsync(srv, s.id, `echo ${i}`);
	await pollUntil(() => r.events.filter((e) => e.type === "session.idle").length >= 1 && c.lastSeq > 20, { label: "events" });
	await srv.stop();
	srv = await startServer({ port }); // fresh data: its seq starts over
	await pollUntil(() => r.ready.length === 2, { label: "reconnected", timeout: 15000 });
	assert.equal(r.ready[1].resumed, false, "told to reload");
	assert.ok(c.lastSeq < 20, `the client follows the new server's numbering (${c.lastSeq})`);
});

test("client: a request times out on its own; close() fails what is pending and stops reconnecting", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const c = client(srv);
	c.connect();
	const s = await c.call("session.create", {});
	// a prompt held until its turn ends (2 s) against a 200 ms timeout
	await assert.rejects(c.call("session.prompt", { sessionID: s.id, text: "sleep 2000", wait: true }, { timeout: 200 }), /no response within 200 ms/);
	assert.equal(c.status, "open", "a timeout is the request's, not the connection's");
	const slow = c.call("session.list", {}, { timeout: 5000 });
	c.close();
	await assert.rejects(slow, /client closed/);
	await assert.rejects(c.call("session.list", {}), /not connected/);
	assert.equal(c.status, "closed");
});
