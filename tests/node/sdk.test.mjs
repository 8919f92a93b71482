// Compatibility proof: the official OpenCode SDK (v1 and v2 entry points) against
// agentgate serve, unchanged.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createOpencodeClient as createV1 } from "@opencode-ai/sdk";
import { createOpencodeClient as createV2 } from "@opencode-ai/sdk/v2";
import { startServer, pollUntil, withTimeout, deferred } from "./lib.mjs";

const T = { timeout: 90_000 };

/** Collects what an SDK SSE stream yields; until() waits (bounded) for a condition. */
function drain(stream) {
	const log = { events: [], ended: false, error: null, waiters: new Set() };
	const done = deferred();
	log.done = done.promise;
	const notify = () => log.waiters.forEach((w) => w());
	(async () => {
		try {
			for await (const e of stream) {
				log.events.push(e);
				notify();
			}
		} catch (e) {
			log.error = e;
		}
		log.ended = true;
		notify();
		done.resolve();
	})();
	log.until = (cond, label, timeout = 20000) =>
		new Promise((resolve, reject) => {
			const check = () => {
				const v = cond(log.events);
				if (v) {
					cleanup();
					resolve(v);
				} else if (log.ended) {
					cleanup();
					reject(new Error(`SDK stream ended (${log.error?.message ?? "closed"}) before: ${label}`));
				}
			};
			const t = setTimeout(() => {
				cleanup();
				reject(new Error(`timed out after ${timeout} ms waiting for ${label}; got ${log.events.map((e) => e.type).join(",").slice(-600)}`));
			}, timeout);
			const cleanup = () => {
				clearTimeout(t);
				log.waiters.delete(check);
			};
			log.waiters.add(check);
			check();
		});
	return log;
}

function assertSession(s, label) {
	assert.ok(s && typeof s === "object", `${label}: a Session object`);
	assert.match(s.id, /^ses_/, `${label}: id`);
	assert.equal(typeof s.title, "string", `${label}: title`);
	assert.equal(typeof s.slug, "string", `${label}: slug (required by v2)`);
	assert.equal(typeof s.projectID, "string", `${label}: projectID`);
	assert.equal(typeof s.directory, "string", `${label}: directory`);
	assert.equal(typeof s.version, "string", `${label}: version`);
	assert.equal(typeof s.time?.created, "number", `${label}: time.created`);
	assert.equal(typeof s.time?.updated, "number", `${label}: time.updated`);
	for (const [k, v] of Object.entries(s)) assert.notEqual(v, null, `${label}: ${k} is null (omit optional fields)`);
}

function assertAssistant(info, sessionID, label) {
	assert.equal(info.role, "assistant", `${label}: role`);
	assert.match(info.id, /^msg_/, `${label}: id`);
	assert.equal(info.sessionID, sessionID, `${label}: sessionID`);
	assert.match(info.parentID ?? "", /^msg_/, `${label}: parentID (the user message)`);
	assert.equal(typeof info.modelID, "string", `${label}: modelID`);
	assert.equal(typeof info.providerID, "string", `${label}: providerID`);
	assert.equal(typeof info.mode, "string", `${label}: mode`);
	assert.equal(typeof info.agent, "string", `${label}: agent`);
	assert.equal(typeof info.path?.cwd, "string", `${label}: path.cwd`);
	assert.equal(typeof info.path?.root, "string", `${label}: path.root`);
	assert.equal(typeof info.cost, "number", `${label}: cost`);
	for (const k of ["input", "output", "reasoning"]) assert.equal(typeof info.tokens?.[k], "number", `${label}: tokens.${k}`);
	assert.equal(typeof info.tokens?.cache?.read, "number", `${label}: tokens.cache.read`);
	assert.equal(typeof info.tokens?.cache?.write, "number", `${label}: tokens.cache.write`);
	assert.equal(typeof info.time?.created, "number", `${label}: time.created`);
	assert.equal(typeof info.time?.completed, "number", `${label}: time.completed`);
}

const textOf = (parts) => parts.filter((p) => p.type === "text").map((p) => p.text).join("\n");

