// Three agentgate nodes on one PostgreSQL (the store, the session leases) and one NATS
// JetStream (the events, the requests between nodes), through the real binary and the
// OpenCode SDK (cluster.mjs starts them all on 127.0.0.1): clients on every node prompting
// the same sessions at once, kill -9 of a node mid-turn, NATS restarted under load,
// PostgreSQL gone for a few seconds, and a SIGTERM drain. What must hold is checked where
// it is kept: the turn ledger in PostgreSQL (one turn running per session, FIFO, one
// terminal reply per turn, nothing acknowledged lost) and the event streams of every
// subscriber on every node (each event of a tree exactly once, in seq order, the same
// events on every node).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createOpencodeClient as createV1 } from "@opencode-ai/sdk";
import { createOpencodeClient as createV2 } from "@opencode-ai/sdk/v2";
import { api, apiOk, pollUntil } from "./lib.mjs";
import { startPostgres } from "./pg.mjs";
import {
	clusterMissing, installFreshFetch, pidsMentioning, startCluster, startNats, subscribe,
} from "./cluster.mjs";

installFreshFetch();

const missing = clusterMissing();
const T = { timeout: 150_000 };
const LEASE_MS = 2000;
let pg = null;
let nats = null;

// ---------------------------------------------------------------------------
// What the ledger holds (PostgreSQL), and the checks every test makes on it

const list = (ids) => [...ids].map((id) => `'${id}'`).join(",");

/** Every session of the trees rooted at roots. */
const treeSessions = (c, roots) => c.query(`SELECT id FROM session WHERE root_id IN (${list(roots)}) ORDER BY id`);

/** The turns of the sessions: {id, session, user, state, started, ended, error}, by session then id. */
function turns(c, sessions) {
	return c.rows(`SELECT session_id, id, user_message_id, state, coalesce(time_started, -1), coalesce(time_ended, -1),
		coalesce(replace(error, '|', '/'), '') FROM turn WHERE session_id IN (${list(sessions)}) ORDER BY session_id, id`)
		.map(([session, id, user, state, started, ended, error]) =>
			({ session, id, user, state, started: Number(started), ended: Number(ended), error }));
}

/** The text of each user message of the sessions: [{session, id, turn, text}]. */
function userTexts(c, sessions) {
	return c.rows(`SELECT m.session_id, m.id, coalesce(m.turn_id, ''), replace(p.data::json->>'text', '|', '/')
		FROM message m JOIN part p ON p.message_id = m.id
		WHERE m.role = 'user' AND p.type = 'text' AND m.session_id IN (${list(sessions)}) ORDER BY m.id`)
		.map(([session, id, turn, text]) => ({ session, id, turn, text }));
}

const unfinished = (c, sessions) =>
	Number(c.query(`SELECT count(*) FROM turn WHERE state IN ('queued', 'running') AND session_id IN (${list(sessions)})`)[0]);

/** Waits (bounded) until no turn of the trees is queued or running. */
async function settled(c, roots, timeout = 60000) {
	await pollUntil(() => unfinished(c, treeSessions(c, roots)) === 0,
		{ timeout, interval: 100, label: `every turn of ${roots.size} tree(s) ended` });
}

/**
 * The ledger's invariants, over every session of the trees (checked once the turns ended):
 * every turn ended; per session, at most one turn ran at any time (no two
 * [started, ended] intervals overlap) and turns started in queue (id) order; every turn
 * has exactly one terminal assistant message (finished, not with tool-calls) and no
 * assistant message of it is left unfinished; every acknowledged prompt (acked: [{session,
 * text}]) is there exactly once, as a user message with its turn. Returns the turns.
 */
function checkLedger(c, roots, acked) {
	const sessions = treeSessions(c, roots);
	const ts = turns(c, sessions);
	const bySession = new Map();
	for (const t of ts) {
		assert.ok(["completed", "failed", "cancelled"].includes(t.state), `turn ${t.id} of ${t.session} is ${t.state}`);
		if (!bySession.has(t.session)) bySession.set(t.session, []);
		bySession.get(t.session).push(t);
	}
	for (const [s, list] of bySession) {
		const ran = list.filter((t) => t.started >= 0);
		for (let i = 1; i < ran.length; i++) {
			assert.ok(ran[i].started >= ran[i - 1].started,
				`session ${s}: turn ${ran[i].id} started (${ran[i].started}) before ${ran[i - 1].id} (${ran[i - 1].started}), queued ahead of it`);
			assert.ok(ran[i].started >= ran[i - 1].ended,
				`session ${s}: turns ${ran[i - 1].id} [${ran[i - 1].started}, ${ran[i - 1].ended}] and ${ran[i].id} [${ran[i].started}, ...] overlap`);
		}
	}
	const terminals = new Map(c.rows(`SELECT t.id, count(m.id) FROM turn t LEFT JOIN message m ON m.turn_id = t.id
		AND m.role = 'assistant' AND m.finish IS NOT NULL AND m.finish <> 'tool-calls'
		WHERE t.session_id IN (${list(sessions)}) GROUP BY t.id`).map(([id, n]) => [id, Number(n)]));
	for (const t of ts)
		if (t.started >= 0 || t.state !== "cancelled")
			assert.equal(terminals.get(t.id), 1, `turn ${t.id} (${t.state}) has ${terminals.get(t.id)} terminal assistant messages`);
	assert.deepEqual(c.query(`SELECT m.id FROM message m JOIN turn t ON t.id = m.turn_id WHERE m.role = 'assistant'
		AND m.finish IS NULL AND m.session_id IN (${list(sessions)})`), [], "assistant messages left unfinished");
	const users = userTexts(c, sessions);
	const turnOf = new Map(ts.map((t) => [t.user, t]));
	for (const a of acked) {
		const found = users.filter((u) => u.session === a.session && u.text === a.text);
		assert.equal(found.length, 1, `acknowledged prompt "${a.text}" on ${a.session} is stored ${found.length} times`);
		assert.ok(turnOf.get(found[0].id), `acknowledged prompt "${a.text}" has no turn`);
	}
	return ts;
}

