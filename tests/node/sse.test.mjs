// GET /event: replay after a dropped connection, filters, resync, odd `since` values.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import {
	startServer,
	createSession,
	promptAsync,
	getMessages,
	apiOk,
	api,
	sseSubscribe,
	SSEReader,
	wsConnect,
	evSession,
	isSessionIdle,
	deltaText,
	firstNonIncreasing,
	firstGap,
	pollUntil,
} from "./lib.mjs";

const T = { timeout: 90_000 };

const isMarker = (id, title) => (e) =>
	e.type === "session.updated" && evSession(e) === id && e.properties?.info?.title === title;

/** A barrier: an event in session id that every stream filtered to it must see last. */
async function barrier(srv, id, streams, title = `barrier ${Math.random().toString(36).slice(2)}`) {
	await apiOk(srv, "PATCH", `/session/${id}`, { title });
	for (const s of streams) await s.waitFor(isMarker(id, title), { label: `barrier ${title}` });
}

/** Every frame's `id:` equals its JSON seq, and the JSON is the documented envelope. */
function checkFrames(frames, label) {
	for (const f of frames) {
		assert.ok(f.json, `${label}: frame is JSON: ${f.data.slice(0, 200)}`);
		if (f.json.type === "server.connected" || f.json.type === "resync") continue;
		assert.equal(typeof f.json.seq, "number", `${label}: seq in ${f.data.slice(0, 200)}`);
		assert.equal(f.id, String(f.json.seq), `${label}: id: line equals seq`);
		assert.equal(typeof f.json.sessionID, "string", `${label}: envelope sessionID`);
		assert.equal(typeof f.json.rootID, "string", `${label}: envelope rootID`);
		assert.equal(typeof f.json.depth, "number", `${label}: envelope depth`);
		assert.equal(typeof f.json.properties, "object", `${label}: properties`);
	}
}

/** Assistant text parts of the stored messages equal the joined deltas of the stream. */
async function checkTextMatchesStore(srv, sessionID, events, label) {
	const stored = await getMessages(srv, sessionID);
	const fromStream = deltaText(events);
	let textParts = 0;
	for (const m of stored) {
		if (m.info.role !== "assistant") continue;
		for (const p of m.parts) {
			if (p.type !== "text") continue;
			textParts++;
			const streamed = fromStream.get(m.info.id)?.get(p.id);
			assert.equal(streamed, p.text, `${label}: streamed deltas of ${p.id} equal the stored text`);
		}
	}
	assert.ok(textParts > 0, `${label}: stored assistant text`);
	for (const [mid, parts] of fromStream)
		for (const pid of parts.keys())
			assert.ok(
				stored.some((m) => m.info.id === mid && m.parts.some((p) => p.id === pid)),
				`${label}: streamed part ${pid} exists in the store`,
			);
}

