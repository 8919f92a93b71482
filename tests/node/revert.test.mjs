// Fork, revert, unrevert, deleting a message and the workspace diff through the official
// OpenCode SDK (v1 and v2) against a real `agentgate serve`: histories copied and
// rewound as OpenCode does it, the model's next request checked on the mock provider
// (mockllm records it), and the workspace plugin's file changes in a real git repository
// (a temporary one, the session's directory) undone and redone — files changed, created
// and deleted — across restarts, without touching the repository's index, HEAD or stash.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { createOpencodeClient as createV1 } from "@opencode-ai/sdk";
import { createOpencodeClient as createV2 } from "@opencode-ai/sdk/v2";
import { BIN, DEFAULT_CONFIG, startServer, sseSubscribe, api, apiOk, withTimeout } from "./lib.mjs";

const T = { timeout: 120_000 };
const BUILD = process.env.AGENTGATE_BUILD_DIR || path.dirname(BIN);
const WORKSPACE = path.join(process.env.AGENTGATE_PLUGIN_DIR || path.join(BUILD, "plugins"), "workspace.so");
const MOCKLLM = process.env.AGENTGATE_MOCKLLM || path.join(BUILD, "tests", "mockllm");

/** A rule: the prompt `ws:KEY` makes the model call tool with input, then say it did. */
const call = (key, tool, input) => ({
	regex: `^ws:${key}$`,
	steps: [{ text: `Calling ${tool}.`, tools: [{ name: tool, input }] }, { text: `${tool} done` }],
});

const RULES = [
	call("edit", "edit", { filePath: "a.txt", oldString: "one", newString: "uno" }),
	call("create", "write", { filePath: "sub/new.txt", content: "created\n" }),
	call("delete", "bash", { command: "rm del.txt", description: "Delete del.txt" }),
	call("rewrite", "write", { filePath: "a.txt", content: "rewritten\n" }),
	call("slow", "sleep", { ms: 60000 }),
];

function config(extra = {}) {
	return {
		...DEFAULT_CONFIG,
		providers: { scripted: { pace_ms: 1, rules: [...RULES, { match: "", steps: [{ text: "You said: {{prompt}}" }] }] } },
		plugins: [{ path: WORKSPACE, required: true }],
		permission: { edit: "allow", bash: "allow" },
		...extra,
	};
}

const git = (dir, ...args) => execFileSync("git", args, { cwd: dir, encoding: "utf8" });

/** A git repository in a temporary folder with a.txt, keep.txt and del.txt committed,
 * plus a staged change and a stash the tests check are left alone. */
async function repo(t) {
	const dir = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-git-")));
	t.after(() => fsp.rm(dir, { recursive: true, force: true }));
	git(dir, "init", "-q", "-b", "main");
	git(dir, "config", "user.email", "t@example.com");
	git(dir, "config", "user.name", "t");
	fs.writeFileSync(path.join(dir, "a.txt"), "one\ntwo\n");
	fs.writeFileSync(path.join(dir, "keep.txt"), "keep\n");
	fs.writeFileSync(path.join(dir, "del.txt"), "doomed\n");
	git(dir, "add", "-A");
	git(dir, "commit", "-q", "-m", "init");
	fs.writeFileSync(path.join(dir, "keep.txt"), "stashed\n");
	git(dir, "stash", "-q");
	fs.writeFileSync(path.join(dir, "staged.txt"), "staged\n");
	git(dir, "add", "staged.txt");
	return dir;
}

/** What the user's repository says about itself: HEAD, the index, the stash. */
const repoState = (dir) => ({
	head: git(dir, "rev-parse", "HEAD"),
	index: git(dir, "ls-files", "--stage"),
	stash: git(dir, "stash", "list"),
	objects: git(dir, "count-objects", "-v").match(/^count: \d+$/m)[0],
});

const read = (dir, f) => (fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), "utf8") : null);

async function serve(t, opts = {}) {
	const srv = await startServer({ config: config(opts.extra), dir: opts.dir });
	t.after(() => srv.stop());
	return srv;
}

const clients = (srv) => ({ v1: createV1({ baseUrl: srv.url }), v2: createV2({ baseUrl: srv.url }) });