/** The turn of the prompt whose text is text. */
function turnOfText(c, ts, session, text) {
	const u = userTexts(c, [session]).find((x) => x.text === text);
	assert.ok(u, `no user message "${text}" in ${session}`);
	const t = ts.find((x) => x.user === u.id);
	assert.ok(t, `no turn for "${text}"`);
	return t;
}

// ---------------------------------------------------------------------------
// What the subscribers got

const isIdle = (id) => (e) => e.type === "session.idle" && e.sessionID === id;

/** Each subscriber's events strictly increase in seq (so none twice); returns them. */
function inOrder(sub, pred = () => true) {
	const evs = sub.events().filter(pred);
	for (let i = 1; i < evs.length; i++)
		assert.ok(evs[i].seq > evs[i - 1].seq,
			`${sub.kind} on ${sub.node}: seq ${evs[i].seq} (${evs[i].type}) after ${evs[i - 1].seq} (${evs[i - 1].type})`);
	return evs;
}

/**
 * Every subscriber got the same events of the trees (the same seqs, each with the same
 * event), each once and in seq order, after seq from (mark) and up to seq upTo.
 */
function sameEvents(subs, roots, upTo, from) {
	let ref = null;
	for (const sub of subs) {
		const evs = inOrder(sub, (e) => roots.has(e.rootID) && e.seq > from && e.seq <= upTo);
		const m = new Map(evs.map((e) => [e.seq, JSON.stringify(e)]));
		if (!ref) {
			ref = { sub, m };
			continue;
		}
		const only = (a, b) => [...a.keys()].filter((k) => !b.has(k)).slice(0, 10).map((k) => a.get(k).slice(0, 300));
		assert.deepEqual(only(m, ref.m), [], `${sub.kind} on ${sub.node} has events ${ref.sub.kind} on ${ref.sub.node} lacks`);
		assert.deepEqual(only(ref.m, m), [], `${sub.kind} on ${sub.node} lacks events ${ref.sub.kind} on ${ref.sub.node} has`);
		for (const [seq, e] of m) assert.equal(e, ref.m.get(seq), `seq ${seq} differs between ${sub.kind}@${sub.node} and ${ref.sub.kind}@${ref.sub.node}`);
	}
	return ref ? ref.m.size : 0;
}

/**
 * A point every unfiltered subscriber has passed: a session created on node, seen by all
 * of them. Its seq; what follows it is what all of them must have (they opened one after
 * the other: an event between two openings is only the first one's).
 */
async function mark(node, subs) {
	const m = (await apiOk(node, "POST", "/session", { title: "mark" })).id;
	const seen = await Promise.all(subs.map((s) => s.until((evs) => evs.find((e) => e.type === "session.created" && e.sessionID === m),
		{ label: `${s.kind} on ${s.node} sees the mark` })));
	return seen[0].seq;
}

/** The highest seq any of the subscribers has of the trees. */
const topSeq = (subs, roots) => Math.max(0, ...subs.flatMap((s) => s.events().filter((e) => roots.has(e.rootID)).map((e) => e.seq)));

/** Waits (bounded) until every subscriber has an event of the trees at or above seq. */
const allReach = (subs, roots, seq, timeout = 20000) =>
	Promise.all(subs.map((s) => s.until((evs) => evs.some((e) => roots.has(e.rootID) && e.seq >= seq),
		{ timeout, label: `${s.kind} on ${s.node} reaches seq ${seq}` })));

/** The concatenated text deltas of each message in a subscriber's events. */
function deltas(evs) {
	const out = new Map();
	for (const e of evs)
		if (e.type === "message.part.delta" && e.properties.field === "text")
			out.set(e.properties.messageID, (out.get(e.properties.messageID) ?? "") + e.properties.delta);
	return out;
}

/**
 * Waits (bounded) until every subscriber has the end of every session of the trees: the
 * last assistant message PostgreSQL holds for it, completed, then the session's idle.
 * Call once the turns ended (settled). Returns the highest seq any subscriber has then.
 */