for (const variant of ["Last-Event-ID", "since"]) {
	test(`SSE: a dropped connection resumed with ${variant} loses no event`, T, async (t) => {
		const srv = await startServer();
		t.after(() => srv.stop());
		const s = await createSession(srv);
		const q = `?sessionID=${s.id}`;
		const ref = await sseSubscribe(srv, q);
		t.after(() => ref.close());
		assert.match(ref.responseHeaders.get("content-type"), /^text\/event-stream/);
		assert.equal(ref.frames[0].json?.type, "server.connected", "the stream opens with server.connected");

		const first = await sseSubscribe(srv, q);
		await promptAsync(srv, s.id, "long");
		await first.until((r) => r.events.length >= 50, { label: "50 events before the drop" });
		await first.close();
		const part1 = first.events;
		const lastId = first.lastEventId;
		assert.equal(lastId, String(part1.at(-1).seq), "Last-Event-ID is the last complete frame's id");
		assert.ok(!part1.some(isSessionIdle(s.id)), "precondition: the drop happened mid-turn");

		const resumed =
			variant === "since"
				? await sseSubscribe(srv, `${q}&since=${lastId}`)
				: await sseSubscribe(srv, q, { headers: { "last-event-id": lastId } });
		t.after(() => resumed.close());
		assert.equal(resumed.frames[0].json?.type, "server.connected");
		await ref.waitFor(isSessionIdle(s.id), { label: "reference sees session.idle", timeout: 30000 });
		await resumed.waitFor(isSessionIdle(s.id), { label: "resumed sees session.idle", timeout: 30000 });
		await barrier(srv, s.id, [ref, resumed]);

		checkFrames(ref.frames, "reference");
		checkFrames(first.frames, "first");
		checkFrames(resumed.frames, "resumed");
		assert.ok(!resumed.frames.some((f) => f.json?.type === "resync"), "no resync for a recent id");
		const combined = [...part1, ...resumed.events].map((f) => f.json);
		const seqs = combined.map((e) => e.seq);
		const bad = firstNonIncreasing(seqs);
		assert.equal(bad, -1, `seq strictly increasing across the drop; at ${bad}: ${seqs.slice(Math.max(0, bad - 3), bad + 3)}`);
		const refEvents = ref.events.map((f) => f.json);
		assert.deepEqual(seqs, refEvents.map((e) => e.seq), "dropped+resumed = the reference stream, same seqs in the same order");
		assert.deepEqual(combined, refEvents, "and the same event bodies");
		for (const e of combined) assert.equal(evSession(e), s.id, "only the filtered session");
		assert.ok(
			combined.filter((e) => e.type === "message.part.delta").length > 400,
			"a long answer streams hundreds of deltas",
		);
		await checkTextMatchesStore(srv, s.id, combined, "dropped+resumed");
		await checkTextMatchesStore(srv, s.id, refEvents, "reference");
	});
}

test("SSE: ?sessionID filters out other sessions; &descendants=true adds the subtree", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const A = await createSession(srv, { title: "A" });
	const B = await createSession(srv, { title: "B" });
	const all = await sseSubscribe(srv, "");
	const onlyA = await sseSubscribe(srv, `?sessionID=${A.id}`);
	const onlyB = await sseSubscribe(srv, `?sessionID=${B.id}`);
	const treeA = await sseSubscribe(srv, `?sessionID=${A.id}&descendants=true`);
	t.after(() => Promise.all([all, onlyA, onlyB, treeA].map((s) => s.close())));

	const C = await createSession(srv, { parentID: A.id, title: "child of A" });
	assert.equal(C.parentID, A.id);
	await promptAsync(srv, A.id, "echo a");
	await promptAsync(srv, B.id, "echo b");
	await promptAsync(srv, C.id, "echo child");
	for (const id of [A.id, B.id, C.id]) await all.waitFor(isSessionIdle(id), { label: `all: idle of ${id}` });
	await onlyA.waitFor(isSessionIdle(A.id), { label: "onlyA idle" });
	await onlyB.waitFor(isSessionIdle(B.id), { label: "onlyB idle" });
	await treeA.waitFor(isSessionIdle(C.id), { label: "treeA sees the child's idle" });
	await treeA.waitFor(isSessionIdle(A.id), { label: "treeA idle A" });
	await barrier(srv, A.id, [onlyA, treeA, all]);
	await barrier(srv, B.id, [onlyB, all]);

	for (const [name, r] of Object.entries({ all, onlyA, onlyB, treeA })) {
		checkFrames(r.frames, name);
		const seqs = r.events.map((f) => f.seq);
		assert.equal(firstNonIncreasing(seqs), -1, `${name}: seq strictly increasing`);
	}
	const sessionsOf = (r) => new Set(r.events.map((f) => evSession(f.json)));
	assert.deepEqual([...sessionsOf(onlyA)], [A.id], "?sessionID=A sees only A");
	assert.deepEqual([...sessionsOf(onlyB)], [B.id], "?sessionID=B sees only B");
	assert.deepEqual(new Set(sessionsOf(treeA)), new Set([A.id, C.id]), "descendants: A and its child");
	for (const f of onlyA.events) {
		const p = f.json.properties;
		assert.ok(p.sessionID === undefined || p.sessionID === A.id, "properties.sessionID matches too");
		assert.ok(p.info?.sessionID === undefined || p.info.sessionID === A.id);
		assert.ok(p.part?.sessionID === undefined || p.part.sessionID === A.id);
	}

	// The child's events carry the tree envelope.
	const childEvents = treeA.events.map((f) => f.json).filter((e) => e.sessionID === C.id);
	assert.ok(childEvents.some((e) => e.type === "session.created"), "descendants stream sees the child's creation");
	assert.ok(childEvents.some((e) => e.type === "message.part.delta"), "and its deltas");
	for (const e of childEvents) {
		assert.equal(e.rootID, A.id, "child rootID");
		assert.equal(e.parentID, A.id, "child parentID");
		assert.equal(e.depth, 1, "child depth");
	}
	for (const e of onlyA.events.map((f) => f.json)) {
		assert.equal(e.rootID, A.id);
		assert.equal(e.depth, 0);
		assert.equal(e.parentID, undefined, "a root has no parentID");
	}
	// treeA = exactly the A and C events of the unfiltered stream, in order.
	const expected = all.events.map((f) => f.json).filter((e) => e.sessionID === A.id || e.sessionID === C.id);
	const firstSeq = treeA.events[0].seq;
	assert.deepEqual(
		treeA.events.map((f) => f.seq),
		expected.filter((e) => e.seq >= firstSeq).map((e) => e.seq),
		"descendants stream = the tree's events of the unfiltered stream",
	);
});

