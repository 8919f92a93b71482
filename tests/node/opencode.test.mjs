// OpenCode's own binary (npm opencode-ai, pinned) against agentgate: its terminal UI
// (`opencode attach URL`, run under tmux and read with capture-pane) starts, lists and
// opens sessions, sends a prompt and shows the streamed reply, a tool call and a
// subagent, and answers a permission ask; every route it calls on the way answers.
// `opencode run --attach URL --format json` finishes a subagent turn.
// The TUI runs deterministically: a private tmux server, a fixed 120x40 terminal, HOME
// and the XDG directories in a temporary directory, no autoupdate, no models.dev fetch,
// no external plugins, no project config. Every wait is bounded and polls the screen.
import { test } from "node:test";
import { spawn, spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { startServer, apiOk, createSession, promptAsync, getMessages, pollUntil, deferred, withTimeout } from "./lib.mjs";

const VERSION = "1.18.33"; // tests/node/package.json pins opencode-ai to it
const T = { timeout: 240_000 };
const WAIT = 30_000; // one screen change: generous, a loaded machine starts a 180 MB binary slowly

const RULES = [
	{ regex: "^run (.+)$", steps: [{ text: "Running it.", tools: [{ name: "bash", input: { command: "{{1}}", description: "run a command" } }] }, { text: "It printed: {{tool_output}}" }] },
	{ regex: "^task (.+)$", steps: [{ text: "Delegating.", tools: [{ name: "task", input: { description: "delegated task", prompt: "{{1}}", subagent_type: "general" } }] }, { text: "The subagent reported: {{tool_output}}" }] },
	{ regex: "^echo (.+)$", steps: [{ text: "Calling the echo tool.", tools: [{ name: "echo", input: { text: "{{1}}" } }] }, { text: "The echo tool returned: {{tool_output}}" }] },
	{ steps: [{ text: "You said: {{prompt}}" }] },
];

// ---- the binary ----

/** The platform package's binary (as opencode-ai's postinstall picks it), run once:
 * {bin} when it runs, {skip} naming why it cannot on this platform. Where CI runs
 * (Linux x64 with glibc) it must run: anything else is a failure, not a skip. */
function findOpencode() {
	const require = createRequire(import.meta.url);
	const plat = { linux: "linux", darwin: "darwin", win32: "windows" }[process.platform] ?? process.platform;
	const musl = plat === "linux" && !process.report?.getReport?.().header?.glibcVersionRuntime;
	const must = plat === "linux" && process.arch === "x64" && !musl;
	const base = `opencode-${plat}-${process.arch}`;
	const names = musl ? [`${base}-musl`, `${base}-baseline-musl`] : [base, `${base}-baseline`];
	const tried = [];
	for (const name of names) {
		let bin;
		try {
			bin = path.join(path.dirname(require.resolve(`${name}/package.json`)), "bin", plat === "windows" ? "opencode.exe" : "opencode");
		} catch {
			tried.push(`${name}: not installed`);
			continue;
		}
		const home = fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-opencode-"));
		const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 60_000, env: isolatedEnv(home) });
		fs.rmSync(home, { recursive: true, force: true });
		if (r.status === 0 && r.stdout.trim() === VERSION) return { bin };
		tried.push(`${name}: ${r.error ? r.error.message : `exit ${r.status}, printed ${JSON.stringify((r.stdout + r.stderr).slice(0, 300))}`}`);
	}
	const why = `OpenCode ${VERSION} cannot run on ${process.platform}-${process.arch}${musl ? " (musl)" : ""}: ${tried.join("; ")}`;
	if (must) throw new Error(`${why} — on Linux x64 it must (npm ci in tests/node installs opencode-linux-x64)`);
	return { skip: why };
}

/** The environment of an OpenCode process: everything it keeps under root, nothing it
 * would fetch or load from elsewhere. */
