// Plugins in a real `agentgate serve`: the listing, and seed 003's race end to end — a
// tool round-trip in flight while WebSocket and HTTP prompts arrive and the plugin's
// threads fire bursts of prompt_async. Every user message must end with exactly one
// terminal assistant reply bound to it, no assistant message may answer a user
// message of another turn, nothing accepted may be lost.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { startServer, apiOk, createSession, promptAsync, getMessages, wsConnect, pollUntil, runBin, BIN } from "./lib.mjs";

const FX = path.join(path.dirname(BIN), "tests/plugins/fx.so");
const CONTINUATION = path.join(path.dirname(BIN), "plugins/continuation.so");
const T = { timeout: 120_000 };

const RULES = [
	{ regex: "^fx (.+)$", steps: [{ text: "Calling fx.", tools: [{ name: "fx", input: { mode: "{{1}}" } }] }, { text: "fx said: {{tool_output}}" }] },
	{
		regex: "^plan (.+)$",
		steps: [
			{ text: "Planning.", tools: [{ name: "todowrite", input: { todos: [{ content: "{{1}}", status: "pending", priority: "high", id: "1" }] } }] },
			{ text: "Planned." },
		],
	},
	{ regex: "^echo (.+)$", steps: [{ text: "Calling echo.", tools: [{ name: "echo", input: { text: "{{1}}" } }] }, { text: "echo said: {{tool_output}}" }] },
	{ steps: [{ text: "You said: {{prompt}}" }] },
];
// no first-party plugins: what loads is what a test names
const CONFIG = { providers: { scripted: { pace_ms: 1, rules: RULES } }, retry: { base_ms: 10 }, plugins: [] };

/** The ledger's invariants over a session's messages (the client's view). */
function checkLedger(msgs) {
	const users = msgs.filter((m) => m.info.role === "user");
	const byId = new Map(msgs.map((m) => [m.info.id, m]));
	for (const m of msgs) {
		if (m.info.role !== "assistant") continue;
		const parent = byId.get(m.info.parentID);
		assert.ok(parent && parent.info.role === "user", `assistant ${m.info.id} answers no user message`);
	}
	for (const u of users) {
		const replies = msgs.filter((m) => m.info.role === "assistant" && m.info.parentID === u.info.id);
		const terminal = replies.filter((m) => m.info.finish && m.info.finish !== "tool-calls");
		assert.equal(terminal.length, 1, `user message ${u.info.id} has ${terminal.length} terminal replies`);
		// the turn's replies never overlap in time
		const sorted = replies.map((m) => m.info.time).sort((a, b) => a.created - b.created);
		for (let i = 1; i < sorted.length; i++)
			assert.ok(sorted[i].created >= sorted[i - 1].completed, `replies to ${u.info.id} overlap`);
	}
	return users.length;
}

test("GET /plugin lists what is loaded: id, version, path, hooks, tools, counters", T, async (t) => {
	assert.ok(fs.existsSync(FX), `${FX} is built`);
	const srv = await startServer({ config: CONFIG, args: ["--plugin", FX] });
	t.after(() => srv.stop());
	const list = await apiOk(srv, "GET", "/plugin");
	assert.equal(list.length, 1);
	const p = list[0];
	assert.equal(p.id, "fx");
	assert.equal(p.version, "1.2.3");
	assert.equal(p.path, FX);
	assert.equal(p.abi, "1.1", "the ABI it was built for (AG_ABI_MINOR)");
	assert.deepEqual(p.tools, ["fx", "fx_slow"]);
	assert.ok(p.hooks.includes("tool.before") && p.hooks.includes("turn.end"));
	assert.equal(p.counters.hookErrors, 0);
	const ws = await wsConnect(srv.wsUrl);
	t.after(() => ws.close());
	assert.deepEqual((await ws.call("plugin.list", {}))[0].tools, ["fx", "fx_slow"]);
});

