// `agentgate attach URL` against a real `agentgate serve`: it prints what `agentgate run`
// prints for the same scripted conversation (the same NDJSON event types, in the same
// order, subagents included), waits for every subagent (a background task's result
// turn too) and so always ends with the final step; fails like run; follows a session
// without a prompt until interrupted; carries a turn across a server killed and
// restarted; and answers permission asks as run does (rejected without a terminal,
// --yes allows, y/n on a terminal).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { BIN, startServer, runBin, runOnTty, createSession, apiOk, pollUntil, withTimeout } from "./lib.mjs";

const T = { timeout: 120_000 };
const FX = path.join(path.dirname(BIN), "tests/plugins/fx.so");
// the built-in demo rules: echo, task, bg, fail, long
const CONFIG = { providers: { scripted: { pace_ms: 1 } }, retry: { base_ms: 10 } };
// permission.test.mjs's: the fx fixture asks for bash
const PERM_RULES = [
	{ regex: "^task (.+)$", steps: [{ text: "Delegating.", tools: [{ name: "task", input: { description: "sub", prompt: "{{1}}", subagent_type: "general" } }] }, { text: "sub: {{tool_output}}" }] },
	{ regex: "^fx (.+)$", steps: [{ text: "Calling fx.", tools: [{ name: "fx", input: { mode: "{{1}}" } }] }, { text: "fx said: {{tool_output}}" }] },
	{ steps: [{ text: "You said: {{prompt}}" }] },
];
const PERM_CONFIG = { providers: { scripted: { pace_ms: 1, rules: PERM_RULES } }, retry: { base_ms: 10 } };

const lines = (out) => out.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
const types = (out) => lines(out).map((l) => l.type);

function tmpdir(t) {
	const d = fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-attach-"));
	t.after(() => fs.rmSync(d, { recursive: true, force: true }));
	fs.writeFileSync(path.join(d, "config.json"), JSON.stringify(CONFIG));
	return d;
}

async function serve(t, config = CONFIG, args = []) {
	const srv = await startServer({ config, args });
	t.after(() => srv.stop());
	return srv;
}

const attach = (srv, args, opts = {}) => runBin(["attach", srv.url, ...args], { timeout: 30000, ...opts });

/** attach in the background: {out(), err(), exited, kill(sig)}, killed when the test ends. */
function attachLive(t, srv, args) {
	const p = spawn(BIN, ["attach", srv.url, ...args], { stdio: ["ignore", "pipe", "pipe"] });
	let out = "",
		err = "";
	p.stdout.on("data", (d) => (out += d));
	p.stderr.on("data", (d) => (err += d));
	const exited = new Promise((r) => p.on("close", (code, signal) => r({ code, signal })));
	t.after(() => p.kill("SIGKILL"));
	return { out: () => out, err: () => err, exited, kill: (sig) => p.kill(sig) };
}

test("attach --format json prints the same event types as run, subagents included, and ends with the final step", T, async (t) => {
	const srv = await serve(t);
	const dir = tmpdir(t);
	let i = 0;
	for (const prompt of ["echo hi", "task echo hi", "task task echo deep", "fail"]) {
		const r = await runBin(["run", "--data", path.join(dir, `d${i++}`), "--config", path.join(dir, "config.json"), "--format", "json", prompt], { timeout: 30000 });
		const a = await attach(srv, ["--format", "json", prompt]);
		assert.equal(a.code, r.code, `${prompt}: attach exits as run does\n${a.stderr}`);
		assert.deepEqual(types(a.stdout), types(r.stdout), `${prompt}: the same lines`);
		assert.ok(types(a.stdout).includes(prompt.startsWith("task") ? "subtask_delta" : "step_start"));
		const last = lines(a.stdout).at(-1);
		if (prompt === "fail") {
			assert.equal(last.type, "error");
			assert.match(JSON.stringify(last.error), /scripted failure/);
		} else {
			assert.equal(last.type, "step_finish", `${prompt}: the last line is the final step`);
			assert.equal(last.sessionID, lines(a.stdout)[0].sessionID);
		}
	}
	// a subagent in the background: its result comes back as a turn of its own after
	// the prompt's turn ended; attach waits for it as run does (the interleaving of the
	// child's lines with the parent's may differ, the lines themselves may not)
	const r = await runBin(["run", "--data", path.join(dir, "bg"), "--config", path.join(dir, "config.json"), "--format", "json", "bg echo later"], { timeout: 30000 });
	const a = await attach(srv, ["--format", "json", "bg echo later"]);
	assert.equal(a.code, 0, a.stderr);
	assert.deepEqual(types(a.stdout).sort(), types(r.stdout).sort());
	assert.equal(lines(a.stdout).at(-1).type, "step_finish");
	assert.match(lines(a.stdout).filter((l) => l.type === "text").at(-1).part.text, /The echo tool returned: later/);
});

test("attach's output is never cut off: ten runs of a subagent conversation each end with the final step", T, async (t) => {
	const srv = await serve(t);
	const runs = await Promise.all(Array.from({ length: 10 }, () => attach(srv, ["--format", "json", "task echo hi"])));
	for (const a of runs) {
		assert.equal(a.code, 0, a.stderr);
		const ls = lines(a.stdout);
		assert.equal(ls.at(-1).type, "step_finish");
		assert.equal(ls.filter((l) => l.type === "step_finish" && !l.childSessionID).length, 2);
		assert.match(ls.filter((l) => l.type === "text").at(-1).part.text, /The subagent reported: The echo tool returned: hi/);
	}
});

