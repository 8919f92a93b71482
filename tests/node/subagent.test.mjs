// Subagents through the server, as a bot or a platform drives them: a prompt that makes
// the model call `task` must end — parent and child idle, the parent's answer built on
// the child's result — over HTTP with the official SDK, over WebSocket, and on abort.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createOpencodeClient } from "@opencode-ai/sdk/v2";
import { startServer, pollUntil, apiOk, api, createSession, promptAsync, getMessages, wsConnect } from "./lib.mjs";

const T = { timeout: 90_000 };
const textOf = (parts) => parts.filter((p) => p.type === "text").map((p) => p.text).join("");

test("HTTP, as a bot would: task via the SDK ends with parent and child idle", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const c = createOpencodeClient({ baseUrl: srv.url });
	const s = (await c.session.create({ title: "bot" })).data;
	const pa = await c.session.promptAsync({ sessionID: s.id, parts: [{ type: "text", text: "task echo from a subagent" }] });
	assert.equal(pa.response.status, 204);
	const kids = await pollUntil(
		async () => {
			const ch = (await c.session.children({ sessionID: s.id })).data;
			return ch.length ? ch : null;
		},
		{ timeout: 10000, label: "the child session exists" },
	);
	assert.equal(kids.length, 1);
	assert.equal(kids[0].parentID, s.id, "the child names its parent");
	await pollUntil(
		async () => {
			const st = (await c.session.status()).data;
			return !st[s.id] && !st[kids[0].id];
		},
		{ timeout: 20000, label: "parent and child idle" },
	);
	const msgs = (await c.session.messages({ sessionID: s.id })).data;
	const last = msgs.at(-1);
	assert.equal(last.info.role, "assistant");
	assert.equal(last.info.finish, "stop");
	assert.equal(textOf(last.parts), "The subagent reported: The echo tool returned: from a subagent");
	const task = msgs.flatMap((m) => m.parts).find((p) => p.type === "tool" && p.tool === "task");
	assert.equal(task.state.status, "completed");
	assert.equal(task.state.metadata.sessionId, kids[0].id, "tool metadata names the child");
	const report = await apiOk(srv, "GET", `/task/${kids[0].id}`);
	assert.equal(report.status, "completed");
	assert.equal(report.result, "The echo tool returned: from a subagent");
	assert.ok(Array.isArray(report.lastToolCalls) && report.lastToolCalls[0].tool === "echo");
	// the synchronous prompt waits for the subagent too
	const r = await c.session.prompt({ sessionID: s.id, parts: [{ type: "text", text: "task echo again" }] });
	assert.equal(textOf(r.data.parts), "The subagent reported: The echo tool returned: again");
	assert.equal((await api(srv, "GET", "/task/ses_nope")).status, 404);
});

test("WebSocket: prompt with wait, the whole tree streams live to a descendants subscriber", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const ws = await wsConnect(srv.url.replace("http", "ws") + "/ws");
	t.after(() => ws.ws.close());
	const s = await ws.call("session.create", { title: "ws tree" });
	await ws.call("subscribe", { sessionID: s.id, descendants: true });
	const reply = await ws.call("session.prompt", { sessionID: s.id, text: "task echo over ws", wait: true });
	assert.equal(textOf(reply.parts), "The subagent reported: The echo tool returned: over ws");
	await pollUntil(() => ws.events.some((e) => e.type === "session.idle" && e.sessionID === s.id), { label: "parent idle event" });
	const ev = ws.events;
	const childDelta = ev.findIndex((e) => e.type === "message.part.delta" && e.sessionID !== s.id);
	const taskDone = ev.findIndex(
		(e) => e.type === "message.part.updated" && e.properties.part.tool === "task" && e.properties.part.state.status === "completed",
	);
	assert.ok(childDelta >= 0, "child deltas reached the subscriber");
	assert.ok(childDelta < taskDone, "child deltas arrive before the parent's task completes");
	const child = ev[childDelta];
	assert.equal(child.rootID, s.id);
	assert.equal(child.parentID, s.id);
	assert.equal(child.depth, 1);
	assert.equal(typeof child.parentToolCallID, "string");
	assert.deepEqual(await ws.call("session.status", {}), {});
	const report = await ws.call("task.get", { taskID: child.sessionID });
	assert.equal(report.status, "completed");
});

test("HTTP abort of the parent ends a running subagent tree, and every session goes idle", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const s = await createSession(srv);
	await promptAsync(srv, s.id, "task task sleep 60000");
	const grandchild = await pollUntil(
		async () => {
			const st = await apiOk(srv, "GET", "/session/status");
			return Object.keys(st).length === 3 ? st : null;
		},
		{ timeout: 10000, label: "parent, child and grandchild busy" },
	);
	assert.equal(Object.keys(grandchild).length, 3);
	assert.equal(await apiOk(srv, "POST", `/session/${s.id}/abort`), true);
	await pollUntil(async () => Object.keys(await apiOk(srv, "GET", "/session/status")).length === 0, {
		timeout: 1000,
		label: "the whole tree idle within a second",
	});
	const msgs = await getMessages(srv, s.id);
	const last = msgs.at(-1);
	assert.equal(last.info.finish, "aborted");
	assert.equal(last.info.error.name, "MessageAbortedError");
});
