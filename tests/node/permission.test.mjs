// Permissions end to end: a tool (the fx fixture plugin's "ask" mode) asks for `bash`,
// which the default rules leave to a human. The ask of a grandchild subagent reaches a
// client that watches only the root (SSE and WebSocket, with the tree envelope), is
// listed, and is answered in OpenCode's shapes with the official SDK — v2's
// permission.reply and v1's postSessionIdPermissionsPermissionId — or over WebSocket;
// "always" holds for the tree, a rejection's message reaches the model, an abort
// rejects what waits. `agentgate run` without a terminal rejects naming --yes, and
// --yes allows. --workspace and POST /session's directory set where sessions work.
import { test } from "node:test";
import { spawn, spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { createOpencodeClient as createV1 } from "@opencode-ai/sdk";
import { createOpencodeClient as createV2 } from "@opencode-ai/sdk/v2";
import { startServer, api, apiOk, createSession, promptAsync, getMessages, sseSubscribe, wsConnect, pollUntil, runBin, runOnTty, BIN } from "./lib.mjs";

const FX = path.join(path.dirname(BIN), "tests/plugins/fx.so");
const T = { timeout: 120_000 };

const RULES = [
	{ regex: "^task (.+)$", steps: [{ text: "Delegating.", tools: [{ name: "task", input: { description: "sub", prompt: "{{1}}", subagent_type: "general" } }] }, { text: "sub: {{tool_output}}" }] },
	{ regex: "^fx (.+)$", steps: [{ text: "Calling fx.", tools: [{ name: "fx", input: { mode: "{{1}}" } }] }, { text: "fx said: {{tool_output}}" }] },
	{ steps: [{ text: "You said: {{prompt}}" }] },
];
const CONFIG = { providers: { scripted: { pace_ms: 1, rules: RULES } }, retry: { base_ms: 10 } };

const textOf = (parts) => parts.filter((p) => p.type === "text").map((p) => p.text).join("\n");
const lastText = async (srv, id) => textOf((await getMessages(srv, id)).at(-1).parts);
const idle = (srv, id) =>
	pollUntil(async () => !(await apiOk(srv, "GET", "/session/status"))[id], { timeout: 20000, label: `session ${id} idle` });

function start(t, extra = {}) {
	return startServer({ config: { ...CONFIG, ...extra }, args: ["--plugin", FX] }).then((srv) => {
		t.after(() => srv.stop());
		return srv;
	});
}

test("SDK v2: a grandchild's ask reaches the root's SSE subscriber, is listed, and permission.reply once lets it run", T, async (t) => {
	const srv = await start(t);
	const c = createV2({ baseUrl: srv.url });
	const s = (await c.session.create({ title: "perm" })).data;
	const events = await sseSubscribe(srv, `?sessionID=${s.id}&descendants=true`);
	t.after(() => events.close());
	await c.session.promptAsync({ sessionID: s.id, parts: [{ type: "text", text: "task task fx ask make all" }] });
	const asked = await events.waitFor((e) => e.type === "permission.asked", { label: "permission.asked" });
	const p = asked.properties;
	assert.match(p.id, /^per_/);
	assert.equal(asked.rootID, s.id, "the envelope names the root");
	assert.equal(asked.depth, 2, "asked by a grandchild");
	assert.equal(p.sessionID, asked.sessionID);
	assert.equal(p.permission, "bash");
	assert.deepEqual(p.patterns, ["make all"]);
	assert.deepEqual(p.always, ["make all"]);
	assert.deepEqual(p.metadata, {});
	assert.match(p.tool.callID, /\w/);
	assert.match(p.tool.messageID, /^msg_/);
	assert.equal(p.title, "bash make all");
	assert.equal(typeof p.time.created, "number");
	// waiting shows in the asking session's status
	const st = (await c.session.status()).data;
	assert.equal(st[p.sessionID].type, "busy");
	assert.equal(st[p.sessionID].permission, p.id);
	const list = (await c.permission.list()).data;
	assert.deepEqual(list.map((x) => x.id), [p.id]);
	const r = await c.permission.reply({ requestID: p.id, reply: "once" });
	assert.equal(r.response.status, 200);
	assert.equal(r.data, true);
	const replied = await events.waitFor((e) => e.type === "permission.replied", { label: "permission.replied" });
	assert.equal(replied.properties.requestID, p.id);
	assert.equal(replied.properties.reply, "once");
	assert.equal(replied.rootID, s.id);
	await idle(srv, s.id);
	assert.equal(await lastText(srv, s.id), "sub: sub: fx said: allowed (allowed once by a reply)");
	assert.deepEqual((await c.permission.list()).data, []);
	// answered: a second reply is a 404 naming the request
	const again = await api(srv, "POST", `/permission/${p.id}/reply`, { reply: "once" });
	assert.equal(again.status, 404);
	assert.match(again.json.message, /is not pending/);
	const bad = await api(srv, "POST", `/permission/${p.id}/reply`, { reply: "maybe" });
	assert.equal(bad.status, 404); // not pending is found first
});

test("SDK v1 respond \"always\" holds for the tree; a v2 reject's message reaches the model", T, async (t) => {
	const srv = await start(t);
	const v1 = createV1({ baseUrl: srv.url });
	const v2 = createV2({ baseUrl: srv.url });
	const s = await createSession(srv, { title: "always" });
	const events = await sseSubscribe(srv, `?sessionID=${s.id}&descendants=true`);
	t.after(() => events.close());
	await promptAsync(srv, s.id, "task fx ask make all");
	const asked = await events.waitFor((e) => e.type === "permission.asked", { label: "the child's ask" });
	// v1's route, with the root's id in the path (the ask is its child's)
	const r = await v1.postSessionIdPermissionsPermissionId({ path: { id: s.id, permissionID: asked.properties.id }, body: { response: "always" } });
	assert.equal(r.response.status, 200);
	assert.equal(r.data, true);
	await idle(srv, s.id);
	assert.match(await lastText(srv, s.id), /allowed \(allowed always by a reply\)/);
	// the same again anywhere in the tree is not asked
	await promptAsync(srv, s.id, "fx ask make all");
	await idle(srv, s.id);
	assert.match(await lastText(srv, s.id), /an earlier "always" reply in this session tree/);
	assert.equal(events.events.filter((e) => e.type === "permission.asked").length, 1);
	// a session of another tree cannot answer it
	await promptAsync(srv, s.id, "fx ask rm -rf build");
	const second = await events.waitFor((e) => e.type === "permission.asked" && e.properties.patterns[0] === "rm -rf build", { label: "a new ask" });
	const other = await createSession(srv);
	const wrong = await api(srv, "POST", `/session/${other.id}/permissions/${second.properties.id}`, { response: "once" });
	assert.equal(wrong.status, 404);
	assert.match(wrong.json.message, /not in session/);
	const rej = await v2.permission.reply({ requestID: second.properties.id, reply: "reject", message: "use make clean" });
	assert.equal(rej.data, true);
	await idle(srv, s.id);
	assert.equal(
		await lastText(srv, s.id),
		"fx said: Error: The user rejected permission to use this specific tool call with the following feedback: use make clean",
	);
	const replied = events.events.filter((f) => f.type === "permission.replied").at(-1).json;
	assert.equal(replied.properties.reply, "reject");
	assert.match(replied.properties.message, /feedback: use make clean$/);
	const missing = await api(srv, "POST", "/permission/per_nope/reply", { reply: "once" });
	assert.equal(missing.status, 404);
	assert.equal(missing.json.name, "NotFoundError");
	const noReply = await api(srv, "POST", "/permission/per_nope/reply", {});
	assert.equal(noReply.status, 400);
	assert.match(noReply.json.message, /response/);
});

test("WebSocket: a root subscriber answers a grandchild with permission.reply; abort rejects a waiting ask", T, async (t) => {
	const srv = await start(t);
	const ws = await wsConnect(srv.wsUrl);
	t.after(() => ws.close());
	const s = await ws.call("session.create", { title: "ws perm" });
	await ws.call("subscribe", { sessionID: s.id, descendants: true });
	await ws.call("session.prompt_async", { sessionID: s.id, text: "task task fx ask make all" });
	const asked = await ws.waitFor((e) => e.type === "permission.asked", { label: "permission.asked over WS" });
	assert.equal(asked.rootID, s.id);
	assert.equal(asked.depth, 2);
	assert.equal(asked.parentID, (await ws.call("session.get", { sessionID: asked.sessionID })).parentID);
	const list = await ws.call("permission.list", {});
	assert.equal(list.length, 1);
	assert.equal(list[0].id, asked.properties.id);
	await assert.rejects(ws.call("permission.reply", { reply: "once" }), (e) => e.code === -32602 && /permissionID/.test(e.rpcMessage));
	await assert.rejects(ws.call("permission.reply", { requestID: "per_nope", reply: "once" }), (e) => e.code === -32004);
	assert.equal(await ws.call("permission.reply", { permissionID: asked.properties.id, response: "once" }), true);
	await ws.waitFor((e) => e.type === "session.idle" && e.sessionID === s.id, { label: "root idle" });
	assert.equal(textOf((await ws.call("session.messages", { sessionID: s.id })).at(-1).parts), "sub: sub: fx said: allowed (allowed once by a reply)");
	// abort while asked: the ask is rejected ("aborted"), the tree goes idle
	const from = ws.events.length;
	await ws.call("session.prompt_async", { sessionID: s.id, text: "task task fx ask make again" });
	const second = await ws.waitFor((e) => e.type === "permission.asked", { from, label: "second ask" });
	await ws.call("session.abort", { sessionID: s.id });
	const replied = await ws.waitFor((e) => e.type === "permission.replied", { from, label: "rejected by the abort" });
	assert.equal(replied.properties.requestID, second.properties.id);
	assert.equal(replied.properties.reply, "reject");
	assert.equal(replied.properties.message, "aborted");
	assert.deepEqual(await ws.call("permission.list", {}), []);
	await pollUntil(async () => Object.keys(await ws.call("session.status", {})).length === 0, { label: "every session idle" });
});

test("agentgate run: without a terminal an ask is rejected naming --yes; --yes allows it", T, async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-run-perm-"));
	t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
	fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(CONFIG));
	const base = ["run", "--config", path.join(dir, "config.json"), "--plugin", FX];
	const no = await runBin([...base, "--data", path.join(dir, "d1"), "task fx ask make all"]);
	assert.equal(no.code, 0, no.stderr);
	assert.match(no.stdout, /rejected: agentgate run has no terminal to ask on \(stdin is not a TTY\); run it with --yes/);
	const yes = await runBin([...base, "--data", path.join(dir, "d2"), "--yes", "task fx ask make all"]);
	assert.equal(yes.code, 0, yes.stderr);
	assert.match(yes.stdout, /sub: fx said: allowed \(allowed by --yes\)/);
	// the rules still come first: --yes does not override a deny
	fs.writeFileSync(path.join(dir, "deny.json"), JSON.stringify({ ...CONFIG, permission: { bash: { "rm *": "deny" } } }));
	const denied = await runBin(["run", "--config", path.join(dir, "deny.json"), "--plugin", FX, "--data", path.join(dir, "d3"), "--yes", "fx ask rm -rf /"]);
	assert.match(denied.stdout, /denied by the rule "bash": \{"rm \*": "deny"\} \(config\)/);
	const bad = await runBin(["run", "--data", path.join(dir, "d4"), "--workspace", path.join(dir, "nope"), "hi"]);
	assert.equal(bad.code, 2);
	assert.match(bad.stderr, /--workspace .*nope: No such file or directory/);
});