/** POST /session/{id}/message through the v2 SDK: waits for the turn. */
async function prompt(v2, sessionID, text) {
	const r = await v2.session.prompt({ sessionID, parts: [{ type: "text", text }] });
	assert.equal(r.response.status, 200, `prompt ${text}: ${JSON.stringify(r.error)}`);
	return r.data;
}

async function messages(v2, sessionID) {
	const r = await v2.session.messages({ sessionID });
	assert.equal(r.response.status, 200);
	return r.data;
}

const texts = (msgs) => msgs.map((m) => m.parts.filter((p) => p.type === "text").map((p) => p.text).join(""));
const userOf = (msgs, text) => msgs.find((m) => m.info.role === "user" && texts([m])[0] === text);
/** The messages a client shows: those before Session.revert's point (OpenCode's TUI rule). */
const visible = (msgs, session) => {
	const at = session.revert ? msgs.findIndex((m) => m.info.id === session.revert.messageID) : -1;
	return at < 0 ? msgs : msgs.slice(0, at);
};

// ---------------------------------------------------------------------------------------

test("fork copies the history before a message (v2) or all of it (v1), with new ids", T, async (t) => {
	const srv = await serve(t);
	const { v1, v2 } = clients(srv);
	const s = (await v2.session.create({ title: "Plan" })).data;
	await prompt(v2, s.id, "first");
	await prompt(v2, s.id, "second");
	const msgs = await messages(v2, s.id);
	assert.equal(msgs.length, 4);
	const sse = await sseSubscribe(srv);
	t.after(() => sse.close());

	const second = userOf(msgs, "second");
	const f1 = await v2.session.fork({ sessionID: s.id, messageID: second.info.id });
	assert.equal(f1.response.status, 200, JSON.stringify(f1.error));
	assert.equal(f1.data.title, "Plan (fork #1)");
	assert.equal(f1.data.parentID, undefined, "a fork is a root session");
	assert.equal(f1.data.directory, s.directory);
	const copied = await messages(v2, f1.data.id);
	assert.deepEqual(texts(copied), ["first", "You said: first"], "the messages before `second`");
	const origIds = new Set(msgs.flatMap((m) => [m.info.id, ...m.parts.map((p) => p.id)]));
	for (const m of copied) {
		assert.equal(m.info.sessionID, f1.data.id);
		assert.ok(!origIds.has(m.info.id), "a new message id");
		for (const p of m.parts) {
			assert.ok(!origIds.has(p.id), "a new part id");
			assert.equal(p.messageID, m.info.id);
			assert.equal(p.sessionID, f1.data.id);
		}
	}
	assert.equal(copied[1].info.parentID, copied[0].info.id, "the reply points at the copied prompt");
	await sse.waitFor((e) => e.type === "session.created" && e.properties.info.id === f1.data.id, { label: "session.created of the fork" });
	await sse.waitFor((e) => e.type === "message.part.updated" && e.sessionID === f1.data.id, { label: "the fork's parts announced" });

	const f2 = await v1.session.fork({ path: { id: s.id }, body: {} });
	assert.equal(f2.response.status, 200, JSON.stringify(f2.error));
	assert.deepEqual(texts(await messages(v2, f2.data.id)), texts(msgs), "v1 without messageID: everything");
	const f3 = await v2.session.fork({ sessionID: f2.data.id });
	assert.equal(f3.data.title, "Plan (fork #2)", "a fork of a fork counts on");

	// the fork is a session of its own: it takes a prompt, the original does not change
	await prompt(v2, f1.data.id, "third");
	assert.deepEqual(texts(await messages(v2, f1.data.id)), ["first", "You said: first", "third", "You said: third"]);
	assert.equal((await messages(v2, s.id)).length, 4);

	const bad = await api(srv, "POST", `/session/${s.id}/fork`, { messageID: "msg_nope" });
	assert.equal(bad.status, 404);
	assert.match(bad.json.message, /message msg_nope not found/);
	const badType = await api(srv, "POST", `/session/${s.id}/fork`, { messageID: 7 });
	assert.equal(badType.status, 400);
	assert.match(badType.json.message, /messageID/);
});

