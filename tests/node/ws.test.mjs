// WebSocket JSON-RPC 2.0 at /ws: every method, errors, resume with since, a slow
// reader, 200 concurrent subscribers.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
	startServer,
	createSession,
	promptAsync,
	getMessages,
	apiOk,
	api,
	wsConnect,
	RpcError,
	pollUntil,
	evSession,
	isSessionIdle,
	deltaText,
	firstNonIncreasing,
	firstGap,
	withTimeout,
	tcpRows,
} from "./lib.mjs";

const T = { timeout: 110_000 };

async function rejects(p, code, label, nameInMessage) {
	let err;
	try {
		const r = await p;
		assert.fail(`${label}: expected JSON-RPC error ${code}, got result ${JSON.stringify(r)?.slice(0, 200)}`);
	} catch (e) {
		err = e;
	}
	assert.ok(err instanceof RpcError, `${label}: ${err.message}`);
	assert.equal(err.code, code, `${label}: code (message: ${err.rpcMessage})`);
	assert.equal(typeof err.rpcMessage, "string");
	if (nameInMessage) assert.ok(err.rpcMessage.includes(nameInMessage), `${label}: message "${err.rpcMessage}" names ${nameInMessage}`);
	return err;
}

const textOf = (parts) => parts.filter((p) => p.type === "text").map((p) => p.text).join("\n");

test("WS: every JSON-RPC method in API.md", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const c = await wsConnect(srv.wsUrl);
	t.after(() => c.close());

	const s = await c.call("session.create", { title: "ws" });
	assert.match(s.id, /^ses_/);
	assert.equal(s.title, "ws");
	const child = await c.call("session.create", { parentID: s.id, title: "kid" });
	assert.equal(child.parentID, s.id);

	const list = await c.call("session.list", {});
	assert.ok(Array.isArray(list));
	assert.deepEqual(new Set(list.map((x) => x.id)), new Set([s.id, child.id]));

	assert.equal((await c.call("session.get", { sessionID: s.id })).id, s.id);
	const u = await c.call("session.update", { sessionID: s.id, title: "renamed" });
	assert.equal(u.title, "renamed");
	assert.equal((await c.call("session.get", { sessionID: s.id })).title, "renamed");
	assert.deepEqual((await c.call("session.children", { sessionID: s.id })).map((x) => x.id), [child.id]);

	const ack = await c.call("session.prompt", { sessionID: s.id, text: "echo one" });
	assert.equal(ack.sessionID, s.id);
	assert.equal(typeof ack.turnID, "string");
	assert.match(ack.messageID, /^msg_/);
	assert.equal(ack.coalesced, false);
	const reply = await c.call("session.prompt", { sessionID: s.id, parts: [{ type: "text", text: "echo two" }], wait: true });
	assert.equal(reply.info.role, "assistant");
	assert.equal(reply.info.finish, "stop");
	assert.ok(textOf(reply.parts).includes("The echo tool returned: two"), textOf(reply.parts));

	const msgs = await c.call("session.messages", { sessionID: s.id });
	const users = msgs.filter((m) => m.info.role === "user");
	assert.deepEqual(users.map((m) => textOf(m.parts)), ["echo one", "echo two"], "FIFO: both turns done");
	assert.equal(users[0].info.id, ack.messageID, "the ack's messageID is the user message");
	const limited = await c.call("session.messages", { sessionID: s.id, limit: 2 });
	assert.deepEqual(limited.map((m) => m.info.id), msgs.slice(-2).map((m) => m.info.id), "limit: the newest N, oldest first");
	const one = await c.call("session.message", { sessionID: s.id, messageID: ack.messageID });
	assert.equal(one.info.id, ack.messageID);
	assert.equal(textOf(one.parts), "echo one");
	await rejects(c.call("session.message", { sessionID: s.id, messageID: "msg_doesnotexist00000000000" }), -32004, "unknown message");

	// prompt_async, status, dedupe, reject, abort
	await c.call("session.prompt_async", { sessionID: s.id, text: "sleep 30000" });
	await pollUntil(async () => (await c.call("session.status", {}))[s.id]?.type === "busy", { label: "busy in session.status" });
	const d1 = await c.call("session.prompt", { sessionID: s.id, text: "echo dedupe", dedupeKey: "k1" });
	const d2 = await c.call("session.prompt", { sessionID: s.id, text: "echo dedupe", dedupeKey: "k1" });
	assert.equal(d1.coalesced, false);
	assert.equal(d2.coalesced, true, "same dedupeKey joins the queued turn");
	assert.equal(d2.turnID, d1.turnID);
	await rejects(c.call("session.prompt", { sessionID: s.id, text: "echo no", policy: "reject" }), -32009, "policy reject while busy");
	assert.equal(await c.call("session.abort", { sessionID: s.id }), true);
	await pollUntil(async () => !(await c.call("session.status", {}))[s.id], { timeout: 20000, label: "idle after abort" });

	const agents = await c.call("agent.list", {});
	assert.ok(agents.some((a) => a.name === "build"), "agent.list has build");

	// subscribe / unsubscribe
	const sub = await c.call("subscribe", { sessionID: s.id });
	assert.equal(typeof sub.seq, "number");
	await c.call("session.update", { sessionID: s.id, title: "event 1" });
	const ev = await c.waitFor((e) => e.type === "session.updated" && e.properties?.info?.title === "event 1", { label: "session.updated" });
	assert.ok(ev.seq > sub.seq, "events after the subscribe seq");
	assert.equal(ev.sessionID, s.id);
	await c.call("unsubscribe", {});
	const from = c.events.length;
	await c.call("session.update", { sessionID: s.id, title: "after unsubscribe" });
	await c.call("subscribe", { sessionID: child.id });
	await c.call("session.update", { sessionID: child.id, title: "child event" });
	await c.waitFor((e) => e.type === "session.updated" && e.properties?.info?.title === "child event", { from, label: "child event" });
	assert.deepEqual(
		c.events.slice(from).map((e) => e.sessionID),
		[child.id],
		"after unsubscribe nothing from the old filter; the new filter works",
	);

	assert.equal(await c.call("session.delete", { sessionID: s.id }), true);
	await rejects(c.call("session.get", { sessionID: s.id }), -32004, "deleted session");
	await rejects(c.call("session.get", { sessionID: child.id }), -32004, "deleted with its descendants");
	assert.ok(c.isOpen);
	// checked last so that it does not hide the other methods
	assert.ok(
		list.every((x, i) => i === 0 || list[i - 1].time.updated >= x.time.updated),
		`session.list: most recently updated first: ${list.map((x) => `${x.title}@${x.time.updated}`).join(", ")}`,
	);
});