test("SSE: since=-5 and a since far in the future do nothing bad", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const s = await createSession(srv);
	const all = await sseSubscribe(srv, "");
	t.after(() => all.close());
	await promptAsync(srv, s.id, "echo warm up");
	await all.waitFor(isSessionIdle(s.id), { label: "warm-up idle" });

	for (const since of ["-5", "999999999999", "0"]) {
		const r = await SSEReader.open(`${srv.url}/event?since=${since}&sessionID=${s.id}`);
		t.after(() => r.close());
		assert.ok([200, 400].includes(r.status), `since=${since}: status ${r.status}`);
		if (r.status === 400) {
			assert.equal(r.json?.name, "BadRequest", `since=${since}: 400 body ${r.body}`);
			continue;
		}
		await r.waitFor((e) => e.type === "server.connected", { label: `since=${since}: server.connected` });
		assert.equal(r.frames[0].json?.type, "server.connected", `since=${since}: opens with server.connected`);
		if (since === "0") {
			// Everything is still kept: the whole history of the session is replayed.
			await r.waitFor(isSessionIdle(s.id), { label: "since=0 replays the session's history" });
			const replayed = r.events.map((f) => f.seq);
			const expected = all.events.filter((f) => evSession(f.json) === s.id).map((f) => f.seq);
			assert.deepEqual(replayed.slice(-expected.length), expected, "since=0 replays what the live stream saw");
			assert.ok(r.events.some((f) => f.type === "session.created"), "including session.created");
		}
		await barrier(srv, s.id, since === "999999999999" ? [] : [r]);
		checkFrames(r.frames, `since=${since}`);
		assert.equal(firstNonIncreasing(r.events.map((f) => f.seq)), -1, `since=${since}: increasing seq`);
		await r.close();
	}
	const h = await api(srv, "GET", "/global/health");
	assert.equal(h.status, 200);
});