function isolatedEnv(root, extra = {}) {
	const env = { PATH: process.env.PATH, LANG: "C.UTF-8", TERM: "xterm-256color", HOME: root };
	Object.assign(env, {
		XDG_CONFIG_HOME: path.join(root, ".config"),
		XDG_DATA_HOME: path.join(root, ".local/share"),
		XDG_CACHE_HOME: path.join(root, ".cache"),
		XDG_STATE_HOME: path.join(root, ".local/state"),
		OPENCODE_DISABLE_AUTOUPDATE: "1",
		OPENCODE_DISABLE_MODELS_FETCH: "1",
		OPENCODE_PURE: "1", // no external plugins (nothing to install)
		OPENCODE_DISABLE_PROJECT_CONFIG: "1",
		OPENCODE_DISABLE_MOUSE: "1",
		OPENCODE_DISABLE_TERMINAL_TITLE: "1",
		...extra,
	});
	return env;
}

function tempDir(t, name) {
	const d = fs.mkdtempSync(path.join(os.tmpdir(), `agentgate-${name}-`));
	t.after(() => fs.rmSync(d, { recursive: true, force: true }));
	return d;
}

const OPENCODE = findOpencode();
const TMUX = spawnSync("tmux", ["-V"], { encoding: "utf8" });
const needs = (t) => {
	if (OPENCODE.skip) return t.skip(OPENCODE.skip), false;
	assert.equal(TMUX.status, 0, `tmux is needed to run the TUI (contrib/deps.sh --test installs it): ${TMUX.error?.message ?? TMUX.stderr}`);
	return true;
};

// ---- a recording proxy: what the TUI asks, and what it is sent ----

/** Forwards every request to srv unchanged (streams too) and records
 * {method, url, status, body, answer} per request (answer: a whole response other than
 * an event stream) and the types of the events the client was sent. */
async function recordingProxy(t, srv) {
	const target = new URL(srv.url);
	const log = [];
	const events = [];
	const server = http.createServer((req, res) => {
		const chunks = [];
		req.on("data", (d) => chunks.push(d));
		req.on("end", () => {
			const body = Buffer.concat(chunks).toString();
			const entry = { method: req.method, url: req.url, status: 0, body };
			log.push(entry);
			const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
				entry.status = ur.statusCode;
				res.writeHead(ur.statusCode, ur.headers);
				const sse = /text\/event-stream/.test(ur.headers["content-type"] ?? "");
				const answer = [];
				ur.on("data", (d) => {
					if (sse) for (const m of d.toString().matchAll(/"type":"([a-z.]+)"/g)) events.push(m[1]);
					else answer.push(d);
					res.write(d);
				});
				ur.on("end", () => {
					entry.answer = Buffer.concat(answer).toString();
					res.end();
				});
			});
			up.on("error", () => res.destroy());
			res.on("close", () => up.destroy());
			up.end(body);
		});
	});
	await new Promise((r) => server.listen(0, "127.0.0.1", r));
	t.after(() => new Promise((r) => (server.closeAllConnections(), server.close(r))));
	return { url: `http://127.0.0.1:${server.address().port}`, log, events };
}

/** Every request the client made was answered: 2xx, or 501 for what agentgate names as
 * not implemented — never a missing route, a refusal or a failure. */
function assertAnswered(proxy) {
	const bad = proxy.log.filter((r) => r.status && !(r.status < 300 || r.status === 501));
	assert.deepEqual(bad.map((r) => `${r.method} ${r.url} → ${r.status}`), [], "every route the TUI called answered");
}

// ---- the TUI in tmux ----

