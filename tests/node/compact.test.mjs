// Compaction through the real server with the official SDK (v1 and v2): summarize on
// demand answers true once the summary is written, in OpenCode's shapes (a user message
// with a compaction part, an assistant message with summary: true, session.compacted);
// a session whose context nears its model's window gets a compaction before its next
// prompt; WebSocket session.summarize; bad requests named. What the model is sent after
// a compaction is checked against a provider's recorded requests in tests/test_compact.c.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createOpencodeClient as createV1 } from "@opencode-ai/sdk";
import { createOpencodeClient as createV2 } from "@opencode-ai/sdk/v2";
import { startServer, api, wsConnect, sseSubscribe, isSessionIdle } from "./lib.mjs";

const T = { timeout: 90_000 };
const SUMMARY = "SUMMARY: what the user asked, and what was noted.";
// scripted/tiny: a 2000-token window, 200 of it for the reply; the scripted provider
// counts a request's characters / 4 as its prompt tokens
const CONFIG = {
	model: "scripted/tiny",
	retry: { base_ms: 10 },
	plugins: [],
	providers: {
		scripted: {
			pace_ms: 1,
			models: { tiny: { limit: { context: 2000, output: 200 } } },
			rules: [
				{ regex: "^Summarize the conversation", steps: [{ text: SUMMARY }] },
				{ steps: [{ text: "Noted." }] },
			],
		},
	},
};

function ok(r, label, status = 200) {
	assert.equal(r.error, undefined, `${label}: SDK error ${JSON.stringify(r.error)}`);
	assert.equal(r.response?.status, status, `${label}: HTTP status`);
	return r.data;
}

const long = (tag) => `${tag}${" lorem".repeat(400)}`;

/** The compaction of a message list: its user message, its summary and their parts. */
function compactions(msgs) {
	return msgs
		.filter((m) => m.info.role === "user" && m.parts.some((p) => p.type === "compaction"))
		.map((u) => ({ user: u, summary: msgs.find((m) => m.info.parentID === u.info.id) }));
}

function assertCompaction(c, sessionID, auto, label) {
	const part = c.user.parts.find((p) => p.type === "compaction");
	assert.match(part.id, /^prt_/, `${label}: part id`);
	assert.equal(part.sessionID, sessionID, `${label}: part sessionID`);
	assert.equal(part.messageID, c.user.info.id, `${label}: part messageID`);
	assert.equal(part.auto, auto, `${label}: auto`);
	const s = c.summary?.info;
	assert.ok(s, `${label}: the summary answers the compaction message`);
	assert.equal(s.role, "assistant");
	assert.equal(s.summary, true, `${label}: summary: true`);
	assert.equal(s.mode, "compaction", `${label}: mode`);
	assert.equal(s.agent, "compaction", `${label}: agent`);
	assert.equal(s.finish, "stop", `${label}: finish`);
	for (const k of ["input", "output", "reasoning"]) assert.equal(typeof s.tokens[k], "number", `${label}: tokens.${k}`);
	assert.equal(typeof s.tokens.cache.read, "number", `${label}: tokens.cache.read`);
	assert.ok(s.tokens.input > 0, `${label}: the summary's prompt tokens are recorded`);
	const text = c.summary.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
	assert.equal(text, SUMMARY, `${label}: the summary's text`);
}

test("session.summarize (SDK v1 and v2) answers true once the summary is written", T, async (t) => {
	const srv = await startServer({ config: CONFIG });
	t.after(() => srv.stop());
	const v1 = createV1({ baseUrl: srv.url });
	const v2 = createV2({ baseUrl: srv.url });
	const sse = await sseSubscribe(srv);
	t.after(() => sse.close());
	const s = ok(await v1.session.create({ body: { title: "summarize" } }), "create");
	ok(await v1.session.prompt({ path: { id: s.id }, body: { parts: [{ type: "text", text: "hello" }] } }), "prompt");

	const done = ok(
		await v1.session.summarize({ path: { id: s.id }, body: { providerID: "scripted", modelID: "tiny" } }),
		"v1 summarize",
	);
	assert.equal(done, true);
	let msgs = ok(await v1.session.messages({ path: { id: s.id } }), "messages");
	let cs = compactions(msgs);
	assert.equal(cs.length, 1);
	assertCompaction(cs[0], s.id, false, "v1");
	await sse.waitFor((e) => e.type === "session.compacted" && e.properties.sessionID === s.id, {
		label: "session.compacted",
	});

	assert.equal(ok(await v2.session.summarize({ sessionID: s.id, providerID: "scripted", modelID: "tiny", auto: true }), "v2 summarize"), true);
	ok(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "text", text: "and then?" }] }), "v2 prompt");
	msgs = ok(await v2.session.messages({ sessionID: s.id }), "messages");
	cs = compactions(msgs);
	assert.equal(cs.length, 2);
	assertCompaction(cs[1], s.id, true, "v2 (auto: true)");
	// every stored message stays listed, in conversation order
	assert.deepEqual(
		msgs.map((m) => (m.info.role === "user" ? (m.parts.find((p) => p.type === "text")?.text ?? "compaction") : m.info.mode)),
		["hello", "build", "compaction", "compaction", "compaction", "compaction", "and then?", "build"],
	);
	await sse.waitFor(isSessionIdle(s.id), { label: "idle" });
	assert.equal(sse.events.filter((f) => f.json.type === "session.compacted").length, 2);
});