async function quiesced(c, subs, roots, timeout = 30000) {
	const last = c.rows(`SELECT DISTINCT ON (session_id) session_id, id FROM message WHERE role = 'assistant'
		AND session_id IN (${list(treeSessions(c, roots))}) ORDER BY session_id, id DESC`);
	await Promise.all(subs.map((s) => s.until((evs) => last.every(([sid, mid]) => {
		const done = evs.find((e) => e.type === "message.updated" && e.properties.info?.id === mid && e.properties.info.time?.completed);
		return done && evs.some((e) => isIdle(sid)(e) && e.seq > done.seq);
	}), { timeout, label: `${s.kind} on ${s.node} has the end of ${last.length} sessions` })));
	return topSeq(subs, roots);
}

/** Opens subscribers of every kind on every node, unfiltered (every tree). */
async function subscribeAll(c, t) {
	const subs = [];
	for (const n of c.nodes)
		for (const kind of ["event", "global", "ws"]) subs.push(await subscribe(n, kind));
	t.after(() => Promise.all(subs.map((s) => s.close())));
	return subs;
}

const prompt = (node, id, text) =>
	api(node, "POST", `/session/${id}/prompt_async`, { parts: [{ type: "text", text }] }, { timeout: 30000 });

/** A text prompt acknowledged (204), recorded in acked. */
async function promptOk(node, id, text, acked) {
	const r = await prompt(node, id, text);
	assert.equal(r.status, 204, `prompt_async "${text}" on ${node.name}: ${r.status} ${r.text}`);
	acked.push({ session: id, text });
}

// ---------------------------------------------------------------------------