class Tui {
	/** Starts `opencode attach URL [args]` in a detached 120x40 tmux session of a private
	 * tmux server; the pane stays after the program exits, so its last words can be read. */
	static async start(t, url, args = []) {
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-tui-"));
		const tui = new Tui(path.join(dir, "tmux.sock"), dir);
		// the terminal goes first, then its directory (which holds the tmux socket)
		t.after(() => {
			tui.stop();
			fs.rmSync(dir, { recursive: true, force: true });
		});
		const env = isolatedEnv(path.join(dir, "home"));
		const q = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;
		const cmd = ["exec", "env", "-i", ...Object.entries(env).map(([k, v]) => q(`${k}=${v}`)), q(OPENCODE.bin), "attach", q(url), ...args.map(q)].join(" ");
		fs.mkdirSync(path.join(dir, "work"));
		tui.tmux("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "120", "-y", "40", "-c", path.join(dir, "work"), cmd, ";", "set-option", "-t", "tui", "remain-on-exit", "on");
		tui.pid = Number(tui.tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").trim());
		await tui.waitFor(/Ask anything/, { label: "the TUI's prompt", timeout: 60_000 });
		return tui;
	}

	constructor(sock, dir) {
		this.sock = sock;
		this.dir = dir;
	}

	tmux(...args) {
		const r = spawnSync("tmux", ["-S", this.sock, ...args], { encoding: "utf8", timeout: 10_000 });
		if (r.status !== 0) throw new Error(`tmux ${args.join(" ")}: ${r.error?.message ?? r.stderr}`);
		return r.stdout;
	}

	screen() {
		return this.tmux("capture-pane", "-p", "-t", "tui");
	}

	/** Waits until the screen matches re (bounded); the screen then, or an error showing it. */
	async waitFor(re, { timeout = WAIT, label = String(re) } = {}) {
		let last = "";
		try {
			return await pollUntil(() => ((last = this.screen()), re.test(last) && last), { timeout, interval: 100, label });
		} catch (e) {
			throw new Error(`${e.message}\nthe TUI showed:\n${last}`);
		}
	}

	keys(...keys) {
		this.tmux("send-keys", "-t", "tui", ...keys);
	}

	/** Types text into the prompt, waits until it shows, then presses Enter (a line sent
	 * in one go could be taken for a paste). */
	async submit(text) {
		this.tmux("send-keys", "-t", "tui", "-l", text);
		await this.waitFor(new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")), { label: `"${text}" typed` });
		this.keys("Enter");
	}

	/** Ends the tmux server and, should it outlive that, the program in the pane. */
	stop() {
		spawnSync("tmux", ["-S", this.sock, "kill-server"], { timeout: 10_000 });
		try {
			if (this.pid) process.kill(this.pid, "SIGKILL");
		} catch {} // gone with its terminal, as it should be
	}
}

// ---- the tests ----

const config = (extra = {}) => ({ providers: { scripted: { pace_ms: 5, rules: RULES } }, retry: { base_ms: 10 }, ...extra });

async function start(t, extra) {
	const ws = tempDir(t, "ws");
	const srv = await startServer({ config: config(extra), args: ["--workspace", ws] });
	t.after(() => srv.stop());
	return srv;
}

const idle = (srv, id) =>
	pollUntil(async () => !(await apiOk(srv, "GET", "/session/status"))[id], { timeout: WAIT, label: `session ${id} idle` });

test("opencode attach: starts with every route it calls answered, lists the sessions, finds one by its title and opens its history", T, async (t) => {
	if (!needs(t)) return;
	const srv = await start(t);
	const old = await createSession(srv, { title: "tui-history" });
	await promptAsync(srv, old.id, "echo remembered words");
	await idle(srv, old.id);
	await createSession(srv, { title: "another session" });
	const proxy = await recordingProxy(t, srv);
	const tui = await Tui.start(t, proxy.url);
	await tui.waitFor(/Build/, { label: "the agent in the prompt box" });
	// its start-up reads: each answered, none missing (404) or failed
	const wanted = ["/path", "/project/current", "/config/providers", "/provider", "/provider/auth", "/config", "/agent", "/command", "/lsp", "/formatter", "/mcp", "/vcs", "/session/status", "/experimental/capabilities", "/experimental/console", "/experimental/resource", "/api/location", "/api/agent", "/api/model", "/api/provider", "/api/command", "/api/integration", "/api/skill", "/api/reference", "/global/event"];
	await pollUntil(() => wanted.every((u) => proxy.log.some((r) => r.url.split("?")[0] === u && r.status)), { timeout: WAIT, label: "the TUI's start-up requests" }).catch((e) => {
		throw new Error(`${e.message}: missing ${wanted.filter((u) => !proxy.log.some((r) => r.url.split("?")[0] === u))}`);
	});
	assertAnswered(proxy);
	const list = proxy.log.find((r) => r.method === "GET" && /^\/session\?/.test(r.url));
	assert.match(list.url, /start=\d+/, "the session list is asked for with OpenCode's start");

	// the session list (ctrl+x l), searched on the server, then opened
	tui.keys("C-x", "l");
	await tui.waitFor(/Sessions[\s\S]*tui-history[\s\S]*another session|Sessions[\s\S]*another session[\s\S]*tui-history/, { label: "both sessions listed" });
	tui.tmux("send-keys", "-t", "tui", "-l", "history");
	const found = await tui.waitFor(/tui-history/, { label: "the search's result" });
	const search = await pollUntil(() => proxy.log.find((r) => /^\/session\?.*search=history/.test(r.url) && r.answer), { timeout: WAIT, label: "GET /session?search=history" });
	assert.deepEqual(JSON.parse(search.answer).map((s) => s.title), ["tui-history"], "the server searched the titles");
	await tui.waitFor(/^(?![\s\S]*another session)[\s\S]*tui-history/, { label: "the other session filtered out" }).catch((e) => {
		throw new Error(`${e.message}\n(before: ${found})`);
	});
	tui.keys("Enter");
	await tui.waitFor(/echo remembered words[\s\S]*The echo tool returned: remembered words/, { label: "the opened session's history" });
	await pollUntil(() => proxy.log.some((r) => r.url.startsWith(`/session/${old.id}/message`) && r.status === 200), { timeout: WAIT, label: "its messages read" });
	assertAnswered(proxy);
});

test("opencode attach: a prompt typed in the TUI streams its reply, shows its tool call, and a task's subagent with its own session", T, async (t) => {
	if (!needs(t)) return;
	const srv = await start(t);
	const proxy = await recordingProxy(t, srv);
	const tui = await Tui.start(t, proxy.url);
	await tui.waitFor(/Build/, { label: "the agent in the prompt box" });

	await tui.submit("echo hi there");
	await tui.waitFor(/echo[\s\S]*hi there[\s\S]*The echo tool returned: hi there/, { label: "the echo tool call and the reply" });
	const sessions = await apiOk(srv, "GET", "/session");
	assert.equal(sessions.length, 1, "the TUI made one session");
	const id = sessions[0].id;
	const prompt = proxy.log.find((r) => r.method === "POST" && r.url.startsWith(`/session/${id}/`) && /echo hi there/.test(r.body));
	assert.ok(prompt, "the prompt went to the session through the HTTP API");
	assert.ok(proxy.events.includes("message.part.delta"), "the reply reached the TUI streamed, as deltas on its event stream");
	const tool = (await getMessages(srv, id)).flatMap((m) => m.parts).find((p) => p.type === "tool");
	assert.equal(tool.tool, "echo");
	assert.equal(tool.state.status, "completed");

	await tui.submit("task say hi");
	await tui.waitFor(/Task[\s\S]*delegated task[\s\S]*The subagent reported: You said: say hi/, { label: "the task and its result" });
	const children = await apiOk(srv, "GET", `/session/${id}/children`);
	assert.equal(children.length, 1, "the task made a child session");
	// into the subagent's own session (ctrl+x down), where its prompt and reply are
	tui.keys("C-x", "Down");
	await tui.waitFor(/say hi[\s\S]*You said: say hi[\s\S]*Subagent/, { label: "the subagent's session" });
	await pollUntil(() => proxy.log.some((r) => r.url.startsWith(`/session/${children[0].id}/message`) && r.status === 200), { timeout: WAIT, label: "the child's messages read" });
	assertAnswered(proxy);
});

test("opencode attach: a permission ask shows in the TUI and is answered there", T, async (t) => {
	if (!needs(t)) return;
	const srv = await start(t); // bash asks by default
	const proxy = await recordingProxy(t, srv);
	const tui = await Tui.start(t, proxy.url);
	await tui.waitFor(/Build/, { label: "the agent in the prompt box" });

	await tui.submit("run echo tui-ok");
	await tui.waitFor(/Permission required[\s\S]*echo tui-ok[\s\S]*Allow once/, { label: "the permission ask" });
	const asks = await apiOk(srv, "GET", "/permission");
	assert.equal(asks.length, 1, "one ask waits");
	assert.equal(asks[0].permission, "bash");
	tui.keys("Enter"); // "Allow once" is the one selected
	await tui.waitFor(/It printed: tui-ok/, { label: "the command's output in the reply" });
	const reply = proxy.log.find((r) => r.method === "POST" && r.url.startsWith(`/permission/${asks[0].id}/reply`));
	assert.ok(reply, "answered through POST /permission/{id}/reply");
	assert.equal(reply.status, 200);
	assert.deepEqual(JSON.parse(reply.body), { reply: "once" });
	assert.deepEqual(await apiOk(srv, "GET", "/permission"), [], "nothing waits any more");
	assertAnswered(proxy);
});

/** `opencode run --attach URL --format json WORDS...`: its exit code and JSON lines. */
async function opencodeRun(t, url, words) {
	const home = tempDir(t, "run");
	const exited = deferred();
	const p = spawn(OPENCODE.bin, ["run", "--attach", url, "--format", "json", ...words], {
		cwd: home,
		env: isolatedEnv(home),
		stdio: ["ignore", "pipe", "pipe"],
	});
	let stdout = "",
		stderr = "";
	p.stdout.on("data", (d) => (stdout += d));
	p.stderr.on("data", (d) => (stderr += d));
	p.on("close", (code, signal) => exited.resolve({ code, signal }));
	t.after(() => p.exitCode === null && p.kill("SIGKILL"));
	const { code } = await withTimeout(exited.promise, 120_000, `opencode run; it printed:\n${stdout}\n${stderr}`);
	assert.equal(code, 0, `opencode run exited ${code}:\n${stdout}\n${stderr}`);
	return { stdout, lines: stdout.trim().split("\n").map((l) => JSON.parse(l)) };
}

test("opencode run --attach URL --format json finishes a subagent turn, every time", T, async (t) => {
	if (!needs(t)) return;
	const srv = await start(t);
	// it exits as soon as its prompt is answered: the turn's last lines come from events
	// that must reach it before the answer does, each time
	for (let i = 0; i < 3; i++) {
		const { stdout, lines } = await opencodeRun(t, srv.url, ["task", "say", `hi${i}`]);
		const task = lines.find((l) => l.type === "tool_use" && l.part.tool === "task");
		assert.ok(task, `run ${i}: a task tool_use line:\n${stdout}`);
		assert.equal(task.part.state.status, "completed");
		assert.match(task.part.state.output, new RegExp(`You said: say hi${i}`), "the subagent's answer is the task's result");
		const texts = lines.filter((l) => l.type === "text").map((l) => l.part.text);
		assert.equal(texts.at(-1), `The subagent reported: You said: say hi${i}`, `run ${i}: the final answer:\n${stdout}`);
		assert.equal(lines.at(-1).type, "step_finish", `run ${i}: the turn's last step finished`);
		const child = (await apiOk(srv, "GET", `/session/${task.sessionID}/children`))[0];
		assert.ok(child, "the subagent ran in a child session");
		const last = (await getMessages(srv, child.id)).at(-1);
		assert.ok(last.info.time.completed, "the child's reply completed");
	}
});