test("a session near its model's window is compacted before its next prompt", T, async (t) => {
	const srv = await startServer({ config: CONFIG });
	t.after(() => srv.stop());
	const c = createV2({ baseUrl: srv.url });
	const s = ok(await c.session.create({}), "create");
	for (const tag of ["ONE", "TWO", "THREE"])
		ok(await c.session.prompt({ sessionID: s.id, parts: [{ type: "text", text: long(tag) }] }), tag);
	let msgs = ok(await c.session.messages({ sessionID: s.id }), "messages");
	assert.equal(compactions(msgs).length, 0, "not yet");
	const last = msgs.at(-1).info;
	assert.ok(last.tokens.input + last.tokens.output >= 1800, `the third reply's context: ${JSON.stringify(last.tokens)}`);

	const reply = ok(await c.session.prompt({ sessionID: s.id, parts: [{ type: "text", text: "four" }] }), "four");
	assert.equal(reply.info.finish, "stop");
	msgs = ok(await c.session.messages({ sessionID: s.id }), "messages");
	const cs = compactions(msgs);
	assert.equal(cs.length, 1);
	assertCompaction(cs[0], s.id, true, "auto");
	// in conversation order: after the third reply, before the prompt it made room for
	const at = msgs.indexOf(cs[0].user);
	assert.equal(msgs[at - 1].info.parentID, msgs[at - 2].info.id);
	assert.equal(msgs[at + 2].parts.find((p) => p.type === "text").text, "four");
	assert.equal(msgs.length, 10);
});

test("WebSocket session.summarize answers true; bad requests are named", T, async (t) => {
	const srv = await startServer({ config: CONFIG });
	t.after(() => srv.stop());
	const ws = await wsConnect(srv.wsUrl);
	t.after(() => ws.close());
	const s = await ws.call("session.create", {});
	await ws.call("session.prompt", { sessionID: s.id, text: "hello", wait: true });
	assert.equal(await ws.call("session.summarize", { sessionID: s.id }), true);
	const msgs = await ws.call("session.messages", { sessionID: s.id });
	assertCompaction(compactions(msgs)[0], s.id, false, "ws");

	const bad = [
		[{ providerID: "scripted" }, 400, /"providerID" needs "modelID"/],
		[{ modelID: "tiny" }, 400, /"modelID" needs "providerID"/],
		[{ auto: "yes" }, 400, /auto/],
		[{ providerID: "scripted", modelID: "nope" }, 400, /scripted\/nope/],
	];
	for (const [body, status, re] of bad) {
		const r = await api(srv, "POST", `/session/${s.id}/summarize`, body);
		assert.equal(r.status, status, JSON.stringify(body));
		assert.match(r.json?.data?.message ?? r.json?.message ?? "", re, JSON.stringify(r.json));
	}
	const r = await api(srv, "POST", "/session/ses_missing/summarize", {});
	assert.equal(r.status, 404);
	await assert.rejects(ws.call("session.summarize", { sessionID: s.id, modelID: 5 }), (e) => e.code === -32602);
	// nothing refused was written: one compaction in the session
	assert.equal(compactions(await ws.call("session.messages", { sessionID: s.id })).length, 1);
});

test("a compaction that fails answers an error naming it, and changes nothing", T, async (t) => {
	const config = structuredClone(CONFIG);
	config.providers.scripted.rules[0].steps = [{ error: { status: 400, message: "no summaries today" } }];
	const srv = await startServer({ config });
	t.after(() => srv.stop());
	const c = createV1({ baseUrl: srv.url });
	const s = ok(await c.session.create({ body: {} }), "create");
	ok(await c.session.prompt({ path: { id: s.id }, body: { parts: [{ type: "text", text: "hello" }] } }), "prompt");
	const r = await c.session.summarize({ path: { id: s.id }, body: {} });
	assert.equal(r.response.status, 500);
	assert.match(r.error?.data?.message ?? "", /the compaction failed: no summaries today/);
	const msgs = ok(await c.session.messages({ path: { id: s.id } }), "messages");
	const [cp] = compactions(msgs);
	assert.equal(cp.summary.info.summary, true);
	assert.equal(cp.summary.info.finish, "error");
	assert.equal(cp.summary.info.error.data.message, "no summaries today");
	// the session goes on (what the model is then sent: tests/test_compact.c)
	const reply = ok(await c.session.prompt({ path: { id: s.id }, body: { parts: [{ type: "text", text: "still there?" }] } }), "prompt 2");
	assert.equal(reply.info.finish, "stop");
});
