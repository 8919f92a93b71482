// Connection handling: idle and held connections must not lock other clients out, a full
// server answers 503 at once, and a departed SSE client frees its slot at once without
// the loop spinning. Every wait is bounded; CPU is a behaviour check (a spinning loop
// burns a whole core), not a benchmark.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import { startServer, DEFAULT_CONFIG, api, createSession, sseSubscribe, withTimeout, pollUntil, deferred } from "./lib.mjs";

const T = { timeout: 60_000 };

/** A raw TCP connection to srv (connected, nothing sent). */
function connectRaw(srv) {
	return new Promise((resolve, reject) => {
		const s = net.connect(srv.port, "127.0.0.1");
		s.once("connect", () => resolve(s));
		s.once("error", reject);
	});
}

/** CPU time (utime + stime, in seconds) the process has used so far. */
function cpuSeconds(pid) {
	const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
	return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks: USER_HZ is 100 on Linux
}

/** The share of one core the process used over the next ms milliseconds. */
async function cpuShare(pid, ms = 1000) {
	const c0 = cpuSeconds(pid);
	const t0 = process.hrtime.bigint();
	await new Promise((r) => setTimeout(r, ms));
	const wall = Number(process.hrtime.bigint() - t0) / 1e9;
	return (cpuSeconds(pid) - c0) / wall;
}

/** GET /event on a raw socket; resolves once the response head and the first event are in. */
async function rawSse(srv) {
	const s = await connectRaw(srv);
	s.on("error", () => {});
	const got = deferred();
	let text = "";
	s.on("data", (d) => {
		text += d;
		if (text.includes("server.connected")) got.resolve();
	});
	s.write(`GET /event HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`);
	await withTimeout(got.promise, 5000, "SSE response on a raw socket");
	return s;
}

const closeWays = {
	close: (s) => s.destroy(), // FIN both ways
	reset: (s) => s.resetAndDestroy(), // RST
	"half-close": (s) => s.end(), // FIN, the client still reads
};

for (const [how, leave] of Object.entries(closeWays)) {
	test(`an SSE client that leaves by ${how} frees its slot at once and the loop stays quiet`, T, async (t) => {
		// one slot, heartbeats far away: only noticing the hang-up itself frees it in time
		const srv = await startServer({ config: { ...DEFAULT_CONFIG, server: { max_connections: 1, sse_heartbeat_ms: 60000 } } });
		t.after(() => srv.stop());
		const s = await rawSse(srv);
		t.after(() => s.destroy());
		assert.equal((await api(srv, "GET", "/session")).status, 503, "the one slot is taken");
		leave(s);
		await pollUntil(async () => (await api(srv, "GET", "/global/health")).status === 200, {
			timeout: 3000,
			label: `the slot freed after a ${how}`,
		});
		const share = await cpuShare(srv.proc.pid, 1000);
		assert.ok(share < 0.3, `the server used ${(share * 100).toFixed(0)} % of a core after the client left`);
	});
}

test("64+ idle connections and 64+ held prompts do not lock another client out", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const idle = [];
	t.after(() => idle.forEach((s) => s.destroy()));
	for (let i = 0; i < 70; i++) idle.push(await connectRaw(srv));
	const ids = [];
	for (let i = 0; i < 70; i++) ids.push((await createSession(srv)).id);
	const held = ids.map((id) =>
		api(srv, "POST", `/session/${id}/message`, { parts: [{ type: "text", text: "sleep 60000" }] }, { timeout: 20000 }).catch((e) => e),
	);
	await pollUntil(async () => Object.keys((await api(srv, "GET", "/session/status")).json || {}).length === 70, {
		label: "70 prompts running",
		timeout: 15000,
	});
	// a client that had to wait for a header slot is reset after 5 s: answer well before
	const r = await api(srv, "GET", "/session", undefined, { timeout: 3000 });
	assert.equal(r.status, 200);
	assert.equal(r.json.length, 70);
	await srv.stop();
	await Promise.all(held);
});

test("a server full of held prompts answers the next request 503 with a JSON error at once", T, async (t) => {
	// one stream plus four held prompts fill five slots; the stream shows when they are
	// held without another request racing them for a slot
	const srv = await startServer({ config: { ...DEFAULT_CONFIG, server: { max_connections: 5 } } });
	t.after(() => srv.stop());
	const ids = [];
	for (let i = 0; i < 4; i++) ids.push((await createSession(srv)).id);
	const events = await sseSubscribe(srv);
	t.after(() => events.close());
	const held = ids.map((id) =>
		api(srv, "POST", `/session/${id}/message`, { parts: [{ type: "text", text: "sleep 60000" }] }, { timeout: 20000 }).catch((e) => e),
	);
	await events.until(
		(s) => new Set(s.events.filter((f) => f.type === "session.status" && f.json.properties.status.type === "busy").map((f) => f.json.sessionID)).size === 4,
		{ label: "four prompts running" },
	);
	const r = await api(srv, "GET", "/global/health", undefined, { timeout: 3000 });
	assert.equal(r.status, 503);
	assert.equal(r.json.name, "ServiceUnavailable");
	assert.match(r.json.data.message, /max_connections is 5/);
	await srv.stop();
	await Promise.all(held);
});