/** mockllm on a free port; stops with the test. */
async function mockllm(t) {
	const proc = spawn(MOCKLLM, ["--port", "0", "--exit-on-stdin-eof"], { stdio: ["pipe", "pipe", "inherit"] });
	t.after(() => proc.stdin.end());
	const rl = readline.createInterface({ input: proc.stdout });
	const line = await withTimeout(
		new Promise((resolve) => rl.once("line", resolve)),
		10000,
		"mockllm's PORT line",
	);
	const port = Number(/^PORT (\d+)$/.exec(line)[1]);
	const url = `http://127.0.0.1:${port}`;
	return {
		url,
		last: async () => (await (await fetch(`${url}/_stats`)).json()).last,
	};
}

/** The texts of the messages the provider was sent in its last request. */
const sent = async (mock) =>
	(await mock.last()).body.messages
		.filter((m) => m.role !== "system")
		.map((m) => (typeof m.content === "string" ? m.content : JSON.stringify(m.content)));

test("revert hides messages from the model (v1 and v2); the next prompt deletes them for good", T, async (t) => {
	const mock = await mockllm(t);
	const extra = { providers: { ...config().providers, openai: { base_url: `${mock.url}/v1`, api_key: "k" } } };
	let srv = await serve(t, { extra });
	const dir = srv.dir;
	let { v1, v2 } = clients(srv);
	const s = (await v2.session.create({ title: "Rewind", model: { providerID: "openai", modelID: "normal" } })).data;
	await prompt(v2, s.id, "alpha");
	await prompt(v2, s.id, "beta");
	let msgs = await messages(v2, s.id);
	assert.deepEqual(await sent(mock), ["alpha", "Hello from mock.", "beta"]);

	// OpenCode's rule: an assistant message without a part reverts from its prompt on
	const betaReply = msgs[3];
	const r = await v2.session.revert({ sessionID: s.id, messageID: betaReply.info.id });
	assert.equal(r.response.status, 200, JSON.stringify(r.error));
	assert.equal(r.data.revert.messageID, msgs[2].info.id);
	assert.equal(r.data.revert.partID, undefined);
	// GET /message lists them still (as OpenCode's does); Session.revert tells clients
	msgs = await messages(v2, s.id);
	assert.equal(msgs.length, 4);
	assert.deepEqual(texts(visible(msgs, r.data)), ["alpha", "Hello from mock."]);
	const got = (await v1.session.get({ path: { id: s.id } })).data;
	assert.equal(got.revert.messageID, msgs[2].info.id, "v1 sees Session.revert");

	// unrevert brings them back; revert again, this time with v1 and the user message
	const u = await v2.session.unrevert({ sessionID: s.id });
	assert.equal(u.response.status, 200);
	assert.equal(u.data.revert, undefined);
	const r1 = await v1.session.revert({ path: { id: s.id }, body: { messageID: msgs[2].info.id } });
	assert.equal(r1.data.revert.messageID, msgs[2].info.id);

	// the point survives a restart
	await srv.stop({ keepDir: true });
	srv = await serve(t, { extra, dir });
	({ v1, v2 } = clients(srv));
	assert.equal((await v2.session.get({ sessionID: s.id })).data.revert.messageID, msgs[2].info.id);

	const sse = await sseSubscribe(srv);
	t.after(() => sse.close());
	await prompt(v2, s.id, "gamma");
	assert.deepEqual(await sent(mock), ["alpha", "Hello from mock.", "gamma"], "the model never sees beta");
	await sse.waitFor((e) => e.type === "message.removed" && e.properties.messageID === msgs[2].info.id, { label: "message.removed of beta" });
	await sse.waitFor((e) => e.type === "message.removed" && e.properties.messageID === msgs[3].info.id, { label: "message.removed of beta's reply" });
	const after = await messages(v2, s.id);
	assert.deepEqual(texts(after), ["alpha", "Hello from mock.", "gamma", "Hello from mock."]);
	assert.equal((await v2.session.get({ sessionID: s.id })).data.revert, undefined);

	// deleted durably: a restart shows the same, and unrevert has nothing to bring back
	await srv.stop({ keepDir: true });
	srv = await serve(t, { extra, dir });
	({ v1, v2 } = clients(srv));
	assert.deepEqual(texts(await messages(v2, s.id)), texts(after));
	await v2.session.unrevert({ sessionID: s.id });
	assert.deepEqual(texts(await messages(v2, s.id)), texts(after));
	await prompt(v2, s.id, "delta");
	assert.deepEqual(await sent(mock), ["alpha", "Hello from mock.", "gamma", "Hello from mock.", "delta"]);

	// a revert inside a message, at a part with text before it, keeps those parts
	const last = (await messages(v2, s.id)).at(-1);
	const finish = last.parts.find((p) => p.type === "step-finish");
	const rp = await v2.session.revert({ sessionID: s.id, messageID: last.info.id, partID: finish.id });
	assert.equal(rp.data.revert.messageID, last.info.id);
	assert.equal(rp.data.revert.partID, finish.id);
	await prompt(v2, s.id, "epsilon");
	const kept = (await messages(v2, s.id)).find((m) => m.info.id === last.info.id);
	assert.ok(kept, "the message stays");
	assert.ok(!kept.parts.some((p) => p.id === finish.id), "its parts from the point on are gone");
	assert.ok(kept.parts.some((p) => p.type === "text"), "its text before the point stays");

	const missing = await api(srv, "POST", `/session/${s.id}/revert`, { messageID: "msg_nope" });
	assert.equal(missing.status, 404);
	const noId = await api(srv, "POST", `/session/${s.id}/revert`, {});
	assert.equal(noId.status, 400);
	assert.match(noId.json.message, /messageID/);
	const noPart = await api(srv, "POST", `/session/${s.id}/revert`, { messageID: last.info.id, partID: "prt_nope" });
	assert.equal(noPart.status, 404);
	assert.match(noPart.json.message, /part prt_nope not found/);
});

