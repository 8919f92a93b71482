// The gateway on PostgreSQL (--store postgres://..., or "store" in the config), through
// the real binary against a real server the test starts (pg.mjs): a prompt and a
// restart that reads it all back from the database (with a fresh data directory), kill
// -9 mid-turn with a prompt queued, PostgreSQL stopped for a few seconds under a running
// gateway, and a second gateway refused on the same database.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
	startServer, DEFAULT_CONFIG, api, apiOk, sseSubscribe, createSession, promptAsync, pollUntil,
	getMessages, isSessionIdle, runBin, freePort,
} from "./lib.mjs";
import { startPostgres } from "./pg.mjs";

const T = { timeout: 90_000 };
const PACED = { ...DEFAULT_CONFIG, providers: { scripted: { pace_ms: 3 } } };
let pg;
let ndb = 0;

before(async () => {
	pg = await startPostgres();
});
after(async () => {
	await pg?.destroy();
});

const freshDb = () => {
	const name = `e2e${++ndb}`;
	return { name, url: pg.createdb(name) };
};

const idleSeen = (sse, id) =>
	sse.until((x) => x.events.some((f) => isSessionIdle(id)(f.json)), { label: "idle", timeout: 30000 });

const texts = (msg) => msg.parts.filter((p) => p.type === "text").map((p) => p.text).join("");

/** What PostgreSQL holds once the gateway's next commit (≤ STORE_COMMIT_MS) has run. */
const committed = (db, sql, expected) =>
	pollUntil(() => JSON.stringify(pg.query(db, sql)) === JSON.stringify(expected),
		{ label: `${sql} → ${JSON.stringify(expected)}`, timeout: 10000 });

test("a prompt on PostgreSQL is stored there: a restart with another data directory reads it all back", T, async (t) => {
	const db = freshDb();
	const srv = await startServer({ args: ["--store", db.url] });
	t.after(() => srv.stop());
	const s = await createSession(srv, { title: "on postgres" });
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
	t.after(() => sse.close());
	await promptAsync(srv, s.id, "echo stored in postgres");
	await idleSeen(sse, s.id);
	const before = await getMessages(srv, s.id);
	assert.equal(before[0].info.role, "user");
	assert.match(texts(before.at(-1)), /stored in postgres/);
	// the rows are PostgreSQL's, written by the gateway's commits
	assert.deepEqual(pg.query(db.name, `SELECT count(*) FROM session WHERE id = '${s.id}'`), ["1"]);
	await committed(db.name, `SELECT state FROM turn WHERE session_id = '${s.id}'`, ["completed"]);
	const lastSeq = Math.max(...sse.events.map((f) => f.seq));
	await srv.stop();

	// the config's "store" this time, and a data directory that never saw the session
	const again = await startServer({ config: { ...PACED, store: db.url } });
	t.after(() => again.stop());
	const after = await getMessages(again, s.id);
	assert.deepEqual(after.map((m) => m.info.id), before.map((m) => m.info.id));
	assert.match(texts(after.at(-1)), /stored in postgres/);
	const sessions = await apiOk(again, "GET", "/session");
	assert.deepEqual(sessions.map((x) => x.title), ["on postgres"]);
	// numbering goes on above every seq handed out before (the reservation is stored too)
	const sse2 = await sseSubscribe(again, `?sessionID=${s.id}`);
	t.after(() => sse2.close());
	await promptAsync(again, s.id, "echo again");
	await idleSeen(sse2, s.id);
	assert.ok(sse2.events.every((f) => f.seq > lastSeq), `seqs after the restart are above ${lastSeq}`);
	// and the whole log replays from the database
	const all = await sseSubscribe(again, `?sessionID=${s.id}`, { headers: { "last-event-id": "0" } });
	t.after(() => all.close());
	await all.until((x) => x.events.some((f) => f.seq >= lastSeq), { label: "replay of the first turn" });
});

test("kill -9 mid-turn on PostgreSQL: the restart fails the running turn as interrupted, runs the queued one, and a resuming client sees no seq twice", T, async (t) => {
	const db = freshDb();
	const srv = await startServer({ config: PACED, args: ["--store", db.url] });
	const s = await createSession(srv);
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
	await promptAsync(srv, s.id, "long");
	await promptAsync(srv, s.id, "echo queued behind the long one");
	await sse.until((x) => x.events.filter((f) => f.type === "message.part.delta").length >= 50, { label: "50 deltas" });
	await srv.kill("SIGKILL");
	await sse.close();
	await srv.stop().catch(() => {}); /* removes its directory; the SIGKILL was ours */
	const last = Math.max(...sse.events.map((f) => f.seq));
	assert.deepEqual(pg.query(db.name, `SELECT state FROM turn WHERE session_id = '${s.id}' ORDER BY id`), ["running", "queued"]);

	const again = await startServer({ config: PACED, args: ["--store", db.url] });
	t.after(() => again.stop());
	const resumed = await sseSubscribe(again, `?sessionID=${s.id}`, { headers: { "last-event-id": String(last) } });
	t.after(() => resumed.close());
	await pollUntil(() => pg.query(db.name, `SELECT count(*) FROM turn WHERE session_id = '${s.id}' AND state IN ('queued', 'running')`)[0] === "0",
		{ label: "no turn left queued or running", timeout: 30000 });
	await resumed.until((x) => x.events.some((f) => isSessionIdle(s.id)(f.json)), { label: "idle after recovery" });
	for (const f of resumed.events) assert.ok(f.seq > last, `seq ${f.seq} (${f.type}) is above every seq seen before the kill (${last})`);
	const error = resumed.events.find((f) => f.type === "session.error");
	assert.ok(error, resumed.events.map((f) => f.type).join(" "));
	assert.match(JSON.stringify(error.json.properties.error), /interrupted/);
	await committed(db.name, `SELECT state FROM turn WHERE session_id = '${s.id}' ORDER BY id`, ["failed", "completed"]);
	// one terminal reply per prompt: the interrupted one, then the queued one's answer
	const msgs = await getMessages(again, s.id);
	const users = msgs.filter((m) => m.info.role === "user");
	assert.equal(users.length, 2);
	assert.equal(msgs[1].info.finish, "error");
	assert.match(texts(msgs.at(-1)), /queued behind the long one/);
});