test("with no plugins list in the config the first-party plugins load; a list decides alone", T, async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-plugin-dir-"));
	t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
	fs.copyFileSync(FX, path.join(dir, "workspace.so")); // stands in for the real one
	const env = { AGENTGATE_PLUGIN_DIR: dir };
	const { plugins, ...noList } = CONFIG;
	const srv = await startServer({ config: noList, env });
	const loaded = await apiOk(srv, "GET", "/plugin");
	await srv.stop();
	assert.deepEqual(loaded.map((p) => [p.id, p.path]), [["fx", path.join(dir, "workspace.so")]]);
	// named on the command line too: loaded once, not refused as a second of its id
	const twice = await startServer({ config: noList, env, args: ["--plugin", path.join(dir, "workspace.so")] });
	const once = await apiOk(twice, "GET", "/plugin");
	await twice.stop();
	assert.equal(once.length, 1);
	const none = await startServer({ config: CONFIG, env });
	t.after(() => none.stop());
	assert.deepEqual(await apiOk(none, "GET", "/plugin"), []);
	assert.deepEqual(await apiOk(none, "GET", "/mcp"), {}); // no mcp plugin: no servers
});

test("a --plugin that cannot load stops serve with status 2, naming file and reason", T, async () => {
	await assert.rejects(
		startServer({ config: CONFIG, args: ["--plugin", "/nonexistent/nope.so"] }),
		(err) => /exited before it was ready \(code 2/.test(err.message) && /nope\.so: cannot load/.test(err.message),
	);
});

test("agentgate run --plugin: the plugin's tool runs in the headless turn", T, async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-run-plugin-"));
	t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
	fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(CONFIG));
	const r = await runBin(["run", "--data", path.join(dir, "data"), "--config", path.join(dir, "config.json"), "--plugin", FX, "fx now"]);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stdout, /fx said: fx ran in ses_\w+ at depth 0/);
	const bad = await runBin(["run", "--data", path.join(dir, "data"), "--plugin", path.join(dir, "config.json"), "hi"]);
	assert.equal(bad.code, 2);
	assert.match(bad.stderr, /config\.json: cannot load/);
});

test("plugin wakes racing WS and HTTP prompts around a tool round-trip: one terminal reply per user message", T, async (t) => {
	// fx fires bursts of prompt_async from its threads; continuation wakes the session
	// on idle while its todo stays open
	const srv = await startServer({ config: CONFIG, args: ["--plugin", FX, "--plugin", CONTINUATION] });
	t.after(() => srv.stop());
	const ws = await wsConnect(srv.wsUrl);
	t.after(() => ws.close());
	const s = await createSession(srv, {});
	const sent = [];
	for (let round = 0; round < 4; round++) {
		sent.push(promptAsync(srv, s.id, `plan step ${round}`));
		// the burst starts from inside the tool call, while its round-trip is in flight
		sent.push(promptAsync(srv, s.id, "fx burst"));
		for (let i = 0; i < 3; i++) {
			sent.push(ws.call("session.prompt_async", { sessionID: s.id, parts: [{ type: "text", text: `echo ws ${round}.${i}` }] }));
			sent.push(promptAsync(srv, s.id, `hello http ${round}.${i}`));
		}
	}
	await Promise.all(sent);
	const listing = async (id) => (await apiOk(srv, "GET", "/plugin")).find((p) => p.id === id);
	await pollUntil(
		async () => {
			const st = await apiOk(srv, "GET", "/session/status");
			const fx = await listing("fx");
			const cont = await listing("continuation");
			// 4 bursts × 2 threads × 5 prompts accepted and ended, continuation has
			// woken the session and stopped (its wakes are bounded), nothing runs
			return Object.keys(st).length === 0 && fx.counters.prompts === 40 && fx.inflight === 0 &&
				cont.counters.prompts >= 1 && cont.inflight === 0;
		},
		{ timeout: 60000, label: "every turn ended" },
	);
	const msgs = await getMessages(srv, s.id);
	const users = checkLedger(msgs);
	const wakes = (await listing("continuation")).counters.prompts;
	// 29 client prompts, 40 fx prompts (minus those that joined a queued one), the wakes
	assert.ok(users >= 29 + 20 && users <= 29 + 40 + wakes, `${users} user messages`);
	assert.equal((await listing("fx")).counters.hookErrors, 0);
});