/** The same flow through v1 ({path:{id}, body}) and v2 ({sessionID, ...}) call styles. */
const STYLES = {
	v1: (baseUrl) => {
		const c = createV1({ baseUrl });
		return {
			create: (body = {}) => c.session.create({ body }),
			get: (id) => c.session.get({ path: { id } }),
			children: (id) => c.session.children({ path: { id } }),
			prompt: (id, text) => c.session.prompt({ path: { id }, body: { parts: [{ type: "text", text }] } }),
			promptAsync: (id, text) => c.session.promptAsync({ path: { id }, body: { parts: [{ type: "text", text }] } }),
			status: () => c.session.status(),
			messages: (id) => c.session.messages({ path: { id } }),
			abort: (id) => c.session.abort({ path: { id } }),
			agents: () => c.app.agents(),
			subscribe: (signal) => c.event.subscribe({ signal, sseMaxRetryAttempts: 1 }),
		};
	},
	v2: (baseUrl) => {
		const c = createV2({ baseUrl });
		return {
			create: (body = {}) => c.session.create(body),
			get: (sessionID) => c.session.get({ sessionID }),
			children: (sessionID) => c.session.children({ sessionID }),
			prompt: (sessionID, text) => c.session.prompt({ sessionID, parts: [{ type: "text", text }] }),
			promptAsync: (sessionID, text) => c.session.promptAsync({ sessionID, parts: [{ type: "text", text }] }),
			status: () => c.session.status(),
			messages: (sessionID) => c.session.messages({ sessionID }),
			abort: (sessionID) => c.session.abort({ sessionID }),
			agents: () => c.app.agents(),
			subscribe: (signal) => c.event.subscribe(undefined, { signal, sseMaxRetryAttempts: 1 }),
			health: () => c.global.health(),
		};
	},
};

function ok(r, label, status = 200) {
	assert.equal(r.error, undefined, `${label}: SDK error ${JSON.stringify(r.error)}`);
	assert.equal(r.response?.status, status, `${label}: HTTP status`);
	return r.data;
}

for (const style of ["v1", "v2"]) {
	test(`SDK ${style}: create → prompt (echo tool) → promptAsync → status → messages`, T, async (t) => {
		const srv = await startServer();
		t.after(() => srv.stop());
		const c = STYLES[style](srv.url);

		if (c.health) {
			const h = ok(await c.health(), "global.health");
			assert.equal(h.healthy, true);
			assert.equal(typeof h.version, "string");
		}

		const s = ok(await c.create({ title: `sdk ${style}` }), "session.create");
		assertSession(s, "session.create");
		assert.equal(s.title, `sdk ${style}`);

		const r = await c.prompt(s.id, "echo from the sdk");
		const reply = ok(r, "session.prompt");
		assert.ok(reply && reply.info && Array.isArray(reply.parts), "prompt returns {info, parts}");
		assertAssistant(reply.info, s.id, "prompt reply");
		assert.equal(reply.info.finish, "stop", "the terminal reply finishes with stop");
		assert.ok(textOf(reply.parts).includes("The echo tool returned: from the sdk"), `reply text: ${textOf(reply.parts)}`);
		for (const p of reply.parts) {
			assert.match(p.id, /^prt_/, "part id");
			assert.equal(p.sessionID, s.id, "part sessionID");
			assert.equal(p.messageID, reply.info.id, "part messageID");
		}
		const text = reply.parts.find((p) => p.type === "text");
		assert.equal(typeof text.time?.start, "number", "text part time.start");
		assert.equal(typeof text.time?.end, "number", "text part time.end (run keys on it)");

		const pa = await c.promptAsync(s.id, "echo second");
		assert.equal(pa.error, undefined, `promptAsync error ${JSON.stringify(pa.error)}`);
		assert.equal(pa.response.status, 204, "promptAsync → 204");

		// Poll session.status until the session is absent (idle) — bounded. The prompt is
		// durable once promptAsync returned, so the session must not read idle before its
		// reply exists.
		await pollUntil(
			async () => {
				const st = ok(await c.status(), "session.status");
				assert.equal(typeof st, "object");
				const mine = st[s.id];
				if (mine) assert.ok(["busy", "retry"].includes(mine.type), `status entry ${JSON.stringify(mine)}`);
				return !mine || mine.type === "idle";
			},
			{ timeout: 20000, label: "session.status without the session" },
		);

		const msgs = ok(await c.messages(s.id), "session.messages");
		assert.ok(Array.isArray(msgs));
		const users = msgs.filter((m) => m.info.role === "user");
		assert.equal(
			users.length,
			2,
			`2 user messages, got roles ${msgs.map((m) => m.info.role + ":" + (m.info.finish ?? "")).join(" ")}`,
		);
		assert.equal(textOf(users[0].parts), "echo from the sdk");
		assert.equal(textOf(users[1].parts), "echo second");
		assert.equal(msgs[0].info.id, users[0].info.id, "oldest first");
		for (let i = 1; i < msgs.length; i++)
			assert.ok(msgs[i].info.time.created >= msgs[i - 1].info.time.created, "chronological order");
		for (const [i, u] of users.entries()) {
			assert.equal(u.info.sessionID, s.id);
			assert.equal(typeof u.info.agent, "string", "user agent");
			assert.equal(typeof u.info.model?.providerID, "string", "user model.providerID");
			assert.equal(typeof u.info.model?.modelID, "string", "user model.modelID");
			const mine = msgs.filter((m) => m.info.role === "assistant" && m.info.parentID === u.info.id);
			const terminal = mine.filter((m) => m.info.finish !== "tool-calls");
			assert.equal(terminal.length, 1, `user message ${i}: exactly one terminal assistant reply`);
			assert.equal(terminal[0].info.finish, "stop");
			assertAssistant(terminal[0].info, s.id, `reply ${i}`);
			const toolStep = mine.find((m) => m.info.finish === "tool-calls");
			assert.ok(toolStep, `user message ${i}: a tool-calls step`);
			const tool = toolStep.parts.find((p) => p.type === "tool");
			assert.equal(tool?.tool, "echo");
			assert.equal(tool?.state?.status, "completed");
			assert.equal(typeof tool?.callID, "string");
			assert.equal(tool?.state?.output, i === 0 ? "from the sdk" : "second");
			assert.equal(typeof tool?.state?.title, "string", "completed tool state.title");
			assert.equal(typeof tool?.state?.time?.end, "number", "completed tool state.time.end");
			assert.ok(toolStep.parts.some((p) => p.type === "step-start"), "step-start part");
			assert.ok(toolStep.parts.some((p) => p.type === "step-finish"), "step-finish part");
		}
		assert.ok(textOf(msgs.at(-1).parts).includes("The echo tool returned: second"));
		assert.equal(msgs.at(-1).info.id, msgs.filter((m) => m.info.role === "assistant").at(-1).info.id);
	});
}