test("PostgreSQL stopped for a few seconds: prompts get 503 naming it, nothing refused is written, and the gateway recovers without a restart", T, async (t) => {
	const db = freshDb();
	const srv = await startServer({ args: ["--store", db.url] });
	t.after(() => srv.stop());
	const s = await createSession(srv);
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
	t.after(() => sse.close());
	await promptAsync(srv, s.id, "echo before the outage");
	await idleSeen(sse, s.id);

	await pg.stop();
	const refused = [];
	try {
		// the first durable request finds out; every one after is refused up front
		for (let i = 0; i < 3; i++) {
			const r = await api(srv, "POST", `/session/${s.id}/prompt_async`,
				{ parts: [{ type: "text", text: `echo refused ${i}` }] }, { timeout: 5000 });
			assert.equal(r.status, 503, r.text);
			assert.equal(r.json.name, "ServiceUnavailable");
			assert.match(r.json.message, /PostgreSQL at postgres:\/\/agentgate@127\.0\.0\.1:\d+\/e2e\d+/);
			assert.match(r.json.message, /was not accepted/);
			refused.push(`echo refused ${i}`);
		}
		const created = await api(srv, "POST", "/session", { title: "refused" }, { timeout: 5000 });
		assert.equal(created.status, 503);
		// the gateway itself keeps answering, and says why it cannot write
		const health = await api(srv, "GET", "/global/health", undefined, { timeout: 2000 });
		assert.equal(health.status, 503);
		assert.match(health.json.message, /store cannot write.*PostgreSQL/);
	} finally {
		await pg.start();
	}
	await pollUntil(async () => (await api(srv, "GET", "/global/health")).status === 200,
		{ label: "healthy again without a restart", timeout: 20000 });
	const sse2 = await sseSubscribe(srv, `?sessionID=${s.id}`);
	t.after(() => sse2.close());
	await promptAsync(srv, s.id, "echo after the outage");
	await idleSeen(sse2, s.id);
	// what was refused is nowhere; what was accepted is all there, each turn once
	await committed(db.name, `SELECT state FROM turn WHERE session_id = '${s.id}'`, ["completed", "completed"]);
	const stored = pg.query(db.name, `SELECT data FROM message WHERE session_id = '${s.id}' AND role = 'user' ORDER BY turn_id`);
	assert.equal(stored.length, 2, stored.join("\n"));
	for (const text of refused)
		assert.deepEqual(pg.query(db.name, `SELECT count(*) FROM part WHERE data LIKE '%${text}%'`), ["0"], text);
	assert.deepEqual(pg.query(db.name, "SELECT count(*) FROM session WHERE data LIKE '%\"refused\"%'"), ["0"]);
	const msgs = await getMessages(srv, s.id);
	assert.match(texts(msgs.at(-1)), /after the outage/);
});

test("PostgreSQL down when a session is first read: its prompt gets 503 naming why, not 404", T, async (t) => {
	const db = freshDb();
	const first = await startServer({ args: ["--store", db.url] });
	const s = await createSession(first);
	await first.stop();
	// a gateway that has not read the session yet
	const srv = await startServer({ args: ["--store", db.url] });
	t.after(() => srv.stop());
	await pg.stop();
	try {
		const r = await api(srv, "POST", `/session/${s.id}/prompt_async`,
			{ parts: [{ type: "text", text: "echo while down" }] }, { timeout: 5000 });
		assert.equal(r.status, 503, r.text);
		assert.match(r.json.message, /cannot be read now \(.*PostgreSQL at postgres:/);
		const g = await api(srv, "GET", `/session/${s.id}`, undefined, { timeout: 5000 });
		assert.equal(g.status, 503, g.text);
	} finally {
		await pg.start();
	}
	await pollUntil(async () => (await api(srv, "GET", "/global/health")).status === 200,
		{ label: "healthy again", timeout: 20000 });
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
	t.after(() => sse.close());
	await promptAsync(srv, s.id, "echo once it is back");
	await idleSeen(sse, s.id);
	const msgs = await getMessages(srv, s.id);
	assert.equal(msgs.filter((m) => m.info.role === "user").length, 1);
});

test("a second gateway on the same PostgreSQL database is refused, naming the first", T, async (t) => {
	const db = freshDb();
	const srv = await startServer({ args: ["--store", db.url] });
	t.after(() => srv.stop());
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-second-"));
	t.after(() => fsp.rm(dir, { recursive: true, force: true }));
	const r = await runBin(["serve", "--port", String(await freePort()), "--data", dir, "--store", db.url],
		{ timeout: 20000 });
	assert.notEqual(r.code, 0);
	assert.match(r.stderr, /in use by another gateway: agentgate pid \d+/);
	// the first one is unharmed
	await createSession(srv);
});