test("revert and delete are refused while a turn runs; a message is deleted for good", T, async (t) => {
	let srv = await serve(t);
	const dir = srv.dir;
	let { v2 } = clients(srv);
	const s = (await v2.session.create({})).data;
	await prompt(v2, s.id, "keep me");
	await prompt(v2, s.id, "drop me");
	const msgs = await messages(v2, s.id);
	await apiOk(srv, "POST", `/session/${s.id}/prompt_async`, { parts: [{ type: "text", text: "ws:slow" }] }, 204);
	const running = await (async () => {
		for (const deadline = Date.now() + 10000; Date.now() < deadline; ) {
			const m = (await messages(v2, s.id)).find((m) => texts([m])[0] === "ws:slow");
			if (m) return m;
			await new Promise((r) => setTimeout(r, 20));
		}
		throw new Error("the slow prompt's message never appeared");
	})();
	const rv = await api(srv, "POST", `/session/${s.id}/revert`, { messageID: msgs[0].info.id });
	assert.equal(rv.status, 409);
	assert.match(rv.json.message, /busy: turn turn_\w+ is running/);
	const un = await api(srv, "POST", `/session/${s.id}/unrevert`);
	assert.equal(un.status, 409);
	const del = await v2.session.deleteMessage({ sessionID: s.id, messageID: running.info.id });
	assert.equal(del.response.status, 409);
	assert.match(JSON.stringify(del.error), /belongs to turn turn_\w+, which is running/);
	await apiOk(srv, "POST", `/session/${s.id}/abort`);

	const sse = await sseSubscribe(srv);
	t.after(() => sse.close());
	const ok = await v2.session.deleteMessage({ sessionID: s.id, messageID: msgs[2].info.id });
	assert.equal(ok.response.status, 200, JSON.stringify(ok.error));
	assert.equal(ok.data, true);
	await sse.waitFor((e) => e.type === "message.removed" && e.properties.messageID === msgs[2].info.id, { label: "message.removed" });
	const gone = await api(srv, "GET", `/session/${s.id}/message/${msgs[2].info.id}`);
	assert.equal(gone.status, 404);
	const again = await api(srv, "DELETE", `/session/${s.id}/message/${msgs[2].info.id}`);
	assert.equal(again.status, 404);
	await srv.stop({ keepDir: true });
	srv = await serve(t, { dir });
	({ v2 } = clients(srv));
	const ids = (await messages(v2, s.id)).map((m) => m.info.id);
	assert.ok(!ids.includes(msgs[2].info.id), "deleted for good");
	assert.ok(ids.includes(msgs[0].info.id) && ids.includes(msgs[3].info.id));
});