test("WS: JSON-RPC errors keep the connection up", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const c = await wsConnect(srv.wsUrl);
	t.after(() => c.close());
	const alive = async (label) => {
		assert.ok(Array.isArray(await c.call("session.list", {})), `${label}: still answering`);
		assert.ok(c.isOpen, `${label}: connection open`);
	};

	const parse = await c.raw("{not json", (m) => m.error);
	assert.equal(parse.jsonrpc, "2.0");
	assert.equal(parse.error.code, -32700, JSON.stringify(parse));
	assert.equal(parse.id, null, "parse error → id null");
	await alive("after -32700");

	const invalid = await c.raw('{"jsonrpc":"2.0","id":1}', (m) => m.error);
	assert.equal(invalid.error.code, -32600, JSON.stringify(invalid));
	assert.ok(invalid.id === 1 || invalid.id === null, `id ${invalid.id}`);
	await alive("after -32600");

	const notObject = await c.raw("[1,2]", (m) => m.error || Array.isArray(m));
	const e2 = Array.isArray(notObject) ? notObject[0]?.error : notObject.error;
	assert.equal(e2?.code, -32600, `a non-request → -32600: ${JSON.stringify(notObject)}`);
	await alive("after [1,2]");

	await rejects(c.call("no.such.method", {}), -32601, "unknown method", "no.such.method");
	await alive("after -32601");
	await rejects(c.call("session.get", {}), -32602, "session.get without sessionID", "sessionID");
	await alive("after -32602");
	await rejects(c.call("session.get", { sessionID: 42 }), -32602, "sessionID of the wrong type", "sessionID");
	await alive("after -32602 (type)");
	await rejects(c.call("session.get", { sessionID: "ses_doesnotexist0000000000000" }), -32004, "unknown session");
	await alive("after -32004");
	await rejects(c.call("session.prompt", { sessionID: "ses_doesnotexist0000000000000", text: "hi" }), -32004, "prompt to an unknown session");
	await alive("after prompt -32004");
});

