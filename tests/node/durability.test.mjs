// The server binary when its disk fails and when it is killed: what HTTP clients are
// told, and what a client resuming its event stream after a `kill -9` receives. The disk
// failures come from the store's fault-injecting VFS (AGENTGATE_STORE_FAULTS=FILE: the
// file's content, "full" / "slow MS", applies to every write of the database).
import { test } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
	startServer, DEFAULT_CONFIG, api, apiOk, sseSubscribe, createSession, promptAsync, pollUntil,
	getMessages, isSessionIdle,
} from "./lib.mjs";

const T = { timeout: 60_000 };
const PACED = { ...DEFAULT_CONFIG, providers: { scripted: { pace_ms: 3 } } };

// A session streaming a long reply, watched by an SSE subscriber that has seen it start.
async function streaming(t, srv) {
	const s = await createSession(srv);
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
	t.after(() => sse.close());
	await promptAsync(srv, s.id, "long");
	await sse.waitFor((e) => e.type === "message.part.delta", { label: "first delta" });
	return { s, sse };
}

const idleSeen = (sse, id) =>
	sse.until((x) => x.events.some((f) => isSessionIdle(id)(f.json)), { label: "idle", timeout: 30000 });

async function faultyServer(t, config = PACED) {
	const control = path.join(await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-faults-")), "disk");
	const srv = await startServer({ config, env: { AGENTGATE_STORE_FAULTS: control } });
	t.after(() => srv.stop());
	const disk = (mode) => (mode ? fsp.writeFile(control, mode) : fsp.rm(control, { force: true }));
	return { srv, disk };
}

test("a full disk: 503 naming the reason for prompts, sessions and health; nothing acknowledged is lost once it clears", T, async (t) => {
	const { srv, disk } = await faultyServer(t);
	const { s, sse } = await streaming(t, srv);
	await disk("full");
	// the next commit fails; from then on durable requests are refused with the reason
	const health = await pollUntil(async () => {
		const r = await api(srv, "GET", "/global/health");
		return r.status === 503 ? r : null;
	}, { label: "health 503" });
	assert.equal(health.json.name, "ServiceUnavailable");
	assert.match(health.json.message, /store cannot write.*full/);
	for (const [method, p, body] of [
		["POST", "/session", {}],
		["POST", `/session/${s.id}/prompt_async`, { parts: [{ type: "text", text: "echo refused" }] }],
		["PATCH", `/session/${s.id}`, { title: "refused" }],
	]) {
		const r = await api(srv, method, p, body);
		assert.equal(r.status, 503, `${method} ${p}`);
		assert.match(r.json.message, /the store cannot write .*full.* was not accepted/);
	}
	await disk(null);
	await idleSeen(sse, s.id);
	await pollUntil(async () => (await api(srv, "GET", "/global/health")).status === 200, { label: "healthy again", timeout: 15000 });
	// a restart reads everything back: the reply that streamed while the disk was full
	const dir = srv.dir;
	await srv.stop({ keepDir: true });
	const again = await startServer({ config: PACED, dir });
	t.after(() => again.stop());
	const msgs = await getMessages(again, s.id);
	assert.equal(msgs.length, 2);
	assert.equal(msgs[1].info.finish, "stop");
	const text = msgs[1].parts.filter((p) => p.type === "text").map((p) => p.text).join("");
	assert.ok(text.length > 1000, `the whole reply is stored (${text.length} chars)`);
	const sessions = await apiOk(again, "GET", "/session");
	assert.equal(sessions.length, 1);
	assert.notEqual(sessions[0].title, "refused");
});

test("a frozen disk: the health check and the event stream keep answering; durable requests are refused, not hung", T, async (t) => {
	const { srv, disk } = await faultyServer(t);
	const { s, sse } = await streaming(t, srv);
	await disk("slow 1000");
	const slow = await pollUntil(async () => {
		const r = await api(srv, "GET", "/global/health", undefined, { timeout: 5000 });
		return r.status === 503 && /disk is slow/.test(r.json.message) ? r : null;
	}, { label: "health says the disk is slow" });
	assert.equal(slow.json.name, "ServiceUnavailable");
	// deltas keep coming while commits wait for the disk
	const n = sse.events.length;
	await sse.until((x) => x.events.length > n + 20, { label: "deltas during the freeze", timeout: 5000 });
	const r = await api(srv, "POST", `/session/${s.id}/prompt_async`, { parts: [{ type: "text", text: "echo frozen" }] }, { timeout: 5000 });
	assert.equal(r.status, 503);
	assert.match(r.json.message, /disk is slow/);
	await disk(null);
	await idleSeen(sse, s.id);
	await pollUntil(async () => (await api(srv, "GET", "/global/health")).status === 200, { label: "healthy again", timeout: 20000 });
});

test("kill -9 mid-stream: a client resuming with Last-Event-ID gets the recovery events, with seqs above all it saw, and the log ends idle", T, async (t) => {
	const srv = await startServer({ config: PACED });
	const dir = srv.dir;
	const s = await createSession(srv);
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
	await promptAsync(srv, s.id, "long");
	await sse.until((x) => x.events.filter((f) => f.type === "message.part.delta").length >= 50, { label: "50 deltas" });
	await srv.kill("SIGKILL");
	await sse.close();
	const seen = sse.events.map((f) => f.seq);
	const last = Math.max(...seen);

	const again = await startServer({ config: PACED, dir });
	t.after(() => again.stop());
	const resumed = await sseSubscribe(again, `?sessionID=${s.id}`, { headers: { "last-event-id": String(last) } });
	t.after(() => resumed.close());
	await resumed.until((x) => x.events.some((f) => isSessionIdle(s.id)(f.json)), { label: "recovery reaches idle" });
	const got = resumed.events;
	for (const f of got) assert.ok(f.seq > last, `seq ${f.seq} (${f.type}) was above every seq seen before the kill (${last})`);
	const types = got.map((f) => f.type);
	assert.ok(types.includes("session.error"), types.join(" "));
	const error = got.find((f) => f.type === "session.error").json;
	assert.match(JSON.stringify(error.properties.error), /interrupted/);
	const statuses = got.filter((f) => f.type === "session.status").map((f) => f.json.properties.status.type);
	assert.equal(statuses.at(-1), "idle");
	// replaying the whole stored log of the session ends idle too
	const all = await sseSubscribe(again, `?sessionID=${s.id}`, { headers: { "last-event-id": "0" } });
	t.after(() => all.close());
	await all.until((x) => x.events.some((f) => f.seq >= got.at(-1).seq), { label: "full replay" });
	const st = all.events.filter((f) => f.type === "session.status").map((f) => f.json.properties.status.type);
	assert.equal(st.at(-1), "idle");
	// and nothing ran twice: one user message, one terminal reply, "interrupted"
	const msgs = await getMessages(again, s.id);
	assert.equal(msgs.length, 2);
	assert.equal(msgs[1].info.finish, "error");
});