// ---------------------------------------------------------------------------------------

test("revert undoes the workspace tools' file changes in a git repository; unrevert redoes them", T, async (t) => {
	const repoDir = await repo(t);
	let srv = await serve(t);
	const dataDir = srv.dir;
	let { v1, v2 } = clients(srv);
	const before = repoState(repoDir);
	const s = (await v2.session.create({ directory: repoDir })).data;
	assert.equal(s.directory, repoDir);
	await prompt(v2, s.id, "hello");
	await prompt(v2, s.id, "ws:edit");
	await prompt(v2, s.id, "ws:create");
	await prompt(v2, s.id, "ws:delete");
	await prompt(v2, s.id, "ws:rewrite");
	assert.equal(read(repoDir, "a.txt"), "rewritten\n");
	assert.equal(read(repoDir, "sub/new.txt"), "created\n");
	assert.equal(read(repoDir, "del.txt"), null);
	const msgs = await messages(v2, s.id);
	const tools = msgs.flatMap((m) => m.parts).filter((p) => p.type === "tool");
	assert.deepEqual(tools.map((p) => p.state.status), ["completed", "completed", "completed", "completed"]);

	// the diff of the session (v2) and of one message (v1): FileDiff in both shapes
	const d = await v2.session.diff({ sessionID: s.id });
	assert.equal(d.response.status, 200, JSON.stringify(d.error));
	const byFile = Object.fromEntries(d.data.map((f) => [f.file, f]));
	assert.deepEqual(Object.keys(byFile).sort(), ["a.txt", "del.txt", "sub/new.txt"]);
	assert.deepEqual(byFile["a.txt"], {
		...byFile["a.txt"],
		before: "one\ntwo\n", after: "rewritten\n", additions: 1, deletions: 2, status: "modified",
	});
	assert.match(byFile["a.txt"].patch, /^diff --git a\/a\.txt b\/a\.txt\n[\s\S]*-one\n-two\n\+rewritten\n/);
	assert.equal(byFile["sub/new.txt"].status, "added");
	assert.equal(byFile["sub/new.txt"].before, "");
	assert.equal(byFile["del.txt"].status, "deleted");
	assert.equal(byFile["del.txt"].after, "");
	const createMsg = userOf(msgs, "ws:create");
	const d1 = await v1.session.diff({ path: { id: s.id }, query: { messageID: createMsg.info.id } });
	assert.equal(d1.response.status, 200);
	assert.deepEqual(d1.data.map((f) => [f.file, f.before, f.after, f.additions, f.deletions]), [["sub/new.txt", "", "created\n", 1, 0]]);

	// revert from the edit on: every file back as it was before it
	const editMsg = userOf(msgs, "ws:edit");
	const r = await v2.session.revert({ sessionID: s.id, messageID: editMsg.info.id });
	assert.equal(r.response.status, 200, JSON.stringify(r.error));
	assert.equal(r.data.revert.messageID, editMsg.info.id);
	assert.match(r.data.revert.snapshot, /^[0-9a-f]{40,64}$/);
	assert.match(r.data.revert.diff, /a\.txt/);
	assert.equal(read(repoDir, "a.txt"), "one\ntwo\n", "changed file restored");
	assert.equal(read(repoDir, "sub/new.txt"), null, "created file removed");
	assert.equal(fs.existsSync(path.join(repoDir, "sub")), false, "and its new folder");
	assert.equal(read(repoDir, "del.txt"), "doomed\n", "deleted file back");
	assert.equal(read(repoDir, "keep.txt"), "keep\n", "untouched file untouched");
	assert.equal(read(repoDir, "staged.txt"), "staged\n");
	assert.deepEqual(repoState(repoDir), before, "the repository's HEAD, index, stash and objects are not touched");

	// a restart between revert and unrevert
	await srv.stop({ keepDir: true });
	srv = await serve(t, { dir: dataDir });
	({ v1, v2 } = clients(srv));
	const u = await v1.session.unrevert({ path: { id: s.id } });
	assert.equal(u.response.status, 200, JSON.stringify(u.error));
	assert.equal(u.data.revert, undefined);
	assert.equal(read(repoDir, "a.txt"), "rewritten\n");
	assert.equal(read(repoDir, "sub/new.txt"), "created\n");
	assert.equal(read(repoDir, "del.txt"), null);

	// revert to a later point: only the later calls' files go back
	const deleteMsg = userOf(msgs, "ws:delete");
	await v2.session.revert({ sessionID: s.id, messageID: deleteMsg.info.id });
	assert.equal(read(repoDir, "del.txt"), "doomed\n");
	assert.equal(read(repoDir, "a.txt"), "uno\ntwo\n", "back to the edit's result");
	assert.equal(read(repoDir, "sub/new.txt"), "created\n", "before the point: kept");
	// and further back, while reverted: unrevert still returns to the state before both
	await v2.session.revert({ sessionID: s.id, messageID: editMsg.info.id });
	assert.equal(read(repoDir, "a.txt"), "one\ntwo\n");
	assert.equal(read(repoDir, "sub/new.txt"), null);
	await v2.session.unrevert({ sessionID: s.id });
	assert.equal(read(repoDir, "a.txt"), "rewritten\n");
	assert.equal(read(repoDir, "sub/new.txt"), "created\n");
	assert.equal(read(repoDir, "del.txt"), null);

	// the next prompt after a revert makes it final: the files stay reverted
	await v2.session.revert({ sessionID: s.id, messageID: createMsg.info.id });
	await prompt(v2, s.id, "carry on");
	assert.equal(read(repoDir, "a.txt"), "uno\ntwo\n");
	assert.equal(read(repoDir, "sub/new.txt"), null);
	const prompts = (await messages(v2, s.id)).filter((m) => m.info.role === "user");
	assert.deepEqual(texts(prompts), ["hello", "ws:edit", "carry on"]);
	const d2 = await v2.session.diff({ sessionID: s.id });
	assert.deepEqual(d2.data.map((f) => [f.file, f.after]), [["a.txt", "uno\ntwo\n"]], "the diff follows what is left");
	assert.deepEqual(repoState(repoDir), before);
	assert.ok(fs.readdirSync(path.join(dataDir, "workspace", "snapshots")).length >= 1, "snapshots live in the data directory");
});