test("turn.cancel (WS) and DELETE /session/{id}/turn/{turnID}: a queued turn ends cancelled, a running one is busy", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const c = await wsConnect(srv.wsUrl);
	t.after(() => c.close());
	const s = await c.call("session.create", { title: "cancel" });
	const run = await c.call("session.prompt", { sessionID: s.id, text: "sleep 60000" });
	const q1 = await c.call("session.prompt", { sessionID: s.id, text: "echo queued one" });
	const q2 = await c.call("session.prompt", { sessionID: s.id, text: "echo queued two" });
	await pollUntil(async () => (await apiOk(srv, "GET", "/session/status"))[s.id]?.type === "busy", { label: "busy" });

	assert.equal(await c.call("turn.cancel", { sessionID: s.id, turnID: q1.turnID }), true);
	assert.equal((await apiOk(srv, "DELETE", `/session/${s.id}/turn/${q2.turnID}`)), true);
	const busy = await api(srv, "DELETE", `/session/${s.id}/turn/${run.turnID}`);
	assert.equal(busy.status, 409, busy.text);
	assert.ok(busy.json.message.includes("is running; abort the session"), busy.text);
	await rejects(c.call("turn.cancel", { sessionID: s.id, turnID: run.turnID }), -32009, "running turn", run.turnID);
	await rejects(c.call("turn.cancel", { sessionID: s.id, turnID: q1.turnID }), -32004, "ended turn", q1.turnID);
	assert.equal((await api(srv, "DELETE", `/session/${s.id}/turn/turn_nope`)).status, 404);
	await rejects(c.call("turn.cancel", { sessionID: s.id }), -32602, "without turnID", "turnID");

	await apiOk(srv, "POST", `/session/${s.id}/abort`);
	const msgs = await c.call("session.messages", { sessionID: s.id });
	for (const q of [q1, q2]) {
		const replies = msgs.filter((m) => m.info.role === "assistant" && m.info.parentID === q.messageID);
		assert.equal(replies.length, 1, `one terminal reply for ${q.messageID}`);
		assert.equal(replies[0].info.finish, "aborted");
		assert.equal(replies[0].info.error.data.message, "cancelled before it ran");
	}
});

test("WS: subscribe {since} after a disconnect replays what was missed", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const s = await createSession(srv);
	const ref = await wsConnect(srv.wsUrl);
	t.after(() => ref.close());
	const refSub = await ref.call("subscribe", { sessionID: s.id });
	const first = await wsConnect(srv.wsUrl);
	const firstSub = await first.call("subscribe", { sessionID: s.id });
	assert.equal(firstSub.seq, refSub.seq);

	await promptAsync(srv, s.id, "long");
	await first.until((c) => c.events.length >= 50, { label: "50 events before the drop" });
	first.terminate(); // abrupt, like a dropped network
	await first.closed();
	const part1 = first.events.slice();
	const last = part1.at(-1).seq;
	assert.ok(!part1.some(isSessionIdle(s.id)), "precondition: dropped mid-turn");

	const second = await wsConnect(srv.wsUrl);
	t.after(() => second.close());
	const sub2 = await second.call("subscribe", { sessionID: s.id, since: last });
	assert.equal(typeof sub2.seq, "number");
	await ref.waitFor(isSessionIdle(s.id), { label: "ref idle", timeout: 30000 });
	await second.waitFor(isSessionIdle(s.id), { label: "resumed idle", timeout: 30000 });
	await apiOk(srv, "PATCH", `/session/${s.id}`, { title: "barrier" });
	const isBarrier = (e) => e.type === "session.updated" && e.properties?.info?.title === "barrier";
	await ref.waitFor(isBarrier, { label: "ref barrier" });
	await second.waitFor(isBarrier, { label: "resumed barrier" });

	const combined = [...part1, ...second.events];
	const seqs = combined.map((e) => e.seq);
	const bad = firstNonIncreasing(seqs);
	assert.equal(bad, -1, `seq strictly increasing across the drop; at ${bad}: ${seqs.slice(Math.max(0, bad - 3), bad + 3)}`);
	assert.deepEqual(seqs, ref.events.map((e) => e.seq), "dropped+resumed = the reference subscription");
	assert.deepEqual(combined, ref.events);
	const stored = await getMessages(srv, s.id);
	const streamed = deltaText(combined);
	let n = 0;
	for (const m of stored.filter((m) => m.info.role === "assistant"))
		for (const p of m.parts.filter((p) => p.type === "text")) {
			n++;
			assert.equal(streamed.get(m.info.id)?.get(p.id), p.text, "joined deltas equal the stored text");
		}
	assert.ok(n > 0);
});

