// What the web UI relies on to open a session mid-stream: WS session.snapshot gives the
// messages and the seq they reflect at one instant, and user messages say who sent them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, createSession, promptAsync, getMessages, wsConnect, isSessionIdle } from "./lib.mjs";

const T = { timeout: 60_000 };

test("session.snapshot mid-stream: its text is every delta up to its seq, and the deltas after it complete the reply exactly", T, async (t) => {
	const srv = await startServer({ config: { providers: { scripted: { pace_ms: 3 } } } });
	t.after(() => srv.stop());
	const c = await wsConnect(srv.wsUrl);
	t.after(() => c.close());
	const s = await createSession(srv);
	await c.call("subscribe", { sessionID: s.id });
	await promptAsync(srv, s.id, "long");
	const isDelta = (e) => e.type === "message.part.delta";
	await c.waitFor((e) => isDelta(e) && e.seq, { label: "the first deltas" });
	await c.until((cl) => cl.events.filter(isDelta).length >= 20, { label: "20 deltas" });
	const snap = await c.call("session.snapshot", { sessionID: s.id });
	assert.equal(typeof snap.seq, "number");
	assert.equal(snap.session.id, s.id);
	const reply = snap.messages.find((m) => m.info.role === "assistant");
	assert.ok(reply, "the reply is in the snapshot");
	const part = reply.parts.find((p) => p.type === "text");
	assert.ok(part && part.text.length > 0, "with the text streamed so far");
	await c.waitFor(isSessionIdle(s.id), { label: "idle", timeout: 30000 });
	const deltas = c.events.filter((e) => isDelta(e) && e.properties.partID === part.id);
	const upTo = deltas.filter((e) => e.seq <= snap.seq).map((e) => e.properties.delta).join("");
	const after = deltas.filter((e) => e.seq > snap.seq).map((e) => e.properties.delta).join("");
	assert.equal(part.text, upTo, "the snapshot holds exactly the deltas up to its seq");
	assert.ok(after.length > 0, "the reply was caught mid-stream");
	const final = (await getMessages(srv, s.id)).find((m) => m.info.id === reply.info.id).parts.find((p) => p.id === part.id).text;
	assert.equal(part.text + after, final, "snapshot + later deltas = the stored reply");
});

test("a user message names its source (http, ws) and its turn; session.snapshot of an unknown session is not found", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const c = await wsConnect(srv.wsUrl);
	t.after(() => c.close());
	const s = await createSession(srv);
	await promptAsync(srv, s.id, "sleep 300");
	const r = await c.call("session.prompt_async", { sessionID: s.id, text: "echo from ws" });
	const snap = await c.call("session.snapshot", { sessionID: s.id });
	const users = snap.messages.filter((m) => m.info.role === "user").map((m) => m.info);
	assert.deepEqual(users.map((u) => u.source), ["http", "ws"]);
	assert.equal(users[1].turnID, r.turnID);
	assert.equal(users[1].id, r.messageID);
	await assert.rejects(c.call("session.snapshot", { sessionID: "ses_nope" }), (e) => e.code === -32004);
	await assert.rejects(c.call("session.snapshot", {}), (e) => e.code === -32602 && /sessionID/.test(e.rpcMessage));
});