test("a revert whose snapshot was pruned is refused, naming it, and changes nothing", T, async (t) => {
	const repoDir = await repo(t);
	const srv = await serve(t);
	const { v2 } = clients(srv);
	const s = (await v2.session.create({ directory: repoDir })).data;
	await prompt(v2, s.id, "ws:edit");
	await prompt(v2, s.id, "ws:rewrite");
	assert.equal(read(repoDir, "a.txt"), "rewritten\n");
	// what pruning leaves of snapshots older than snapshot_days: no objects
	const store = path.join(srv.dir, "workspace", "snapshots");
	for (const w of fs.readdirSync(store)) {
		const objects = path.join(store, w, "objects");
		for (const d of fs.readdirSync(objects)) fs.rmSync(path.join(objects, d), { recursive: true, force: true });
	}
	const editMsg = userOf(await messages(v2, s.id), "ws:edit");
	const r = await v2.session.revert({ sessionID: s.id, messageID: editMsg.info.id });
	assert.ok(r.response.status >= 400, `refused: ${r.response.status}`);
	assert.match(JSON.stringify(r.error), /cannot put back the files in .*the snapshot [0-9a-f]+ that a\.txt comes back from was pruned \(snapshots are kept 7 days/);
	assert.equal(read(repoDir, "a.txt"), "rewritten\n", "the file stays");
	const after = (await v2.session.get({ sessionID: s.id })).data;
	assert.equal(after.revert, undefined, "nothing is hidden");
});

test("outside git a revert still hides messages, and the diff is empty", T, async (t) => {
	const dir = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-nogit-")));
	t.after(() => fsp.rm(dir, { recursive: true, force: true }));
	fs.writeFileSync(path.join(dir, "a.txt"), "one\ntwo\n");
	const srv = await serve(t);
	const { v1, v2 } = clients(srv);
	const s = (await v2.session.create({ directory: dir })).data;
	await prompt(v2, s.id, "ws:edit");
	assert.equal(read(dir, "a.txt"), "uno\ntwo\n");
	const d = await v2.session.diff({ sessionID: s.id });
	assert.deepEqual(d.data, []);
	const d1 = await v1.session.diff({ path: { id: s.id } });
	assert.deepEqual(d1.data, []);
	const msgs = await messages(v2, s.id);
	const r = await v2.session.revert({ sessionID: s.id, messageID: msgs[0].info.id });
	assert.equal(r.response.status, 200);
	assert.equal(r.data.revert.messageID, msgs[0].info.id);
	assert.equal(r.data.revert.snapshot, undefined);
	assert.equal(read(dir, "a.txt"), "uno\ntwo\n", "no snapshot: the file stays as it is");
	assert.deepEqual(visible(await messages(v2, s.id), r.data), []);
});

test("WebSocket methods: session.fork, session.revert, session.unrevert, session.diff, session.deleteMessage", T, async (t) => {
	const { wsConnect } = await import("./lib.mjs");
	const srv = await serve(t);
	const ws = await wsConnect(srv.wsUrl);
	t.after(() => ws.close());
	const s = await ws.call("session.create", {});
	await ws.call("session.prompt", { sessionID: s.id, text: "one", wait: true });
	await ws.call("session.prompt", { sessionID: s.id, text: "two", wait: true });
	const msgs = await ws.call("session.messages", { sessionID: s.id });
	const fork = await ws.call("session.fork", { sessionID: s.id, messageID: msgs[2].info.id });
	assert.equal((await ws.call("session.messages", { sessionID: fork.id })).length, 2);
	const rv = await ws.call("session.revert", { sessionID: s.id, messageID: msgs[2].info.id });
	assert.equal(rv.revert.messageID, msgs[2].info.id);
	assert.deepEqual(await ws.call("session.diff", { sessionID: s.id }), []);
	const un = await ws.call("session.unrevert", { sessionID: s.id });
	assert.equal(un.revert, undefined);
	assert.equal(await ws.call("session.deleteMessage", { sessionID: s.id, messageID: msgs[3].info.id }), true);
	await assert.rejects(ws.call("session.revert", { sessionID: s.id }), (e) => e.code === -32602 && /messageID/.test(e.message));
	await assert.rejects(ws.call("session.fork", { sessionID: "ses_nope" }), (e) => e.code === -32004);
});

test("the web UI's store hides what a revert hides and drops what the next prompt deletes", T, async (t) => {
	const { wsConnect, pollUntil } = await import("./lib.mjs");
	const { Store } = await import("../../web/src/state.js");
	const srv = await serve(t);
	let store = null;
	const ws = await wsConnect(srv.wsUrl, { keepEvents: false, onEvent: (ev) => store?.apply(ev) });
	t.after(() => ws.close());
	store = new Store((m, p) => ws.call(m, p));
	const { v2 } = clients(srv);
	const s = (await v2.session.create({})).data;
	await ws.call("subscribe", { sessionID: s.id });
	store.apply({ type: "session.updated", properties: { info: s }, seq: 0 });
	await prompt(v2, s.id, "one");
	await prompt(v2, s.id, "two");
	await store.loadMessages(s.id);
	const shown = () => texts(store.messages(s.id).map((m) => ({ parts: [...m.parts.values()] })));
	assert.deepEqual(shown(), ["one", "You said: one", "two", "You said: two"]);
	const msgs = await messages(v2, s.id);
	await v2.session.revert({ sessionID: s.id, messageID: msgs[2].info.id });
	await pollUntil(() => shown().length === 2, { label: "the store hides the reverted turn" });
	await v2.session.unrevert({ sessionID: s.id });
	await pollUntil(() => shown().length === 4, { label: "unrevert shows it again" });
	await v2.session.revert({ sessionID: s.id, messageID: msgs[2].info.id });
	await prompt(v2, s.id, "three");
	await pollUntil(() => shown().join("|") === "one|You said: one|three|You said: three", { label: "the deleted turn is gone" });
	assert.ok(!store.sessions.get(s.id).msgs.map.has(msgs[2].info.id), "message.removed dropped it");
});