test("SDK event.subscribe (v1 and v2) sees message.part.delta and session.idle", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const c1 = STYLES.v1(srv.url);
	const c2 = STYLES.v2(srv.url);
	const ac = new AbortController();
	t.after(() => ac.abort());

	const s = ok(await c2.create({ title: "events" }), "session.create");
	const logs = {
		v1: drain((await c1.subscribe(ac.signal)).stream),
		v2: drain((await c2.subscribe(ac.signal)).stream),
	};
	for (const [k, log] of Object.entries(logs))
		await log.until((es) => es.some((e) => e.type === "server.connected"), `${k} server.connected`);

	const pa = await c2.promptAsync(s.id, "echo streamed");
	assert.equal(pa.response.status, 204);

	for (const [k, log] of Object.entries(logs)) {
		await log.until(
			(es) => es.some((e) => e.type === "session.idle" && e.properties?.sessionID === s.id),
			`${k} session.idle`,
		);
		const mine = log.events.filter((e) => e.properties?.sessionID === s.id || e.properties?.part?.sessionID === s.id || e.properties?.info?.sessionID === s.id);
		const deltas = mine.filter((e) => e.type === "message.part.delta");
		assert.ok(deltas.length > 0, `${k}: message.part.delta events`);
		for (const d of deltas) {
			assert.equal(d.properties.field, "text");
			assert.equal(typeof d.properties.delta, "string");
			assert.match(d.properties.messageID, /^msg_/);
			assert.match(d.properties.partID, /^prt_/);
		}
		const joined = deltas.map((d) => d.properties.delta).join("");
		assert.ok(joined.includes("The echo tool returned: streamed"), `${k}: deltas join to ${joined}`);
		const idleStatus = mine.findIndex((e) => e.type === "session.status" && e.properties.status?.type === "idle");
		const idle = mine.findIndex((e) => e.type === "session.idle");
		assert.ok(idleStatus >= 0, `${k}: session.status idle`);
		assert.ok(idleStatus < idle, `${k}: session.status idle comes before session.idle`);
		assert.ok(mine.some((e) => e.type === "session.status" && e.properties.status?.type === "busy"), `${k}: busy status`);
		assert.ok(mine.some((e) => e.type === "message.updated" && e.properties.info?.role === "assistant"), `${k}: message.updated`);
		const textEnd = mine.find((e) => e.type === "message.part.updated" && e.properties.part?.type === "text" && e.properties.part.time?.end);
		assert.ok(textEnd, `${k}: a finished text part (time.end) in message.part.updated`);
		assert.ok(mine.some((e) => e.type === "message.part.updated" && e.properties.part?.type === "tool" && e.properties.part.state?.status === "completed"), `${k}: completed tool part`);
	}
	ac.abort();
	await withTimeout(Promise.all([logs.v1.done, logs.v2.done]), 10000, "SDK streams end after abort");
});