/** The kernel's view of one loopback TCP connection (Linux /proc/net/tcp and tcp6: a
 * dual-stack listener's sockets show there as ::ffff:127.0.0.1). */
function tcpState(serverPort, clientPort) {
	const hex = (p) => p.toString(16).toUpperCase().padStart(4, "0");
	const rows = tcpRows();
	const find = (lp, rp) => {
		const r = rows.find((c) => c[1].endsWith(":" + hex(lp)) && c[2].endsWith(":" + hex(rp)));
		if (!r) return null;
		const [tx, rx] = r[4].split(":").map((x) => parseInt(x, 16));
		return { state: r[3], tx, rx };
	};
	return { server: find(serverPort, clientPort), client: find(clientPort, serverPort) };
}

test("WS: a slow reader is closed with 1008 naming `since`; a fast reader gets everything", { timeout: 150_000 }, async (t) => {
	const MAX_BYTES = 1 << 20; // the queue bound in bytes (the time bound is left far away)
	const srv = await startServer({ config: { providers: { scripted: { pace_ms: 1 } }, retry: { base_ms: 10 },
		server: { subscriber_max_bytes: MAX_BYTES, subscriber_max_behind_ms: 600000 } } });
	t.after(() => srv.stop());
	const sessions = [];
	for (let i = 0; i < 8; i++) sessions.push((await createSession(srv, { title: `s${i}` })).id);

	const fast = await wsConnect(srv.wsUrl);
	t.after(() => fast.close());
	const slow = await wsConnect(srv.wsUrl);
	t.after(() => slow.terminate());
	const fastSub = await fast.call("subscribe", {});
	const slowSub = await slow.call("subscribe", {});
	slow.ws._socket.pause(); // stop reading: the kernel buffers fill, then the server's queue
	const clientPort = slow.ws._socket.localPort;

	const bytes0 = fast.bytes;
	const deadline = Date.now() + 70_000;
	let rounds = 0;
	let why = "deadline";
	for (;;) {
		const k = tcpState(srv.port, clientPort);
		if (!k.server || k.server.state !== "01") {
			why = `server closed its end (state ${k.server?.state ?? "gone"})`;
			break;
		}
		const produced = fast.bytes - bytes0;
		// What the kernel holds for the slow client, plus the queue's byte bound, plus slack
		// (the notification wrapper each event gets on the wire).
		if (rounds > 0 && produced > k.server.tx + (k.client?.rx ?? 0) + MAX_BYTES * 1.2 + (1 << 20)) {
			why = `produced ${produced} B > kernel-held ${k.server.tx + (k.client?.rx ?? 0)} B + ${MAX_BYTES} B of queue`;
			break;
		}
		if (Date.now() > deadline) break;
		const from = fast.events.length;
		await Promise.all(sessions.map((id) => promptAsync(srv, id, "long")));
		for (const id of sessions)
			await fast.waitFor(isSessionIdle(id), { from, timeout: 60000, label: `fast: round ${rounds} idle of ${id}` });
		rounds++;
	}
	t.diagnostic(`rounds ${rounds}, stopped producing because: ${why}; fast got ${fast.events.length} events, ${fast.bytes} B`);

	// The fast reader received every event since it subscribed: contiguous seqs.
	const fseqs = fast.events.map((e) => e.seq);
	assert.equal(fseqs[0], fastSub.seq + 1, "fast: first event follows the subscribe seq");
	const gap = firstGap(fseqs);
	assert.equal(gap, -1, `fast: no gap in seq; at ${gap}: ${fseqs.slice(Math.max(0, gap - 2), gap + 2)}`);
	for (const id of sessions)
		assert.equal(fast.events.filter(isSessionIdle(id)).length, rounds, `fast: one session.idle per prompt of ${id}`);
	const streamed = deltaText(fast.events);
	for (const id of sessions.slice(0, 2)) {
		for (const m of (await getMessages(srv, id)).filter((m) => m.info.role === "assistant"))
			for (const p of m.parts.filter((p) => p.type === "text"))
				assert.equal(streamed.get(m.info.id)?.get(p.id), p.text, "fast: deltas equal the stored text");
	}

	// Let the slow reader read again: it drains what the kernel held, then the close.
	slow.ws._socket.resume();
	const closed = await slow.closed(30000).catch((e) => {
		throw new Error(`slow reader was not closed (${e.message}); it has ${slow.events.length} events, last seq ${slow.events.at(-1)?.seq}, server last ${fseqs.at(-1)}; ${why}`);
	});
	assert.equal(closed.code, 1008, `close code (reason "${closed.reason}")`);
	assert.match(closed.reason, /since/, "the reason names since");
	const since = Number(/since\D*(\d+)/.exec(closed.reason)?.[1]);
	assert.ok(Number.isFinite(since), `a number in the reason: ${closed.reason}`);
	const sseqs = slow.events.map((e) => e.seq);
	assert.equal(sseqs[0], slowSub.seq + 1);
	assert.equal(firstGap(sseqs), -1, "slow: what it got has no gap");
	assert.ok(since <= sseqs.at(-1), `since ${since} ≤ the last seq the slow reader received (${sseqs.at(-1)}): nothing lost`);
	assert.ok(since >= slowSub.seq, "since is not before the subscription");

	// Resuming from that since fills the rest, up to where the fast reader is.
	const again = await wsConnect(srv.wsUrl, { keepEvents: true });
	t.after(() => again.close());
	await again.call("subscribe", { since });
	const end = fseqs.at(-1);
	await again.until((c) => c.events.length && c.events.at(-1).seq >= end, { timeout: 30000, label: `resume reaches seq ${end}` });
	const aseqs = again.events.map((e) => e.seq);
	assert.notEqual(again.events[0].type, "resync");
	assert.equal(aseqs[0], since + 1, "replay starts right after since");
	assert.equal(firstGap(aseqs), -1, "replay has no gap");
});