describe("a cluster of three nodes", { skip: missing ? `cluster tests skipped: ${missing}` : false }, () => {
	before(async () => {
		pg = await startPostgres();
		nats = await startNats();
	});
	after(async () => {
		await nats?.destroy();
		await pg?.destroy();
		// each cluster's destroy checked its nodes; the servers of this file are gone too
		for (const dir of [nats?.dir, pg?.dir].filter(Boolean))
			assert.deepEqual(pidsMentioning(dir), [], `processes left running in ${dir}`);
	});

	test("clients on every node prompting the same sessions at once: the ledger holds and every subscriber on every node gets every event once, in seq order", T, async (t) => {
		const c = await startCluster({ pg, nats, leaseMs: LEASE_MS });
		t.after(() => c.destroy());
		// one session created on each node; every node's clients prompt all three
		const sessions = [];
		for (const n of c.nodes) sessions.push((await apiOk(n, "POST", "/session", { title: `from ${n.name}` })).id);
		const roots = new Set(sessions);
		const subs = await subscribeAll(c, t);
		// a subscriber to one session on each node (the filter, through every node)
		for (const n of c.nodes) subs.push(await subscribe(n, "event", { query: `?sessionID=${sessions[0]}` }));
		const from = await mark(c.nodes[0], subs.slice(0, 9));
		const acked = [];
		const held = [];
		const clients = c.nodes.flatMap((n) => [
			{ node: n, v1: createV1({ baseUrl: n.url }), tag: `${n.name}a` },
			{ node: n, v2: createV2({ baseUrl: n.url }), tag: `${n.name}b` },
		]);
		// each client, for each session: two prompt_async one after the other, then a held
		// prompt; all clients and sessions at once
		const order = [];
		await Promise.all(clients.flatMap((cl) => sessions.map(async (sid, si) => {
			const mine = [];
			for (let k = 0; k < 2; k++) {
				const text = `slow s ${cl.tag}-${si}-${k}`;
				const r = cl.v1
					? await cl.v1.session.promptAsync({ path: { id: sid }, body: { parts: [{ type: "text", text }] } })
					: await cl.v2.session.promptAsync({ sessionID: sid, parts: [{ type: "text", text }] });
				assert.equal(r.response.status, 204, `${text} on ${cl.node.name}: ${r.response.status} ${JSON.stringify(r.error)}`);
				acked.push({ session: sid, text });
				mine.push(text);
			}
			const text = `quick ${cl.tag}-${si}-held`;
			const r = cl.v1
				? await cl.v1.session.prompt({ path: { id: sid }, body: { parts: [{ type: "text", text }] } })
				: await cl.v2.session.prompt({ sessionID: sid, parts: [{ type: "text", text }] });
			assert.equal(r.response.status, 200, `held ${text} on ${cl.node.name}: ${r.response.status} ${JSON.stringify(r.error)}`);
			acked.push({ session: sid, text });
			mine.push(text);
			held.push({ session: sid, text, reply: r.data });
			order.push({ session: sid, texts: mine });
		})));
		await settled(c, roots);

		const ts = checkLedger(c, roots, acked);
		assert.equal(ts.length, acked.length, "one turn per prompt");
		assert.ok(ts.every((x) => x.state === "completed"), ts.filter((x) => x.state !== "completed").map((x) => `${x.id} ${x.state} ${x.error}`).join("\n"));
		// a client's prompts to a session, each sent after the last was acknowledged, queue in that order
		for (const o of order) {
			const ids = o.texts.map((text) => turnOfText(c, ts, o.session, text).id);
			assert.deepEqual(ids, [...ids].sort(), `${o.texts.join(", ")} queued out of order`);
		}
		// a held prompt answers its own turn's terminal reply
		for (const h of held) {
			const turn = turnOfText(c, ts, h.session, h.text);
			assert.equal(h.reply.info.role, "assistant");
			assert.equal(h.reply.info.sessionID, h.session);
			assert.deepEqual(c.query(`SELECT turn_id FROM message WHERE id = '${h.reply.info.id}'`), [turn.id], `${h.text}'s reply`);
			const text = h.reply.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
			assert.equal(text, `Quick answer to ${h.text.slice(6)}.`);
		}

		// every subscriber has every event up to the last idle; the same on every node
		const top = await quiesced(c, subs.slice(0, 9), roots);
		await allReach(subs.slice(0, 9), roots, top);
		await allReach(subs.slice(9), new Set([sessions[0]]), Math.max(...subs[9].events().map((e) => e.seq)));
		const n = sameEvents(subs.slice(0, 9), roots, top, from);
		assert.ok(n > acked.length * 5, `${n} events of the three trees`);
		// the filtered ones: exactly the unfiltered streams' events of that session
		const filteredTop = Math.min(...subs.slice(9).map((s) => Math.max(...s.events().map((e) => e.seq))));
		for (const s of subs.slice(9)) {
			const got = inOrder(s, (e) => e.seq <= filteredTop).map((e) => e.seq);
			const want = subs[0].events().filter((e) => e.sessionID === sessions[0] && e.seq <= filteredTop && e.seq >= got[0]).map((e) => e.seq);
			assert.deepEqual(got, want, `GET /event?sessionID= on ${s.node}`);
		}
		// the prompts really went through other nodes: forwarded to the one running the tree
		const fwd = await Promise.all(c.nodes.map(async (x) => (await x.metrics()).get("agentgate_forwarded_total") ?? 0));
		assert.ok(fwd.reduce((a, b) => a + b) >= acked.length / 2, `forwarded: ${fwd.join(", ")} of ${acked.length} prompts`);
		if (process.env.CLUSTER_DEBUG) console.log({ acked: acked.length, events: n, fwd, turns: ts.length });
		// each message's deltas on every subscriber add up to what PostgreSQL holds
		const stored = new Map(c.rows(`SELECT message_id, string_agg(replace(data::json->>'text', '|', '/'), '' ORDER BY id)
			FROM part WHERE type = 'text' AND session_id IN (${list(sessions)}) AND message_id IN
			(SELECT id FROM message WHERE role = 'assistant') GROUP BY message_id`));
		for (const s of subs.slice(0, 9))
			for (const [mid, text] of deltas(s.events())) assert.equal(text, stored.get(mid), `${s.kind} on ${s.node}: message ${mid}'s deltas`);
	});

	test("kill -9 of a node mid-turn, with prompts queued and a subagent running: another node takes its trees within the lease expiry, fails the running turns as interrupted, runs the queued ones, and a client that was on it resumes elsewhere with no gap", T, async (t) => {
		const c = await startCluster({ pg, nats, leaseMs: LEASE_MS });
		t.after(() => c.destroy());
		const [n1, n2, n3] = c.nodes;
		// three trees n1 runs: A busy with prompts queued, B a parent waiting on its
		// subagent, I idle (its lease held by n1 all the same)
		const A = (await apiOk(n1, "POST", "/session", { title: "A" })).id;
		const B = (await apiOk(n1, "POST", "/session", { title: "B" })).id;
		const I = (await apiOk(n1, "POST", "/session", { title: "I" })).id;
		const roots = new Set([A, B, I]);
		const acked = [];
		// the ones that stay first: they have every event n1's client gets
		const stay = await subscribe(n2, "event");
		const stayWs = await subscribe(n3, "ws", { params: {} });
		const from = await mark(n2, [stay, stayWs]);
		const onDead = await subscribe(n1, "event", { query: `?sessionID=${A}` });
		const wsDead = await subscribe(n1, "ws", { params: { sessionID: A } });
		t.after(() => Promise.all([onDead.close(), wsDead.close(), stay.close(), stayWs.close()]));
		const held = api(n1, "POST", `/session/${I}/message`, { parts: [{ type: "text", text: "quick idle one" }] });
		assert.equal((await held).status, 200);
		acked.push({ session: I, text: "quick idle one" });
		await promptOk(n1, A, "slow l A1", acked);
		await promptOk(n2, A, "quick A2", acked); // forwarded to n1, queued there
		await promptOk(n3, A, "slow s A3", acked);
		await promptOk(n2, B, "sub B1", acked);
		await promptOk(n3, B, "quick B2", acked);
		assert.deepEqual([A, B, I].map((r) => c.owner(r)), ["n1", "n1", "n1"]);
		// mid-turn: A streams, B's child streams (its task tool waits on it)
		await stay.until((evs) => evs.filter((e) => e.type === "message.part.delta" && e.sessionID === A).length >= 20 &&
			evs.filter((e) => e.type === "message.part.delta" && e.rootID === B && e.sessionID !== B).length >= 20,
		{ label: "A and B's subagent stream", timeout: 30000 });
		await onDead.until((evs) => evs.filter((e) => e.type === "message.part.delta").length >= 20, { label: "n1's client streams A" });
		await wsDead.until((evs) => evs.filter((e) => e.type === "message.part.delta").length >= 20, { label: "n1's WS client streams A" });
		const child = c.query(`SELECT id FROM session WHERE parent_id = '${B}'`)[0];
		assert.ok(child, "B's subagent session");
		assert.deepEqual(c.query(`SELECT state FROM turn WHERE session_id IN ('${A}', '${B}', '${child}') ORDER BY session_id = '${A}' DESC, session_id = '${B}' DESC, id`),
			["running", "queued", "queued", "running", "queued", "running"]);

		const killedAt = Date.now();
		await n1.kill9();
		await onDead.raw.waitEnd(); // every byte n1 sent is read
		await wsDead.raw.closed();
		const lastSeen = Math.max(...onDead.events().map((e) => e.seq));
		const lastSeenWs = Math.max(...wsDead.events().map((e) => e.seq));
		// within the lease expiry and a bound, every tree runs on another node or is idle
		await settled(c, roots, LEASE_MS + 20000);
		const settledMs = Date.now() - killedAt;
		const ts = checkLedger(c, roots, acked);
		const turnA1 = turnOfText(c, ts, A, "slow l A1");
		assert.equal(turnA1.state, "failed");
		assert.match(turnA1.error, /interrupted/);
		for (const text of ["quick A2", "slow s A3"]) assert.equal(turnOfText(c, ts, A, text).state, "completed", text);
		assert.equal(turnOfText(c, ts, B, "quick B2").state, "completed");
		const parent = turnOfText(c, ts, B, "sub B1");
		assert.equal(parent.state, "failed", "the parent's turn ran on n1: interrupted");
		assert.match(parent.error, /interrupted/);
		const childTurns = ts.filter((x) => x.session === child);
		assert.ok(childTurns.length >= 1 && childTurns.every((x) => x.state !== "running" && x.state !== "queued"), JSON.stringify(childTurns));
		// the queued turns ran on a live node, which holds the trees now
		for (const r of [A, B]) assert.ok(["n2", "n3"].includes(c.owner(r)), `${r} is run by ${c.owner(r)}`);
		// the first event of a turn that ran after the kill: the failover time
		const a2 = turnOfText(c, ts, A, "quick A2");
		const resumedAt = a2.started;
		assert.ok(resumedAt - killedAt < LEASE_MS + 10000, `A's queued turn started ${resumedAt - killedAt} ms after the kill`);
		// no session is left busy on any live node
		for (const n of [n2, n3]) {
			const st = await apiOk(n, "GET", "/session/status");
			for (const id of [A, B, I, child]) assert.ok(!st[id] || st[id].type === "idle", `${id} is ${JSON.stringify(st[id])} on ${n.name}`);
		}
		// the idle tree answers through any node (it is free, or taken by whoever asks first)
		const again = await api(n3, "POST", `/session/${I}/message`, { parts: [{ type: "text", text: "quick after the kill" }] });
		assert.equal(again.status, 200, again.text);
		acked.push({ session: I, text: "quick after the kill" });

		// n1's client resumes on n2 from the last seq it saw: the events of A after it, all of
		// them (what the client that stayed on n2 got), none twice
		const resumed = await subscribe(n2, "event", { query: `?sessionID=${A}`, headers: { "last-event-id": String(lastSeen) } });
		t.after(() => resumed.close());
		const lastIdleA = Math.max(...stay.events().filter(isIdle(A)).map((e) => e.seq));
		await resumed.until((evs) => evs.some((e) => e.seq >= lastIdleA), { label: "the resumed stream reaches A's last idle" });
		const got = inOrder(resumed, (e) => e.seq <= lastIdleA).map((e) => e.seq);
		const want = stay.events().filter((e) => e.sessionID === A && e.seq > lastSeen && e.seq <= lastIdleA).map((e) => e.seq);
		assert.deepEqual(got, want, "resumed on n2 after the kill");
		// and what n1's client had before is exactly the rest
		const before = inOrder(onDead).map((e) => e.seq);
		const all = stay.events().filter((e) => e.sessionID === A && e.seq >= before[0] && e.seq <= lastIdleA).map((e) => e.seq);
		assert.deepEqual([...before, ...got], all, "n1's stream then n2's: every event of A once");
		// n1's WebSocket client resumes on n3 with subscribe {since}: the same
		const resumedWs = await subscribe(n3, "ws", { params: { sessionID: A, since: lastSeenWs } });
		t.after(() => resumedWs.close());
		await resumedWs.until((evs) => evs.some((e) => e.seq >= lastIdleA), { label: "the resumed WS reaches A's last idle" });
		const gotWs = inOrder(resumedWs, (e) => e.seq <= lastIdleA).map((e) => e.seq);
		const beforeWs = inOrder(wsDead).map((e) => e.seq);
		assert.deepEqual([...beforeWs, ...gotWs], stay.events().filter((e) => e.sessionID === A && e.seq >= beforeWs[0] &&
			e.seq <= lastIdleA).map((e) => e.seq), "n1's WS then n3's: every event of A once");
		// both live nodes' subscribers saw the trees alike, the interruption included
		const top = await quiesced(c, [stay, stayWs], roots);
		await allReach([stay, stayWs], roots, top);
		sameEvents([stay, stayWs], roots, top, from);
		assert.ok(stay.events().some((e) => e.type === "session.error" && e.sessionID === A && /interrupted/.test(JSON.stringify(e.properties.error))));
		await settled(c, roots);
		checkLedger(c, roots, acked);
		if (process.env.CLUSTER_DEBUG) console.log({ settledMs, failoverMs: resumedAt - killedAt });
	});


	test("NATS restarted under load: every turn ends, nothing acknowledged is lost, every subscriber on every node has every event once and in order, and the nodes work on without a restart", T, async (t) => {
		const c = await startCluster({ pg, nats, leaseMs: LEASE_MS });
		t.after(async () => {
			if (!nats.running) await nats.start();
			await c.destroy();
		});
		const sessions = [];
		for (const n of c.nodes) sessions.push((await apiOk(n, "POST", "/session", { title: `on ${n.name}` })).id);
		const roots = new Set(sessions);
		const subs = await subscribeAll(c, t);
		const from = await mark(c.nodes[0], subs);
		const pids = c.nodes.map((n) => n.proc.pid);
		const acked = [];
		const refused = [];
		for (let k = 1; k <= 3; k++)
			for (const [i, n] of c.nodes.entries()) await promptOk(n, sessions[i], `slow m S${i}-${k}`, acked);
		await promptOk(c.nodes[1], sessions[0], "slow s S0-forwarded", acked);
		await Promise.all(subs.map((s) => s.until((evs) => evs.filter((e) => e.type === "message.part.delta").length >= 60,
			{ label: `${s.kind} on ${s.node} streams`, timeout: 20000 })));

		await nats.stop();
		const stoppedAt = Date.now();
		// the nodes take prompts for the trees they run (PostgreSQL has them); a prompt
		// for another node's tree needs NATS to get there: accepted once it is back, or
		// refused with a 503 that says why
		for (const [i, n] of c.nodes.entries()) await promptOk(n, sessions[i], `quick S${i}-during`, acked);
		const fwd = await prompt(c.nodes[0], sessions[1], "quick S1-forwarded-during");
		if (fwd.status === 204) acked.push({ session: sessions[1], text: "quick S1-forwarded-during" });
		else {
			assert.equal(fwd.status, 503, fwd.text);
			assert.match(fwd.json.message, /NATS|nats/, fwd.text);
			refused.push("quick S1-forwarded-during");
		}
		const outage = Date.now() - stoppedAt;
		await nats.start();

		await settled(c, roots);
		if (process.env.CLUSTER_DEBUG) console.log({ outage, forwardedDuring: fwd.status });
		const ts = checkLedger(c, roots, acked);
		assert.ok(ts.every((x) => x.state === "completed"), ts.filter((x) => x.state !== "completed").map((x) => `${x.id} ${x.state} ${x.error}`).join("\n"));
		for (const text of refused)
			assert.deepEqual(c.query(`SELECT count(*) FROM part WHERE data LIKE '%${text}%'`), ["0"], `refused "${text}" is nowhere`);
		// every subscriber on every node: the same events, each once, in order, and no seq missing
		const top = await quiesced(c, subs, roots);
		await allReach(subs, roots, top);
		sameEvents(subs, roots, top, from);
		for (const s of subs) {
			const seqs = s.events().filter((e) => e.seq > from && e.seq <= top).map((e) => e.seq);
			const gap = seqs.findIndex((q, i) => i > 0 && q !== seqs[i - 1] + 1);
			assert.equal(gap, -1, `${s.kind} on ${s.node}: seq ${seqs[gap - 1]} then ${seqs[gap]}`);
		}
		const stored = new Map(c.rows(`SELECT message_id, string_agg(replace(data::json->>'text', '|', '/'), '' ORDER BY id)
			FROM part WHERE type = 'text' AND session_id IN (${list(sessions)}) AND message_id IN
			(SELECT id FROM message WHERE role = 'assistant') GROUP BY message_id`));
		for (const s of subs) {
			const d = deltas(s.events());
			assert.ok(d.size >= acked.length, `${s.kind} on ${s.node}: ${d.size} messages streamed`);
			for (const [mid, text] of d) assert.equal(text, stored.get(mid), `${s.kind} on ${s.node}: message ${mid}'s deltas`);
		}
		// the same processes work on: a request for another node's tree from each node
		assert.deepEqual(c.nodes.map((n) => n.proc.pid), pids);
		for (const [i, n] of c.nodes.entries()) {
			const sid = sessions[(i + 1) % 3];
			const r = await api(n, "POST", `/session/${sid}/message`, { parts: [{ type: "text", text: `quick after ${i}` }] });
			assert.equal(r.status, 200, `${n.name} → ${sid}: ${r.text}`);
			acked.push({ session: sid, text: `quick after ${i}` });
		}
		await settled(c, roots);
		checkLedger(c, roots, acked);
		const top2 = await quiesced(c, subs, roots);
		await allReach(subs, roots, top2);
		sameEvents(subs, roots, top2, from);
	});


	test("PostgreSQL gone for a few seconds: prompts on every node refused with a 503 naming it, nothing refused written, and every node recovers without a restart", T, async (t) => {
		const c = await startCluster({ pg, nats, leaseMs: LEASE_MS });
		let pgDown = false;
		t.after(async () => {
			if (pgDown) await pg.start();
			await c.destroy();
		});
		const [n1, n2, n3] = c.nodes;
		const S1 = (await apiOk(n1, "POST", "/session", { title: "S1" })).id;
		const S2 = (await apiOk(n2, "POST", "/session", { title: "S2" })).id;
		const roots = new Set([S1, S2]);
		const subs = [await subscribe(n3, "event"), await subscribe(n1, "ws", { params: {} })];
		t.after(() => Promise.all(subs.map((x) => x.close())));
		const from = await mark(n2, subs);
		const acked = [];
		for (const [n, sid] of [[n1, S1], [n2, S2]]) {
			const r = await api(n, "POST", `/session/${sid}/message`, { parts: [{ type: "text", text: `quick before ${sid}` }] });
			assert.equal(r.status, 200, r.text);
			acked.push({ session: sid, text: `quick before ${sid}` });
		}
		await settled(c, roots);
		const pids = c.nodes.map((n) => n.proc.pid);

		await pg.stop();
		pgDown = true;
		const refused = [];
		const down = Date.now();
		let round = 0;
		try {
			// on every node, for the tree it runs and for another's, for three seconds (past
			// the lease expiry), a round every quarter of a second
			await pollUntil(async () => {
				round++;
				for (const n of c.nodes)
					for (const sid of [S1, S2]) {
						const text = `quick refused ${n.name} ${round} ${sid}`;
						const r = await api(n, "POST", `/session/${sid}/prompt_async`, { parts: [{ type: "text", text }] }, { timeout: 15000 });
						assert.equal(r.status, 503, `${n.name} → ${sid}: ${r.status} ${r.text}`);
						assert.equal(r.json.name, "ServiceUnavailable");
						assert.match(r.json.message, /PostgreSQL/, `${n.name} → ${sid}: ${r.json.message}`);
						refused.push(text);
					}
				const created = await api(n3, "POST", "/session", { title: "refused" }, { timeout: 15000 });
				assert.equal(created.status, 503, created.text);
				assert.match(created.json.message, /PostgreSQL/);
				return Date.now() - down >= 3000;
			}, { timeout: 60000, interval: 250, label: "three seconds of refusals" });
			// each node says why it cannot work
			for (const n of c.nodes) {
				const h = await n.health();
				assert.equal(h.status, 503, `${n.name}'s health while PostgreSQL is gone: ${JSON.stringify(h.json)}`);
				assert.match(JSON.stringify(h.json), /PostgreSQL/);
			}
		} finally {
			await pg.start();
			pgDown = false;
		}
		const outage = Date.now() - down;
		await Promise.all(c.nodes.map((n) => pollUntil(async () => (await n.health()).status === 200,
			{ timeout: 30000, interval: 100, label: `${n.name} healthy again` })));
		// the same processes take prompts again, from every node for either tree
		assert.deepEqual(c.nodes.map((n) => n.proc.pid), pids);
		for (const n of c.nodes)
			for (const sid of [S1, S2]) {
				const text = `quick after ${n.name} ${sid}`;
				const r = await api(n, "POST", `/session/${sid}/message`, { parts: [{ type: "text", text }] });
				assert.equal(r.status, 200, `${n.name} → ${sid} after the outage: ${r.text}`);
				acked.push({ session: sid, text });
			}
		await settled(c, roots);
		const ts = checkLedger(c, roots, acked);
		assert.equal(ts.length, acked.length, "one turn per acknowledged prompt, none for a refused one");
		assert.ok(ts.every((x) => x.state === "completed"), ts.filter((x) => x.state !== "completed").map((x) => `${x.id} ${x.state} ${x.error}`).join("\n"));
		assert.deepEqual(c.query(`SELECT count(*) FROM part WHERE data LIKE '%quick refused%'`), ["0"], "a refused prompt was written");
		assert.deepEqual(c.query(`SELECT count(*) FROM message WHERE role = 'user' AND session_id IN (${list([S1, S2])})`), [String(acked.length)]);
		assert.deepEqual(c.query(`SELECT count(*) FROM session WHERE data LIKE '%"refused"%'`), ["0"], "a refused session was written");
		const top = await quiesced(c, subs, roots);
		await allReach(subs, roots, top);
		sameEvents(subs, roots, top, from);
		if (process.env.CLUSTER_DEBUG) console.log({ outage, refused: refused.length });
	});


	test("kill -9 of a node running a background subagent: the node that takes the tree over fails the child's turn as interrupted and the parent gets the task's report as a turn of its own", T, async (t) => {
		const c = await startCluster({ pg, nats, leaseMs: LEASE_MS });
		t.after(() => c.destroy());
		const [n1, n2] = c.nodes;
		const P = (await apiOk(n1, "POST", "/session", { title: "P" })).id;
		// held through n2: the parent's turn ends once the child started in the background
		const r = await api(n2, "POST", `/session/${P}/message`, { parts: [{ type: "text", text: "bg P1" }] }, { timeout: 30000 });
		assert.equal(r.status, 200, r.text);
		assert.equal(c.owner(P), "n1");
		const child = await pollUntil(() => c.query(`SELECT id FROM session WHERE parent_id = '${P}'`)[0],
			{ timeout: 10000, interval: 50, label: "the background child exists" });
		await pollUntil(() => c.query(`SELECT count(*) FROM turn WHERE session_id = '${child}' AND state = 'running'`)[0] === "1",
			{ timeout: 10000, interval: 50, label: "the child's turn runs on n1" });
		await n1.kill9();
		// the child's turn fails as interrupted where the tree moved, and its report reaches
		// the parent: a user message of source task naming the child, then its reply
		await pollUntil(() => c.query(`SELECT count(*) FROM turn WHERE session_id = '${P}' AND source = 'task' AND state = 'completed'`)[0] === "1",
			{ timeout: LEASE_MS + 20000, interval: 100, label: "the parent's report turn completed" });
		const childTurn = c.rows(`SELECT state, error FROM turn WHERE session_id = '${child}'`);
		assert.deepEqual(childTurn.map((x) => x[0]), ["failed"]);
		assert.match(childTurn[0][1], /interrupted/);
		const report = c.query(`SELECT m.data FROM message m JOIN turn t ON t.user_message_id = m.id WHERE t.session_id = '${P}' AND t.source = 'task'`);
		const parts = c.query(`SELECT data::json->>'text' FROM part WHERE message_id = '${JSON.parse(report[0]).id}' AND type = 'text'`);
		assert.match(parts.join(""), new RegExp(`background task ${child}.*failed`, "s"));
		assert.ok(["n2", "n3"].includes(c.owner(P)), `P is run by ${c.owner(P)}`);
		checkLedger(c, new Set([P]), [{ session: P, text: "bg P1" }]);
	});

	test("SIGTERM drains a node: its idle trees go to the others at once, its running turn finishes, its queued work runs elsewhere, and it exits 0", T, async (t) => {
		const c = await startCluster({ pg, nats, leaseMs: LEASE_MS });
		t.after(() => c.destroy());
		const [n1, n2, n3] = c.nodes;
		const I = (await apiOk(n1, "POST", "/session", { title: "idle" })).id;
		const B = (await apiOk(n1, "POST", "/session", { title: "busy" })).id;
		const roots = new Set([I, B]);
		const stay = await subscribe(n2, "event");
		t.after(() => stay.close());
		const acked = [];
		const first = await api(n1, "POST", `/session/${I}/message`, { parts: [{ type: "text", text: "quick idle" }] });
		assert.equal(first.status, 200, first.text);
		acked.push({ session: I, text: "quick idle" });
		await promptOk(n1, B, "slow l B1", acked);
		await promptOk(n2, B, "slow m B2", acked);
		await promptOk(n3, B, "quick B3", acked);
		assert.deepEqual([c.owner(I), c.owner(B)], ["n1", "n1"]);
		await stay.until((evs) => evs.filter((e) => e.type === "message.part.delta" && e.sessionID === B).length >= 20,
			{ label: "B1 streams", timeout: 20000 });
		const b2 = c.query(`SELECT t.id FROM turn t JOIN part p ON p.message_id = t.user_message_id WHERE p.data LIKE '%slow m B2%'`)[0];
		assert.ok(b2);

		const exit = n1.term(45000);
		// draining: said in the node table and by its health; its idle tree is given up
		await pollUntil(() => c.query("SELECT draining FROM node WHERE id = 'n1'")[0] === "t", { label: "n1 draining in the node table" });
		const h = await n1.health();
		assert.equal(h.status, 503, JSON.stringify(h.json));
		assert.match(h.json.message, /node n1 is draining/);
		await pollUntil(() => c.owner(I) !== "n1", { timeout: 5000, label: "n1 gives up its idle tree" });
		// which meanwhile works through any node, run by another
		const during = await api(n2, "POST", `/session/${I}/message`, { parts: [{ type: "text", text: "quick during the drain" }] });
		assert.equal(during.status, 200, during.text);
		acked.push({ session: I, text: "quick during the drain" });
		assert.ok(["n2", "n3"].includes(c.owner(I)), `I is run by ${c.owner(I)}`);
		// B's queued turn starts on a node that is not draining
		const [b2state, b2node] = await pollUntil(() => {
			const r = c.rows(`SELECT t.state, coalesce(l.node, '') FROM turn t LEFT JOIN lease l ON l.root_id = '${B}'
				AND l.expires_at > now() WHERE t.id = '${b2}'`)[0];
			return r[0] !== "queued" && r;
		}, { timeout: 40000, interval: 50, label: "B's queued turn starts" });
		const code = await exit;
		assert.deepEqual(code, { code: 0, signal: null }, n1.output());

		await settled(c, roots);
		const ts = checkLedger(c, roots, acked);
		for (const x of ts) assert.equal(x.state, "completed", `${x.id}: ${x.state} ${x.error}`);
		assert.equal(c.query("SELECT count(*) FROM node WHERE id = 'n1'")[0], "0", "n1 left the node table");
		assert.equal(c.query("SELECT count(*) FROM lease WHERE node = 'n1'")[0], "0", "n1 holds no lease");
		const after = await api(n3, "POST", `/session/${B}/message`, { parts: [{ type: "text", text: "quick after the drain" }] });
		assert.equal(after.status, 200, after.text);
		// the draining node let its running turn end, then handed the tree over: the queued
		// turn started on a node that is not draining
		assert.ok(["n2", "n3"].includes(b2node),
			`B's queued turn ran (${b2state} when first seen) on ${b2node || "a node that has left"}: the draining node ` +
			"started it itself rather than handing the tree to another node");
	});

});
