// The mcp plugin end to end: a real `agentgate serve` loading build/plugins/mcp.so, with a
// config "mcp" section, a scripted model whose rules call the servers' tools, and real MCP
// servers installed from npm (node_modules/.bin, never downloaded at test time):
// @modelcontextprotocol/server-everything over stdio and over Streamable HTTP, and
// @modelcontextprotocol/server-filesystem. Servers that exit at start, are killed
// mid-call, or never answer initialize are plain `sh -c` commands. One small server is
// written here (pager): it pages its tools/list and changes its tools on demand, which
// neither npm server does at will.
//
// The servers' state is the record the plugin writes (kv "status", OpenCode's GET /mcp
// shape: an object by server name): GET /mcp once the gateway serves that object, else
// read from the data directory with the sqlite3 tool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
	BIN,
	HERE,
	DEFAULT_CONFIG,
	startServer,
	createSession,
	promptAsync,
	getMessages,
	apiOk,
	api,
	pollUntil,
	freePort,
	runBin,
} from "./lib.mjs";

const T = { timeout: 120_000 };
const NPM_BIN = path.join(HERE, "node_modules/.bin");
const EVERYTHING = path.join(NPM_BIN, "mcp-server-everything");
const FILESYSTEM = path.join(NPM_BIN, "mcp-server-filesystem");
const PLUGIN_DIR = process.env.AGENTGATE_PLUGIN_DIR || path.join(path.dirname(BIN), "plugins");
const MCP_SO = path.join(PLUGIN_DIR, "mcp.so");

/** A rule: the prompt "TRIGGER" makes the model call tool with input, then report. */
const callRule = (trigger, tool, input) => ({
	regex: `^${trigger}$`,
	steps: [{ text: `Calling ${tool}.`, tools: [{ name: tool, input }] }, { text: "Result: {{tool_output}}" }],
});

/** agentgate serve with these servers and rules, and the mcp plugin: named in the
 * config's plugins list (with options, if any), or — defaults — loaded as a first-party
 * plugin by default (a config without a plugins list). */
async function serve(t, { mcp, rules = [], options = {}, defaults = false, extra = {} }) {
	const config = {
		...DEFAULT_CONFIG,
		...extra,
		providers: { scripted: { pace_ms: 1, rules: [...rules, { match: "", steps: [{ text: "You said: {{prompt}}" }] }] } },
		mcp,
		...(defaults ? {} : { plugins: [{ path: MCP_SO, options, required: true }] }),
	};
	const srv = await startServer({ config, env: { AGENTGATE_LOG: "info", AGENTGATE_PLUGIN_DIR: PLUGIN_DIR } });
	t.after(() => srv.stop());
	return srv;
}

/** The plugin's status record: {NAME: {status, type, error?, tools, restarts, pid?}}. */
async function mcpStatus(srv) {
	const r = await api(srv, "GET", "/mcp");
	if (r.status === 200 && r.json && typeof r.json === "object" && !Array.isArray(r.json)) return r.json;
	const db = path.join(srv.dir, "agentgate.db");
	const q = spawnSync("sqlite3", [db, "SELECT value FROM kv WHERE owner = 'plugin:mcp' AND key = 'status'"], {
		encoding: "utf8",
		timeout: 5000,
	});
	if (q.status !== 0) throw new Error(`sqlite3: ${q.stderr}`);
	return q.stdout.trim() ? JSON.parse(q.stdout) : null;
}

/** Polls the status until pred(status) holds for server name (bounded); returns its entry. */
async function waitServer(srv, name, pred, label, timeout = 30000) {
	let last;
	try {
		return await pollUntil(
			async () => {
				last = (await mcpStatus(srv))?.[name];
				return last && pred(last) ? last : null;
			},
			{ timeout, interval: 50, label },
		);
	} catch (e) {
		e.message += `\nlast status of ${name}: ${JSON.stringify(last)}\n${srv.output().slice(-3000)}`;
		throw e;
	}
}
const connected = (s) => s.status === "connected";