test("SSE and WS: a since older than what is kept starts with a resync event", { timeout: 120_000 }, async (t) => {
	// The ring keeps 8192 events in memory; the store keeps event_keep (100 here) and is
	// pruned every 4096 appends. Producing > 8192 + 4096 + 100 events makes seq 1 gone.
	const srv = await startServer({ config: { providers: { scripted: { pace_ms: 1 } }, retry: { base_ms: 10 }, event_keep: 100 } });
	t.after(() => srv.stop());
	const rpc = await wsConnect(srv.wsUrl);
	t.after(() => rpc.close());
	const sessions = [];
	for (let i = 0; i < 8; i++) sessions.push((await createSession(srv, { title: `load ${i}` })).id);
	const target = 8192 + 4096 + 500;
	let last = 0;
	for (let round = 0; round < 12 && last < target; round++) {
		await Promise.all(sessions.map((id) => rpc.call("session.prompt", { sessionID: id, text: "long", wait: true }, { timeout: 60000 })));
		last = (await rpc.call("subscribe", {})).seq;
		await rpc.call("unsubscribe", {});
	}
	assert.ok(last >= target, `produced ${last} events`);

	const sse = await sseSubscribe(srv, "?since=1");
	t.after(() => sse.close());
	const rs = await sse.waitFor((e) => e.type !== "server.connected", { label: "first event after server.connected" });
	assert.equal(rs.type, "resync", `first event: ${JSON.stringify(rs).slice(0, 300)}`);
	assert.equal(rs.properties.since, 1);
	assert.ok(rs.properties.oldest > 2, `oldest ${rs.properties.oldest}`);
	assert.ok(rs.properties.last >= last, `last ${rs.properties.last} ≥ ${last}`);
	// then it continues live
	const fresh = await createSession(srv, { title: "after resync" });
	await sse.waitFor((e) => e.type === "session.created" && evSession(e) === fresh.id, { label: "live after resync" });
	assert.equal(sse.frames.filter((f) => f.type === "resync").length, 1);
	// nothing was replayed between the resync and the live event
	const afterResync = sse.events.filter((f) => f.type !== "resync" && f.seq <= rs.properties.last);
	assert.equal(afterResync.length, 0, "a resync replays nothing");

	const ws = await wsConnect(srv.wsUrl);
	t.after(() => ws.close());
	const sub = await ws.call("subscribe", { since: 1 });
	assert.equal(typeof sub.seq, "number");
	const first = await ws.until((c) => c.events[0], { label: "WS resync event" });
	assert.equal(first.type, "resync", `WS first event ${JSON.stringify(first).slice(0, 300)}`);
	assert.equal(first.properties.since, 1);
	assert.ok(first.properties.oldest > 2);
});

test("SSE: a held POST /session/{id}/message is answered only after the event stream wrote its turn's events", T, async (t) => {
	// a client that stops reading its stream when the answer comes (OpenCode's `run
	// --attach` exits) must already have the turn's last events: their bytes reach it first
	const srv = await startServer();
	t.after(() => srv.stop());
	const s = await createSession(srv, { title: "answer after events" });
	const url = new URL(srv.url);
	let streamed = "";
	const stream = http.get({ host: url.hostname, port: url.port, path: `/event?sessionID=${s.id}` }, (res) => res.on("data", (d) => (streamed += d)));
	t.after(() => stream.destroy());
	await pollUntil(() => streamed.includes("server.connected"), { label: "the stream open" });
	for (let i = 0; i < 5; i++) {
		const { seen, answer } = await new Promise((resolve, reject) => {
			const req = http.request({ host: url.hostname, port: url.port, method: "POST", path: `/session/${s.id}/message`, headers: { "content-type": "application/json" } }, (res) => {
				const seen = streamed.length; // what the stream had delivered when the answer's head came
				let body = "";
				res.on("data", (d) => (body += d));
				res.on("end", () => resolve({ seen, answer: JSON.parse(body) }));
			});
			req.on("error", reject);
			req.end(JSON.stringify({ parts: [{ type: "text", text: `hello ${i}` }] }));
		});
		const before = streamed
			.slice(0, seen)
			.split("\n")
			.filter((l) => l.startsWith("data: "))
			.map((l) => JSON.parse(l.slice(6)));
		const done = before.find((e) => e.type === "message.updated" && e.properties.info.id === answer.info.id && e.properties.info.time.completed);
		assert.ok(done, `prompt ${i}: the answer (${answer.info.id}) came before its message.updated with time.completed on the stream`);
		const text = answer.parts.find((p) => p.type === "text");
		assert.ok(before.some((e) => e.type === "message.part.updated" && e.properties.part.id === text.id && e.properties.part.time?.end), `prompt ${i}: the reply's text part ended on the stream first`);
	}
});