test("WS: 200 subscribers, 50 sessions streaming: everyone gets every event in order", { timeout: 120_000 }, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const N = 200,
		S = 50;
	const sessions = [];
	for (let i = 0; i < S; i++) sessions.push((await createSession(srv, { title: `c${i}` })).id);
	const mine = new Set(sessions);

	const clients = [];
	t.after(() => Promise.all(clients.map((c) => c.close())));
	for (let i = 0; i < N; i += 20) {
		const batch = await Promise.all(
			Array.from({ length: Math.min(20, N - i) }, () => {
				const st = { seqs: [], idles: new Set(), mineCount: 0, created: new Set() };
				return wsConnect(srv.wsUrl, {
					keepEvents: false,
					onEvent: (e) => {
						st.seqs.push(e.seq);
						if (mine.has(e.sessionID)) st.mineCount++;
						if (e.type === "session.idle") st.idles.add(e.sessionID);
						if (e.type === "session.created") st.created.add(e.sessionID);
					},
				}).then((c) => Object.assign(c, { st }));
			}),
		);
		clients.push(...batch);
	}
	const subs = await Promise.all(clients.map((c) => c.call("subscribe", {})));
	const seq0 = subs[0].seq;
	for (const s of subs) assert.equal(s.seq, seq0, "every client subscribed at the same point");

	await Promise.all(sessions.map((id, n) => promptAsync(srv, id, `echo ${n}`)));
	await Promise.all(
		clients.map((c, i) =>
			c.until((x) => sessions.every((id) => x.st.idles.has(id)), { timeout: 90000, label: `client ${i}: idle of all ${S} sessions (has ${c.st.idles.size})` }),
		),
	);
	// Barrier: one more event; in-order delivery means everything before it has arrived.
	const marker = await createSession(srv, { title: "marker" });
	await Promise.all(clients.map((c, i) => c.until((x) => x.st.created.has(marker.id), { timeout: 30000, label: `client ${i}: marker` })));

	const ref = clients[0].st.seqs;
	assert.equal(ref[0], seq0 + 1, "the first event follows the subscribe seq");
	assert.equal(firstGap(ref), -1, "unfiltered: no seq gap");
	assert.ok(clients[0].st.mineCount >= S * 10, `a few events per session (${clients[0].st.mineCount})`);
	const refKey = ref.join(",");
	for (const [i, c] of clients.entries()) {
		assert.equal(firstNonIncreasing(c.st.seqs), -1, `client ${i}: strictly increasing seq`);
		assert.equal(c.st.mineCount, clients[0].st.mineCount, `client ${i}: same number of events of the 50 sessions`);
		assert.equal(c.st.seqs.length, ref.length, `client ${i}: same number of events`);
		assert.ok(c.st.seqs.join(",") === refKey, `client ${i}: the same events as client 0`);
		assert.ok(c.isOpen, `client ${i} still connected`);
	}
	const h = await api(srv, "GET", "/global/health");
	assert.equal(h.status, 200);
});
