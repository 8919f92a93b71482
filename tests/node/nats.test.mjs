// `agentgate serve --bus nats://` through the real binary, against a nats-server and a
// PostgreSQL server the test starts (nats.mjs, pg.mjs): a turn's events come back
// through JetStream with the stream's seqs, GET /global/health and /metrics report the
// bus, a client resumes from seq 0, nats-server stopped under a running gateway holds
// the events until it is back, and a SQLite store is refused.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
	startServer, DEFAULT_CONFIG, apiOk, sseSubscribe, createSession, promptAsync, pollUntil,
	isSessionIdle, runBin, freePort, seqList, firstNonIncreasing, firstGap,
} from "./lib.mjs";
import { startPostgres } from "./pg.mjs";
import { startNats, natsInstalled } from "./nats.mjs";

const T = { timeout: 120_000, skip: natsInstalled() ? false : "nats-server is not installed (Debian: nats-server)" };
let pg, nats;
let ndb = 0;

before(async () => {
	if (!natsInstalled()) return;
	pg = await startPostgres();
	nats = await startNats();
});
after(async () => {
	await nats?.destroy();
	await pg?.destroy();
});

const freshDb = () => pg.createdb(`nats${++ndb}`);

const health = async (srv) => (await apiOk(srv, "GET", "/global/health")).bus;

const metric = async (srv, name) => {
	const r = await fetch(`${srv.url}/metrics`);
	const line = (await r.text()).split("\n").find((l) => l.startsWith(`${name} `));
	return line ? Number(line.split(" ")[1]) : undefined;
};

test("serve --bus nats:// on PostgreSQL: a turn's events come back through JetStream in seq order, health and metrics say so, a resume from 0 replays them", T, async (t) => {
	const srv = await startServer({ args: ["--store", freshDb(), "--bus", nats.url] });
	t.after(() => srv.stop());
	await pollUntil(async () => (await health(srv))?.connected, { label: "bus connected", timeout: 15000 });
	assert.deepEqual(await health(srv), { kind: "nats", url: nats.url, connected: true });
	const s = await createSession(srv, { title: "on nats" });
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
	t.after(() => sse.close());
	await promptAsync(srv, s.id, "echo through jetstream");
	await sse.until((x) => x.events.some((f) => isSessionIdle(s.id)(f.json)), { label: "idle", timeout: 30000 });
	const seqs = seqList(sse.events);
	assert.equal(firstNonIncreasing(seqs), -1, `seqs increase: ${seqs}`);
	for (const f of sse.events) assert.equal(f.json.seq, f.seq, "the JSON's seq is the SSE id");
	assert.ok(sse.events.some((f) => f.type === "message.part.delta" || f.type === "message.part.updated"));
	await pollUntil(async () => (await metric(srv, "agentgate_nats_events_published_total")) >= seqs.length,
		{ label: "acks counted" });
	assert.equal(await metric(srv, "agentgate_nats_connected"), 1);
	assert.equal(await metric(srv, "agentgate_nats_events_dropped_total"), 0);
	assert.equal(await metric(srv, "agentgate_nats_events_pending_bytes"), 0);
	// every event of the stream since its start, the session's among them, in order
	const all = await sseSubscribe(srv, `?sessionID=${s.id}`, { headers: { "last-event-id": "0" } });
	t.after(() => all.close());
	await all.until((x) => x.events.some((f) => f.seq >= seqs.at(-1)), { label: "replay from 0" });
	assert.deepEqual(seqList(all.events).filter((q) => q >= seqs[0] && q <= seqs.at(-1)), seqs);
});

test("nats-server stopped under a running gateway: prompts are still accepted, health names the outage, the events arrive in order once it is back", T, async (t) => {
	const srv = await startServer({ args: ["--store", freshDb(), "--bus", nats.url] });
	t.after(() => srv.stop());
	await pollUntil(async () => (await health(srv))?.connected, { label: "bus connected", timeout: 15000 });
	const s = await createSession(srv);
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
	t.after(() => sse.close());
	await nats.stop();
	await pollUntil(async () => (await health(srv))?.connected === false, { label: "bus down" });
	const h = await health(srv);
	assert.match(h.error, new RegExp(`NATS at ${nats.url}`));
	assert.equal(await metric(srv, "agentgate_nats_connected"), 0);
	await promptAsync(srv, s.id, "echo while nats is away"); // the store takes it
	await pollUntil(async () => (await metric(srv, "agentgate_nats_events_pending_bytes")) > 0,
		{ label: "events wait" });
	assert.ok(!sse.events.some((f) => isSessionIdle(s.id)(f.json)));
	await nats.start();
	await sse.until((x) => x.events.some((f) => isSessionIdle(s.id)(f.json)), { label: "idle after NATS is back", timeout: 60000 });
	const seqs = seqList(sse.events);
	assert.equal(firstNonIncreasing(seqs), -1, `seqs increase: ${seqs}`);
	assert.equal(firstGap(seqs), -1, `no gap: ${seqs}`);
	assert.ok(!sse.events.some((f) => f.type === "resync"));
	assert.equal(await metric(srv, "agentgate_nats_events_dropped_total"), 0);
});

test("--bus nats:// with a SQLite store is refused at start; --bus is in serve --help", T, async () => {
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-nats-sqlite-"));
	const r = await runBin(["serve", "--port", String(await freePort()), "--data", dir, "--bus", nats.url]);
	await fsp.rm(dir, { recursive: true, force: true });
	assert.equal(r.code, 2, r.stderr);
	assert.match(r.stderr, /--bus nats:\/\/ needs --store postgres:\/\/: nodes share the store/);
	const help = await runBin(["serve", "--help"]);
	assert.match(help.stdout, /--bus nats:\/\/HOST:PORT/);
});