const QUESTION = /Allow bash make all\? \[y\]es \/ \[n\]o \/ \[a\]lways: /;

const hasScript = spawnSync("script", ["--version"]).status === 0;

test("agentgate run on a terminal asks the user: y allows once, n rejects", { ...T, skip: !hasScript && "util-linux script is not installed" }, async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-tty-"));
	t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
	fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(CONFIG));
	const base = ["run", "--config", path.join(dir, "config.json"), "--plugin", FX];
	const y = await runOnTty([...base, "--data", path.join(dir, "d1"), "task fx ask make all"], "y", QUESTION);
	assert.equal(y.code, 0, y.out);
	assert.match(y.out, /sub: fx said: allowed \(allowed once by a reply\)/);
	const n = await runOnTty([...base, "--data", path.join(dir, "d2"), "fx ask make all"], "n", QUESTION);
	assert.match(n.out, /fx said: Error: The user rejected permission to use this specific tool call\./);
});

test("--workspace is where root sessions work; POST /session's directory (body or ?directory=) overrides; children inherit", T, async (t) => {
	const ws = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-ws-")));
	t.after(() => fs.rmSync(ws, { recursive: true, force: true }));
	const srv = await startServer({ config: CONFIG, args: ["--workspace", ws] });
	t.after(() => srv.stop());
	const s = await createSession(srv);
	assert.equal(s.directory, ws);
	const kid = await createSession(srv, { parentID: s.id });
	assert.equal(kid.directory, ws);
	const body = await createSession(srv, { directory: "/tmp" });
	assert.equal(body.directory, "/tmp");
	const q = await apiOk(srv, "POST", `/session?directory=${encodeURIComponent(os.tmpdir())}`, {});
	assert.equal(q.directory, os.tmpdir());
	const v2 = createV2({ baseUrl: srv.url });
	assert.equal((await v2.session.create({ directory: "/var" })).data.directory, "/var");
	const rel = await api(srv, "POST", "/session", { directory: "relative/dir" });
	assert.equal(rel.status, 400);
	assert.match(rel.json.message, /must be an absolute path/);
	// a subagent works where its parent does
	await promptAsync(srv, body.id, "task hello");
	await idle(srv, body.id);
	const child = (await apiOk(srv, "GET", `/session/${body.id}/children`))[0];
	assert.equal(child.directory, "/tmp");
});