test("SDK: session.get, children, app.agents, abort, unknown session → 404 NotFoundError", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	for (const style of ["v1", "v2"]) {
		const c = STYLES[style](srv.url);
		const s = ok(await c.create({ title: style }), `${style} create`);
		const g = ok(await c.get(s.id), `${style} session.get`);
		assertSession(g, `${style} session.get`);
		assert.equal(g.id, s.id);
		assert.equal(g.title, style);

		assert.deepEqual(ok(await c.children(s.id), `${style} children`), []);
		const child = ok(await c.create({ parentID: s.id, title: "child" }), `${style} create child`);
		assert.equal(child.parentID, s.id);
		const kids = ok(await c.children(s.id), `${style} children after`);
		assert.deepEqual(kids.map((k) => k.id), [child.id]);

		const agents = ok(await c.agents(), `${style} app.agents`);
		assert.ok(Array.isArray(agents));
		const build = agents.find((a) => a.name === "build");
		assert.ok(build, `agents contain build: ${agents.map((a) => a.name)}`);
		assert.ok(["primary", "all"].includes(build.mode), `build mode ${build.mode}`);
		assert.ok(agents.some((a) => a.name === "general" && a.mode === "subagent"), "general subagent");

		const nf = await c.get("ses_doesnotexist0000000000000");
		assert.equal(nf.response.status, 404, `${style}: unknown session status`);
		assert.equal(nf.error?.name, "NotFoundError", `${style}: error ${JSON.stringify(nf.error)}`);
		assert.equal(typeof nf.error?.data?.message, "string", `${style}: error.data.message`);
		const nf2 = await c.messages("ses_doesnotexist0000000000000");
		assert.equal(nf2.response.status, 404, `${style}: messages of unknown session`);
		assert.equal(nf2.error?.name, "NotFoundError");
	}
	// Abort while busy: true, and the reply ends aborted.
	const c = STYLES.v2(srv.url);
	const s = ok(await c.create({ title: "abort me" }), "create");
	const pending = c.prompt(s.id, "sleep 30000");
	await pollUntil(async () => ok(await c.status(), "status")[s.id]?.type === "busy", { label: "session busy" });
	assert.equal(ok(await c.abort(s.id), "abort (busy)"), true);
	const r = await withTimeout(pending, 15000, "the blocked prompt returns after abort");
	const reply = ok(r, "prompt answered after abort");
	assert.equal(reply.info.error?.name, "MessageAbortedError", `aborted reply error ${JSON.stringify(reply.info.error)}`);
});

// The SDK sends POSTs without arguments (session.create(), abort) with Content-Length: 0
// and no Content-Type; several in a row reuse one keep-alive connection.
test("SDK: body-less POSTs (create() with no arguments, abort) on a keep-alive connection", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const v1 = createV1({ baseUrl: srv.url });
	const v2 = createV2({ baseUrl: srv.url });
	const a = ok(await v1.session.create(), "v1 session.create()");
	assertSession(a, "v1 create()");
	const b = ok(await v2.session.create(), "v2 session.create()");
	assertSession(b, "v2 create()");
	assert.equal(ok(await v1.session.abort({ path: { id: a.id } }), "v1 abort (idle)"), true);
	assert.equal(ok(await v2.session.abort({ sessionID: b.id }), "v2 abort (idle)"), true);
	for (let i = 0; i < 3; i++) {
		const agents = ok(await v2.app.agents(), `agents after body-less POSTs (${i})`);
		assert.ok(agents.some((x) => x.name === "build"));
		assert.equal(ok(await v2.session.abort({ sessionID: b.id }), `abort again (${i})`), true);
	}
});

test("SDK: session.list is most recently updated first; roots=true leaves out children", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const c = createV2({ baseUrl: srv.url });
	const a = ok(await c.session.create({ title: "a" }), "create a");
	const b = ok(await c.session.create({ title: "b" }), "create b");
	const kid = ok(await c.session.create({ title: "kid", parentID: a.id }), "create kid");
	await pollUntil(async () => Date.now() > kid.time.updated + 2, { label: "the clock moves on" });
	ok(await c.session.update({ sessionID: a.id, title: "a, renamed" }), "update a");
	const list = ok(await c.session.list(), "session.list");
	assert.deepEqual(new Set(list.map((s) => s.id)), new Set([a.id, b.id, kid.id]));
	for (let i = 1; i < list.length; i++)
		assert.ok(
			list[i - 1].time.updated >= list[i].time.updated,
			`most recently updated first: ${list.map((s) => `${s.title}@${s.time.updated}`).join(", ")}`,
		);
	assert.equal(list[0].id, a.id, "the session just renamed comes first");
	const roots = ok(await c.session.list({ roots: true }), "session.list roots");
	assert.deepEqual(new Set(roots.map((s) => s.id)), new Set([a.id, b.id]), "roots=true: no children");
	const v1 = createV1({ baseUrl: srv.url });
	const l1 = ok(await v1.session.list(), "v1 session.list");
	assert.deepEqual(l1.map((s) => s.id), list.map((s) => s.id), "v1 and v2 agree");
});