test("attach in the default format prints the reply; --session continues a session; an unknown one exits 2", T, async (t) => {
	const srv = await serve(t);
	const s = await createSession(srv);
	const a = await attach(srv, ["--session", s.id, "echo round trip"]);
	assert.equal(a.code, 0, `stdout: ${a.stdout}\nstderr: ${a.stderr}`);
	assert.match(a.stdout, /The echo tool returned: round trip/);
	assert.match(a.stdout, /\| echo completed/);
	const msgs = await apiOk(srv, "GET", `/session/${s.id}/message`);
	assert.equal(msgs.filter((m) => m.info.role === "user").length, 1);
	const bad = await attach(srv, ["--session", "ses_nope", "hi"]);
	assert.equal(bad.code, 2);
	assert.match(bad.stderr, /ses_nope/);
	const none = await runBin(["attach", `http://127.0.0.1:1`, "hi"]);
	assert.equal(none.code, 1);
	assert.match(none.stderr, /cannot reach http:\/\/127\.0\.0\.1:1/);
	const usage = await runBin(["attach", srv.url]);
	assert.equal(usage.code, 2);
	assert.match(usage.stderr, /--session/);
});

test("attach with a token: sent as Bearer; a wrong one is named", T, async (t) => {
	const srv = await serve(t, CONFIG, ["--token", "s3cret"]);
	const ok = await attach(srv, ["--token", "s3cret", "hello"]);
	assert.equal(ok.code, 0, ok.stderr);
	const env = await attach(srv, ["hello"], { env: { AGENTGATE_TOKEN: "s3cret" } });
	assert.equal(env.code, 0, env.stderr);
	const wrong = await attach(srv, ["--token", "nope", "hello"]);
	assert.equal(wrong.code, 1);
	assert.match(wrong.stderr, /401/);
});

test("attach without a prompt follows the session until interrupted", T, async (t) => {
	const srv = await serve(t);
	const s = await createSession(srv);
	const a = attachLive(t, srv, ["--session", s.id, "--format", "json"]);
	await pollUntil(() => a.err().includes(`following ${s.id}`), { timeout: 20000, label: "attach follows" });
	await apiOk(srv, "POST", `/session/${s.id}/message`, { parts: [{ type: "text", text: "task echo followed" }] });
	await pollUntil(() => lines(a.out()).some((l) => l.type === "text" && /The subagent reported/.test(l.part.text)), { timeout: 20000, label: "the turn's lines" });
	assert.ok(types(a.out()).includes("subtask_event"));
	a.kill("SIGINT");
	const x = await withTimeout(a.exited, 10000, "attach exits on SIGINT");
	assert.equal(x.code, 130);
});

test("attach carries a turn across a server killed and restarted: the interruption is its last line, exit 1", T, async (t) => {
	const slow = { ...CONFIG, providers: { scripted: { pace_ms: 20 } } };
	const srv = await startServer({ config: slow }); /* killed below: no stop() */
	const a = attachLive(t, srv, ["--format", "json", "long"]);
	await pollUntil(() => types(a.out()).includes("step_start"), { label: "the turn started" });
	await srv.kill("SIGKILL");
	const again = await startServer({ config: slow, dir: srv.dir, port: srv.port });
	t.after(() => again.stop());
	const x = await withTimeout(a.exited, 30000, `attach exits after the restart; stderr: ${a.err()}`);
	assert.equal(x.code, 1, a.err());
	assert.match(a.err(), /connection lost/);
	const last = lines(a.out()).at(-1);
	assert.equal(last.type, "error");
	assert.match(JSON.stringify(last.error), /interrupted/);
});

const hasScript = spawnSync("script", ["--version"]).status === 0;

test("attach answers permission asks as run does: rejected without a terminal naming --yes, --yes allows, y/n on a terminal", T, async (t) => {
	const srv = await serve(t, PERM_CONFIG, ["--plugin", FX]);
	const no = await attach(srv, ["task fx ask make all"]);
	assert.equal(no.code, 0, no.stderr);
	assert.match(no.stdout, /rejected: agentgate attach has no terminal to ask on \(stdin is not a TTY\); run it with --yes/);
	const yes = await attach(srv, ["--yes", "--format", "json", "task fx ask make all"]);
	assert.equal(yes.code, 0, yes.stderr);
	assert.match(yes.stdout, /fx said: allowed \(allowed once by a reply\)/);
	assert.ok(types(yes.stdout).includes("permission.asked"));
	if (!hasScript) return t.skip("util-linux script is not installed");
	const question = /Allow bash make all\? \[y\]es \/ \[n\]o \/ \[a\]lways: /;
	const y = await runOnTty(["attach", srv.url, "fx ask make all"], "y", question);
	assert.equal(y.code, 0, y.out);
	assert.match(y.out, /fx said: allowed \(allowed once by a reply\)/);
	const n = await runOnTty(["attach", srv.url, "fx ask make all"], "n", question);
	assert.match(n.out, /fx said: Error: The user rejected permission to use this specific tool call\./);
});