/** POST /session/{id}/message: waits for the turn and returns the session's tool parts. */
async function promptTools(srv, id, text) {
	await apiOk(srv, "POST", `/session/${id}/message`, { parts: [{ type: "text", text }] });
	return toolParts(await getMessages(srv, id));
}
const toolParts = (msgs) => msgs.flatMap((m) => m.parts).filter((p) => p.type === "tool");
const lastTool = (parts) => parts[parts.length - 1];

/** Waits (bounded) until a tool part of session id has the state status; returns it. */
const waitToolState = (srv, id, status, label) =>
	pollUntil(async () => toolParts(await getMessages(srv, id)).find((p) => p.state.status === status), {
		timeout: 15000,
		label,
	});

/** Processes whose command line contains marker (a scan of /proc). */
function processesWith(marker) {
	const found = [];
	for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
		try {
			const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
			const state = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
			if (cmd.includes(marker) && state !== "Z") found.push(Number(pid));
		} catch {}
	}
	return found;
}

// ---------------------------------------------------------------------------

test("stdio: everything's tools are registered as everything_*, called, and their content flattened", T, async (t) => {
	const srv = await serve(t, {
		defaults: true, // the config's top-level "mcp" alone: the plugin loads by default
		mcp: { everything: { type: "local", command: [EVERYTHING] } },
		rules: [
			callRule("echo it", "everything_echo", { message: "hello over stdio" }),
			callRule("image", "everything_get-tiny-image", {}),
			callRule("links", "everything_get-resource-links", { count: 2 }),
			callRule("sum", "everything_get-sum", { a: 2, b: 40 }),
		],
	});
	const st = await waitServer(srv, "everything", connected, "everything connected");
	assert.equal(st.type, "local");
	assert.equal(st.restarts, 0);
	assert.ok(st.pid > 0);
	for (const name of ["everything_echo", "everything_get-tiny-image", "everything_trigger-long-running-operation"])
		assert.ok(st.tools.includes(name), `${name} in ${st.tools}`);

	const s = await createSession(srv);
	let part = lastTool(await promptTools(srv, s.id, "echo it"));
	assert.equal(part.tool, "everything_echo");
	assert.equal(part.state.status, "completed");
	assert.equal(part.state.output, "Echo: hello over stdio");

	part = lastTool(await promptTools(srv, s.id, "image"));
	assert.equal(part.state.status, "completed");
	assert.match(part.state.output, /^Here's the image you requested:\n\[image: image\/png, \d+ bytes, not shown\]\n/);

	part = lastTool(await promptTools(srv, s.id, "links"));
	assert.equal(part.state.status, "completed");
	assert.equal((part.state.output.match(/\[resource link: /g) || []).length, 2, part.state.output);

	part = lastTool(await promptTools(srv, s.id, "sum"));
	assert.equal(part.state.status, "completed");
	assert.match(part.state.output, /42/);
	// its stderr reaches the gateway's log, tagged with the server's name
	assert.match(srv.output(), /plugin mcp: \[everything\] /);
});

test("agentgate run waits for the servers still connecting: its prompt's first step can call their tools", T, async (t) => {
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-mcp-run-"));
	t.after(() => fsp.rm(dir, { recursive: true, force: true }));
	const config = {
		...DEFAULT_CONFIG,
		providers: { scripted: { pace_ms: 1, rules: [callRule("echo it", "everything_echo", { message: "from run" })] } },
		mcp: { everything: { type: "local", command: [EVERYTHING] } },
	};
	const file = path.join(dir, "config.json");
	fs.writeFileSync(file, JSON.stringify(config));
	// twice on one data directory: the second run must not take the first one's record
	// of a connected server for its own
	for (const round of [1, 2]) {
		const r = await runBin(["run", "--data", path.join(dir, "data"), "--config", file, "--format", "json", "echo it"], {
			env: { AGENTGATE_PLUGIN_DIR: PLUGIN_DIR },
			timeout: 60000,
		});
		assert.equal(r.code, 0, `round ${round}: ${r.stderr}`);
		const tool = r.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((l) => l.type === "tool_use");
		assert.ok(tool, `round ${round}: a tool call in ${r.stdout}`);
		assert.equal(tool.part.tool, "everything_echo");
		assert.equal(tool.part.state.status, "completed", `round ${round}: ${tool.part.state.error}`);
		assert.equal(tool.part.state.output, "Echo: from run");
	}
});

test("Streamable HTTP: everything's tools over a remote session (SSE answers, Mcp-Session-Id)", T, async (t) => {
	const port = await freePort();
	const child = spawn(EVERYTHING, ["streamableHttp"], {
		env: { ...process.env, PORT: String(port) },
		stdio: ["ignore", "pipe", "pipe"],
	});
	t.after(() => child.kill("SIGKILL"));
	let out = "";
	child.stdout.on("data", (d) => (out += d));
	child.stderr.on("data", (d) => (out += d));
	await pollUntil(() => /listening on port/.test(out), { timeout: 20000, label: `everything listens on ${port}: ${out}` });

	const srv = await serve(t, {
		mcp: {
			web: { type: "remote", url: `http://127.0.0.1:${port}/mcp`, headers: { "X-Agentgate-Test": "1" } },
		},
		rules: [callRule("remote echo", "web_echo", { message: "hello over http" })],
	});
	const st = await waitServer(srv, "web", connected, "web connected");
	assert.equal(st.type, "remote");
	assert.ok(st.tools.includes("web_echo"), st.tools.join());
	assert.equal(st.pid, undefined);
	// the server refuses a request without the session it handed out: this one worked
	assert.match(out, /Session initialized with ID: /);

	const s = await createSession(srv);
	const part = lastTool(await promptTools(srv, s.id, "remote echo"));
	assert.equal(part.state.status, "completed");
	assert.equal(part.state.output, "Echo: hello over http");
});

test("filesystem: read_text_file in its directory; outside it the server's isError becomes the tool's error", T, async (t) => {
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-mcp-fs-"));
	t.after(() => fsp.rm(dir, { recursive: true, force: true }));
	const file = path.join(dir, "notes.txt");
	await fsp.writeFile(file, "line one\nline two\n");
	const srv = await serve(t, {
		mcp: { files: { type: "local", command: [FILESYSTEM, dir] } },
		rules: [
			callRule("read it", "files_read_text_file", { path: file }),
			callRule("read outside", "files_read_text_file", { path: "/etc/hostname" }),
		],
	});
	const st = await waitServer(srv, "files", connected, "files connected");
	assert.ok(st.tools.includes("files_read_text_file"), st.tools.join());

	const s = await createSession(srv);
	let part = lastTool(await promptTools(srv, s.id, "read it"));
	assert.equal(part.state.status, "completed");
	assert.equal(part.state.output, "line one\nline two\n");

	part = lastTool(await promptTools(srv, s.id, "read outside"));
	assert.equal(part.state.status, "error");
	assert.match(part.state.error, /denied|outside|not allowed/i);
});

test("a server that exits at start fails with its exit status and stderr, is restarted with backoff, and the others serve", T, async (t) => {
	const srv = await serve(t, {
		mcp: {
			broken: { type: "local", command: ["sh", "-c", "echo 'cannot find my config' >&2; exit 3"] },
			everything: { type: "local", command: [EVERYTHING] },
		},
		rules: [callRule("echo it", "everything_echo", { message: "still here" })],
	});
	const st = await waitServer(srv, "broken", (s) => s.restarts >= 2, "broken restarted twice", 15000);
	assert.notEqual(st.status, "connected");
	assert.match(st.error, /exited with status 3 \(stderr: cannot find my config\)/);
	assert.deepEqual(st.tools, []);
	// backoff: 1 s, then 2 s — the third start is not before 3 s
	const log = srv.output().split("\n").filter((l) => /server broken: exited/.test(l));
	assert.match(log[0], /starting it again in 1000 ms/);
	assert.match(log[1], /starting it again in 2000 ms/);

	await waitServer(srv, "everything", connected, "everything connected");
	const s = await createSession(srv);
	const part = lastTool(await promptTools(srv, s.id, "echo it"));
	assert.equal(part.state.output, "Echo: still here");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200);
});

test("a server killed mid-call: the call fails at once naming the server, the server restarts and serves again", T, async (t) => {
	const srv = await serve(t, {
		mcp: { everything: { type: "local", command: [EVERYTHING] } },
		rules: [
			callRule("long", "everything_trigger-long-running-operation", { duration: 60, steps: 60 }),
			callRule("echo it", "everything_echo", { message: "back again" }),
		],
	});
	const before = await waitServer(srv, "everything", connected, "everything connected");
	const s = await createSession(srv);
	await promptAsync(srv, s.id, "long");
	await waitToolState(srv, s.id, "running", "the long call runs");
	const killedAt = Date.now();
	process.kill(before.pid, "SIGKILL");
	const part = await waitToolState(srv, s.id, "error", "the call fails");
	assert.ok(Date.now() - killedAt < 5000, "the call failed at once, not at a timeout");
	assert.match(part.state.error, /MCP server "everything" failed during the call to trigger-long-running-operation: was killed by signal 9/);

	const after = await waitServer(srv, "everything", (x) => connected(x) && x.restarts === 1, "restarted once");
	assert.notEqual(after.pid, before.pid);
	const again = lastTool(await promptTools(srv, s.id, "echo it"));
	assert.equal(again.state.output, "Echo: back again");
});

test("a server that never answers initialize fails with a timeout, its process group is killed, the gateway serves", T, async (t) => {
	const marker = `agentgate-mcp-hang-${process.pid}-${Date.now()}`;
	const srv = await serve(t, {
		mcp: { silent: { type: "local", command: ["sh", "-c", `sleep 1000; : ${marker}`] } },
		options: { startup_timeout_ms: 1500 },
	});
	const st = await waitServer(srv, "silent", (s) => s.error && s.restarts >= 1, "silent timed out", 15000);
	assert.match(st.error, /no answer to initialize within 1500 ms/, `${st.error}\n${srv.output().slice(-3000)}`);
	assert.deepEqual(st.tools, []);
	const s = await createSession(srv);
	const reply = await apiOk(srv, "POST", `/session/${s.id}/message`, { parts: [{ type: "text", text: "hi there" }] });
	assert.equal(reply.parts.find((p) => p.type === "text").text, "You said: hi there");

	// the one started last is alive until the gateway stops; then nothing of it is left
	await srv.stop();
	await pollUntil(() => processesWith(marker).length === 0, { timeout: 5000, label: "no hung server left" });
});

test("abort and timeout of a call cancel it on the server, which stays up and answers the next call", T, async (t) => {
	const srv = await serve(t, {
		mcp: {
			everything: { type: "local", command: [EVERYTHING] },
			slow: { type: "local", command: [EVERYTHING], timeout: 1000 },
		},
		rules: [
			callRule("long", "everything_trigger-long-running-operation", { duration: 60, steps: 60 }),
			callRule("slow long", "slow_trigger-long-running-operation", { duration: 5, steps: 5 }),
			callRule("echo it", "everything_echo", { message: "after the cancel" }),
			callRule("slow echo", "slow_echo", { message: "quick enough" }),
		],
	});
	await waitServer(srv, "everything", connected, "everything connected");
	await waitServer(srv, "slow", connected, "slow connected");
	const s = await createSession(srv);
	await promptAsync(srv, s.id, "long");
	await waitToolState(srv, s.id, "running", "the long call runs");
	await apiOk(srv, "POST", `/session/${s.id}/abort`);
	await waitToolState(srv, s.id, "error", "the call ends aborted");
	// the I/O thread gets the cancel after the abort; the server stays connected
	await pollUntil(async () => (await apiOk(srv, "GET", "/session/status"))[s.id] === undefined, { timeout: 10000, label: "idle" });
	let part = lastTool(await promptTools(srv, s.id, "echo it"));
	assert.equal(part.state.output, "Echo: after the cancel");

	const s2 = await createSession(srv);
	part = lastTool(await promptTools(srv, s2.id, "slow long"));
	assert.equal(part.state.status, "error");
	assert.match(part.state.error, /timed out after 1000 ms/);
	part = lastTool(await promptTools(srv, s2.id, "slow echo"));
	assert.equal(part.state.output, "Echo: quick enough");
	const st = await mcpStatus(srv);
	assert.equal(st.everything.restarts, 0);
	assert.equal(st.slow.restarts, 0);
});

// A server written here: tools/list one tool per page; calling alpha replaces its tools
// (alpha, beta → beta, gamma) and announces notifications/tools/list_changed; hold never
// answers, and cancelled tells what notifications/cancelled said and which call it named.
const PAGER = `
import readline from "node:readline";
let tools = ["alpha", "beta", "hold", "cancelled"], held = null, cancel = null;
const send = (m) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...m }) + "\\n");
const def = (name) => ({ name, description: "the " + name + " tool", inputSchema: { type: "object", properties: {} } });
readline.createInterface({ input: process.stdin }).on("line", (line) => {
	const m = JSON.parse(line);
	if (m.method === "initialize")
		send({ id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: { listChanged: true } },
			serverInfo: { name: "pager", version: "1" } } });
	else if (m.method === "tools/list") {
		const i = m.params && m.params.cursor ? Number(m.params.cursor) : 0;
		send({ id: m.id, result: { tools: [def(tools[i])], ...(i + 1 < tools.length ? { nextCursor: String(i + 1) } : {}) } });
	} else if (m.method === "notifications/cancelled") cancel = { ...m.params, held: m.params.requestId === held };
	else if (m.method === "tools/call" && m.params.name === "hold") held = m.id;
	else if (m.method === "tools/call" && m.params.name === "cancelled")
		send({ id: m.id, result: { content: [{ type: "text", text: JSON.stringify(cancel) }] } });
	else if (m.method === "tools/call") {
		if (m.params.name === "alpha") tools = ["beta", "gamma", "hold", "cancelled"];
		send({ id: m.id, result: { content: [{ type: "text", text: m.params.name + " ran" }] } });
		if (m.params.name === "alpha") send({ method: "notifications/tools/list_changed" });
	} else if (m.id !== undefined && m.method) send({ id: m.id, error: { code: -32601, message: "no" } });
});
`;

/** PAGER in a temporary file: the command that runs it. */
async function pagerCommand(t) {
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-mcp-pager-"));
	t.after(() => fsp.rm(dir, { recursive: true, force: true }));
	const script = path.join(dir, "pager.mjs");
	await fsp.writeFile(script, PAGER);
	return [process.execPath, script];
}

test("tools/list is read page by page, and list_changed unregisters removed tools and registers new ones", T, async (t) => {
	const command = await pagerCommand(t);
	const srv = await serve(t, {
		mcp: { "my pager": { type: "local", command } },
		rules: [
			callRule("alpha", "my_pager_alpha", {}),
			callRule("gamma", "my_pager_gamma", {}),
		],
	});
	const st = await waitServer(srv, "my pager", connected, "pager connected");
	assert.deepEqual(st.tools, ["my_pager_alpha", "my_pager_beta", "my_pager_hold", "my_pager_cancelled"]);
	const s = await createSession(srv);
	assert.equal(lastTool(await promptTools(srv, s.id, "alpha")).state.output, "alpha ran");
	await waitServer(srv, "my pager", (x) => x.tools.join() === "my_pager_beta,my_pager_gamma,my_pager_hold,my_pager_cancelled", "the new list");
	assert.equal(lastTool(await promptTools(srv, s.id, "gamma")).state.output, "gamma ran");
	const gone = lastTool(await promptTools(srv, s.id, "alpha"));
	assert.equal(gone.state.status, "error");
});

test("an aborted call is cancelled on the server: notifications/cancelled names its request", T, async (t) => {
	const srv = await serve(t, {
		mcp: { pager: { type: "local", command: await pagerCommand(t) } },
		rules: [callRule("hold", "pager_hold", {}), callRule("cancelled", "pager_cancelled", {})],
	});
	await waitServer(srv, "pager", connected, "pager connected");
	const s = await createSession(srv);
	await promptAsync(srv, s.id, "hold");
	await waitToolState(srv, s.id, "running", "hold runs");
	await apiOk(srv, "POST", `/session/${s.id}/abort`);
	await pollUntil(async () => (await apiOk(srv, "GET", "/session/status"))[s.id] === undefined, { timeout: 10000, label: "idle" });
	const told = await pollUntil(
		async () => {
			const out = lastTool(await promptTools(srv, s.id, "cancelled")).state.output;
			return out !== "null" && JSON.parse(out);
		},
		{ timeout: 10000, label: "the server was told" },
	);
	assert.equal(told.held, true, JSON.stringify(told));
	assert.match(told.reason, /cancelled or timed out/);
});

test("permissions: the tool's name is the permission — a deny rule refuses, an ask waits for a reply", T, async (t) => {
	const srv = await serve(t, {
		mcp: { everything: { type: "local", command: [EVERYTHING] } },
		extra: { permission: { everything_echo: "deny", "everything_get-sum": "ask" } },
		rules: [
			callRule("echo it", "everything_echo", { message: "refused" }),
			callRule("sum", "everything_get-sum", { a: 40, b: 2 }),
			callRule("image", "everything_get-tiny-image", {}),
		],
	});
	await waitServer(srv, "everything", connected, "everything connected");
	const s = await createSession(srv);
	let part = lastTool(await promptTools(srv, s.id, "echo it"));
	assert.equal(part.state.status, "error");
	assert.match(part.state.error, /denied by the rule/);

	await promptAsync(srv, s.id, "sum");
	const asked = await pollUntil(
		async () => (await apiOk(srv, "GET", "/permission")).find((p) => p.permission === "everything_get-sum"),
		{ timeout: 15000, label: "the ask is listed" },
	);
	assert.equal(asked.sessionID, s.id);
	await apiOk(srv, "POST", `/permission/${asked.id}/reply`, { reply: "once" });
	part = await waitToolState(srv, s.id, "completed", "the call runs once allowed");
	assert.equal(part.tool, "everything_get-sum");
	assert.match(part.state.output, /42/);

	// a tool no rule names is allowed, as the defaults say
	await pollUntil(async () => (await apiOk(srv, "GET", "/session/status"))[s.id] === undefined, { timeout: 10000, label: "idle" });
	part = lastTool(await promptTools(srv, s.id, "image"));
	assert.equal(part.state.status, "completed");
});

test("a remote server nobody listens for fails naming its URL and is tried again", T, async (t) => {
	const port = await freePort();
	const url = `http://127.0.0.1:${port}/mcp`;
	const srv = await serve(t, { mcp: { nowhere: { type: "remote", url } } });
	const st = await waitServer(srv, "nowhere", (s) => s.restarts >= 1 && s.error, "nowhere tried twice", 15000);
	assert.equal(st.type, "remote");
	assert.ok(st.error.startsWith(`cannot reach ${url}: `), st.error);
});

test("config: a disabled server is not started, a malformed one is failed naming the key", T, async (t) => {
	const srv = await serve(t, {
		mcp: {
			off: { type: "local", command: [EVERYTHING], enabled: false },
			typo: { type: "local", command: [EVERYTHING], comand: ["x"] },
		},
	});
	const off = await waitServer(srv, "off", (s) => s.status === "disabled", "off disabled");
	assert.equal(off.pid, undefined);
	const typo = await waitServer(srv, "typo", (s) => s.status === "failed", "typo failed");
	assert.match(typo.error, /unknown key "comand"/);
	assert.equal(processesWith(EVERYTHING).filter((p) => isChildOf(p, srv.proc.pid)).length, 0);
});

function isChildOf(pid, parent) {
	try {
		return Number(fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[1]) === parent;
	} catch {
		return false;
	}
}
