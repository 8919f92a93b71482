// The first-party plugins and the SDK template, end to end: each .so loaded into a real
// `agentgate serve` (on 127.0.0.1, its own data dir) that a scripted model drives, and
// each observed from outside — events on /event, the session's messages, the file the
// audit log writes, the requests a local HTTP receiver gets. tests/plugins/probe.c
// announces every turn end with its source (plugin.probe.turn_end) and offers tools with
// real path and shell argument names. Paths come from ctest (tests/CMakeLists.txt).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import {
	BIN,
	REPO,
	DEFAULT_CONFIG,
	startServer,
	sseSubscribe,
	createSession,
	promptAsync,
	getMessages,
	apiOk,
	api,
	pollUntil,
	freePort,
	firstGap,
	firstNonIncreasing,
	runCmd,
	findFile,
} from "./lib.mjs";

const T = { timeout: 120_000 };
// absolute: a relative plugin path in a config is resolved against the config's folder
const BUILD = path.resolve(process.env.AGENTGATE_BUILD_DIR || path.dirname(BIN));
const PLUGINS = path.resolve(process.env.AGENTGATE_PLUGIN_DIR || path.join(BUILD, "plugins"));
const PROBE = path.resolve(process.env.AGENTGATE_PROBE || path.join(BUILD, "tests/plugins/probe.so"));
const so = (name) => path.join(PLUGINS, `${name}.so`);

/** A server whose scripted model follows rules, with these plugins ({name|path, options}). */
function serve(t, { plugins = [], rules = [], env = {}, args = [] }) {
	const load = plugins.map((p) => ({
		path: p.path || so(p.name),
		options: p.options || {},
		required: true,
	}));
	const catchAll = { match: "", steps: [{ text: "You said: {{prompt}}" }] };
	const config = {
		...DEFAULT_CONFIG,
		providers: { scripted: { pace_ms: 1, rules: [...rules, catchAll] } },
		plugins: load,
	};
	return startServer({ config, env, args }).then((srv) => {
		t.after(() => srv.stop());
		return srv;
	});
}

const tmp = (t) =>
	fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-plugins-")).then((d) => {
		t.after(() => fsp.rm(d, { recursive: true, force: true }));
		return d;
	});

/** POST /session/{id}/message: waits for the turn; returns the reply. */
const prompt = (srv, id, text) =>
	apiOk(srv, "POST", `/session/${id}/message`, { parts: [{ type: "text", text }] });

const textOf = (parts) => parts.filter((p) => p.type === "text").map((p) => p.text).join("");
const userTexts = (msgs) => msgs.filter((m) => m.info.role === "user").map((m) => textOf(m.parts));
const toolParts = (msgs, tool) => msgs.flatMap((m) => m.parts).filter((p) => p.type === "tool" && p.tool === tool);
/** The events (JSON) of type for session id received so far. */
const eventsOf = (sse, type, id) => sse.events.map((f) => f.json).filter((e) => e.type === type && e.sessionID === id);
const turnEnds = (sse, id) => eventsOf(sse, "plugin.probe.turn_end", id).map((e) => e.properties);
const pluginEvents = eventsOf;

/** Every user message has exactly one terminal assistant reply, bound to it. */
function assertOneReplyEach(msgs) {
	for (const u of msgs.filter((m) => m.info.role === "user")) {
		const replies = msgs.filter(
			(m) => m.info.role === "assistant" && m.info.parentID === u.info.id && m.info.finish !== "tool-calls",
		);
		assert.equal(replies.length, 1, `user message ${u.info.id} has ${replies.length} terminal replies`);
	}
}

// ---------------------------------------------------------------------------
// continuation

const todo = (content, status, priority, id) => ({ content, status, priority, id });
const writeTodos = (todos, then) => [
	{ text: "Writing the todo list.", tools: [{ name: "todowrite", input: { todos } }] },
	{ text: then },
];
const CONTINUATION_RULES = [
	{
		regex: "^plan forever",
		steps: writeTodos(
			[
				todo("write the parser", "completed", "high", "1"),
				todo("write the tests", "in_progress", "medium", "2"),
				todo("ship it", "pending", "low", "3"),
			],
			"Planned; stopping here.",
		),
	},
	{ regex: "^plan and finish", steps: writeTodos([todo("finish me", "pending", "high", "1")], "Planned.") },
	// the wake names the open todo: this model then completes it
	{ regex: "unfinished todo.*finish me", steps: writeTodos([todo("finish me", "completed", "high", "1")], "All done.") },
	{ regex: "^todoread", steps: [{ text: "Reading.", tools: [{ name: "todoread", input: {} }] }, { text: "Todos: {{tool_output}}" }] },
];

test("continuation: a session that stops with open todos is woken, at most max_wakes times per prompt", T, async (t) => {
	const srv = await serve(t, {
		plugins: [{ name: "continuation", options: { max_wakes: 3 } }, { path: PROBE }],
		rules: CONTINUATION_RULES,
	});
	const sse = await sseSubscribe(srv);
	t.after(() => sse.close());
	const s = await createSession(srv);
	await promptAsync(srv, s.id, "plan forever");
	const exhausted = await sse.waitFor((e) => e.type === "plugin.continuation.exhausted" && e.sessionID === s.id, {
		timeout: 30000,
		label: "continuation gives up",
	});
	assert.deepEqual(
		{ wake: exhausted.properties.wake, open: exhausted.properties.open },
		{ wake: 3, open: 2 },
	);
	const wakes = pluginEvents(sse, "plugin.continuation.wake", s.id).map((e) => e.properties.wake);
	assert.deepEqual(wakes, [1, 2, 3]);

	// FIFO: had a fourth wake been queued, it would end before this prompt's turn
	await prompt(srv, s.id, "hello again");
	await sse.until(() => turnEnds(sse, s.id).length >= 5, { label: "five turns ended" });
	const ends = turnEnds(sse, s.id).slice(0, 5);
	assert.deepEqual(
		ends.map((e) => e.source),
		["http", "plugin:continuation", "plugin:continuation", "plugin:continuation", "http"],
	);
	assert.ok(ends.every((e) => e.state === "completed"));

	// a prompt from someone else gives the wakes back
	await sse.until(() => pluginEvents(sse, "plugin.continuation.exhausted", s.id).length === 2, {
		timeout: 30000,
		label: "woken again after the user's prompt, until it gives up again",
	});
	const msgs = await getMessages(srv, s.id);
	const users = userTexts(msgs);
	assert.equal(users.length, 8);
	const woken = users.filter((u) => u.includes("unfinished todo"));
	assert.equal(woken.length, 6);
	for (const w of woken) {
		assert.match(w, /write the tests/);
		assert.match(w, /ship it/);
		assert.doesNotMatch(w, /write the parser/, "a completed todo is not named");
	}
	assert.match(woken[0], /wake 1 of 3/);
	assertOneReplyEach(msgs);
});

test("continuation: a model that completes its todos when woken is not woken again", T, async (t) => {
	const srv = await serve(t, {
		plugins: [{ name: "continuation" }, { path: PROBE }],
		rules: CONTINUATION_RULES,
	});
	const sse = await sseSubscribe(srv);
	t.after(() => sse.close());
	const s = await createSession(srv);
	await promptAsync(srv, s.id, "plan and finish");
	await sse.until(() => turnEnds(sse, s.id).length >= 2, { timeout: 20000, label: "the wake's turn ended" });
	const reply = await prompt(srv, s.id, "todoread");
	assert.equal(textOf(reply.parts), "Todos: []");
	await sse.until(() => turnEnds(sse, s.id).length >= 3, { label: "the todoread turn ended" });
	assert.deepEqual(
		turnEnds(sse, s.id).map((e) => e.source),
		["http", "plugin:continuation", "http"],
	);
	const msgs = await getMessages(srv, s.id);
	const writes = toolParts(msgs, "todowrite");
	assert.equal(writes.length, 2);
	assert.equal(writes[1].state.status, "completed");
	assert.equal(writes[1].state.title, "0 todos");
	assertOneReplyEach(msgs);
});

// ---------------------------------------------------------------------------
// guard

test("guard: a tool call on a protected path fails with a reason naming the pattern", T, async (t) => {
	const srv = await serve(t, {
		plugins: [{ name: "guard", options: { shell_tools: ["probe_bash"] } }, { path: PROBE }],
		rules: [
			{ regex: "^read (.+)$", steps: [{ text: "Reading.", tools: [{ name: "probe_read", input: { filePath: "{{1}}" } }] }, { text: "Read: {{tool_output}}" }] },
			{ regex: "^run (.+)$", steps: [{ text: "Running.", tools: [{ name: "probe_bash", input: { command: "{{1}}" } }] }, { text: "Ran: {{tool_output}}" }] },
		],
	});
	const s = await createSession(srv);
	const cases = [
		["read config/.env", "error", 'refused: filePath "config/.env" matches the protected pattern ".env"'],
		["read src/main.c", "completed", "read src/main.c"],
		["run cat certs/server.pem | head", "error", 'refused: command word "certs/server.pem" matches the protected pattern "*.pem"'],
		["run ls -la", "completed", "ran ls -la"],
	];
	for (const [text, status, says] of cases) {
		await prompt(srv, s.id, text);
		const part = toolParts(await getMessages(srv, s.id), text.startsWith("read") ? "probe_read" : "probe_bash").at(-1);
		assert.equal(part.state.status, status, text);
		if (status === "completed") assert.equal(part.state.output, says, text);
		// the model reads the reason, with the host's note of who refused
		else assert.ok(part.state.error.startsWith(says) && part.state.error.includes("guard"), part.state.error);
	}
	assertOneReplyEach(await getMessages(srv, s.id));
});

// ---------------------------------------------------------------------------
// audit-log

/** The audit files oldest first: [{name, text, lines}]. */
function auditFiles(file) {
	const dir = path.dirname(file);
	const base = path.basename(file);
	const rotated = fs
		.readdirSync(dir)
		.filter((f) => f.startsWith(base + "."))
		.map((f) => Number(f.slice(base.length + 1)))
		.sort((a, b) => b - a)
		.map((n) => `${base}.${n}`);
	return [...rotated, base].map((name) => {
		const text = fs.readFileSync(path.join(dir, name), "utf8");
		return { name, text, lines: text.split("\n").slice(0, -1) };
	});
}

test("audit-log: every event as a line, in seq order, rotated before a file passes max_bytes", T, async (t) => {
	const dir = await tmp(t);
	const file = path.join(dir, "audit.ndjson");
	const MAX = 4096;
	const srv = await serve(t, { plugins: [{ name: "audit-log", options: { file, max_bytes: MAX, keep: 50 } }] });
	const sse = await sseSubscribe(srv);
	for (const text of ["hello", "echo one", "echo two"]) {
		const s = await createSession(srv);
		await prompt(srv, s.id, text);
	}
	await srv.stop({ keepDir: true }); // the observer delivers what is queued before unloading
	await sse.close();

	const files = auditFiles(file);
	assert.ok(files.length >= 3, `rotated: ${files.map((f) => f.name).join(", ")}`);
	for (let i = 0; i < files.length - 1; i++) {
		const size = Buffer.byteLength(files[i].text);
		const next = Buffer.byteLength(files[i + 1].lines[0]) + 1;
		assert.ok(size <= MAX, `${files[i].name} has ${size} bytes`);
		assert.ok(size + next > MAX, `${files[i].name} (${size} bytes) was rotated before it had to be`);
	}
	const lines = files.flatMap((f) => f.lines);
	const events = lines.map((l) => JSON.parse(l));
	assert.ok(!events.some((e) => e.type === "audit.gap"), "no events were dropped");
	const seqs = events.map((e) => e.seq);
	assert.equal(firstNonIncreasing(seqs), -1, "in seq order");
	assert.equal(firstGap(seqs), -1, "no seq missing");
	const bySeq = new Map(events.map((e, i) => [e.seq, lines[i]]));
	const seen = sse.events.filter((f) => f.seq <= seqs.at(-1));
	assert.ok(seen.length > 30);
	for (const f of seen) assert.equal(bySeq.get(f.seq), f.data, `seq ${f.seq} is written as clients got it`);
});

// ---------------------------------------------------------------------------
// webhook

/** An HTTP receiver on 127.0.0.1:port recording each POST. */
function receiver(port) {
	const got = [];
	const server = http.createServer((req, res) => {
		let body = "";
		req.on("data", (d) => (body += d));
		req.on("end", () => {
			got.push({ method: req.method, url: req.url, headers: req.headers, body, json: JSON.parse(body) });
			res.writeHead(200).end();
		});
	});
	return new Promise((resolve) =>
		server.listen(port, "127.0.0.1", () =>
			resolve({ got, close: () => new Promise((r) => server.close(r)) }),
		),
	);
}

test("webhook: session.idle and session.error reach a local receiver as JSON", T, async (t) => {
	const port = await freePort();
	const rx = await receiver(port);
	t.after(() => rx.close());
	const srv = await serve(t, {
		plugins: [{ name: "webhook", options: { url: `http://127.0.0.1:${port}/hook`, headers: { "X-Token": "t0k" } } }],
		rules: [{ regex: "^fail", steps: [{ text: "About to fail.", error: { status: 400, message: "scripted failure" } }] }],
	});
	const s = await createSession(srv);
	await prompt(srv, s.id, "hello");
	const idle = await pollUntil(() => rx.got.find((r) => r.json.type === "session.idle" && r.json.sessionID === s.id), {
		label: "session.idle delivered",
	});
	assert.equal(idle.method, "POST");
	assert.equal(idle.url, "/hook");
	assert.equal(idle.headers["content-type"], "application/json");
	assert.equal(idle.headers["x-agentgate-event"], "session.idle");
	assert.equal(idle.headers["x-agentgate-seq"], String(idle.json.seq));
	assert.equal(idle.headers["x-token"], "t0k");
	await api(srv, "POST", `/session/${s.id}/message`, { parts: [{ type: "text", text: "fail" }] });
	await pollUntil(() => rx.got.find((r) => r.json.type === "session.error" && r.json.sessionID === s.id), {
		label: "session.error delivered",
	});
	assert.ok(!rx.got.some((r) => r.json.type.startsWith("message.")), "only the chosen events are posted");
});

test("webhook: with the receiver down the event is retried, and delivered once it is up", T, async (t) => {
	const port = await freePort(); // nothing listens there yet
	const srv = await serve(t, {
		plugins: [
			{
				name: "webhook",
				options: { url: `http://127.0.0.1:${port}/`, retry_ms: 50, retry_max_ms: 200, max_retries: 100 },
			},
		],
	});
	const s = await createSession(srv);
	await prompt(srv, s.id, "hello");
	await pollUntil(() => /plugin webhook: POST session\.idle .*\(attempt 2 of 101\); retrying/.test(srv.output()), {
		label: "a second attempt failed and is retried",
	});
	const rx = await receiver(port);
	t.after(() => rx.close());
	const idle = await pollUntil(() => rx.got.find((r) => r.json.type === "session.idle" && r.json.sessionID === s.id), {
		label: "session.idle delivered after the receiver came up",
	});
	assert.equal(idle.headers["x-agentgate-event"], "session.idle");
	assert.equal(rx.got.filter((r) => r.json.seq === idle.json.seq).length, 1, "delivered once");
});

// ---------------------------------------------------------------------------
// the SDK, installed, and the template built against it out of tree

/** Loads the template at so, and checks its hook fires and its tool answers. */
async function checkTemplate(t, so) {
	const srv = await serve(t, {
		args: ["--plugin", so],
		env: { AGENTGATE_LOG: "info" },
		rules: [{ regex: "^turns$", steps: [{ text: "Asking.", tools: [{ name: "template_turns", input: {} }] }, { text: "{{tool_output}}" }] }],
	});
	const listed = (await apiOk(srv, "GET", "/plugin")).find((p) => p.id === "template");
	assert.ok(listed, "GET /plugin lists the template");
	assert.deepEqual(listed.tools, ["template_turns"]);
	const s = await createSession(srv);
	await prompt(srv, s.id, "hello");
	await pollUntil(
		() => new RegExp(`plugin template: turn turn_\\S+ of session ${s.id} ended: completed \\(source http\\)`).test(srv.output()),
		{ label: "the template's turn_end hook logged the turn" },
	);
	const reply = await prompt(srv, s.id, "turns");
	assert.equal(textOf(reply.parts), "template: 1 turns ended since the plugin loaded");
	await srv.stop();
}

test("sdk: the template builds out of tree against the installed SDK (CMake and pkg-config) and loads", T, async (t) => {
	const prefix = await tmp(t);
	runCmd("cmake", ["--install", BUILD, "--prefix", prefix]);
	assert.ok(findFile(prefix, "plugin.h").endsWith("include/agentgate/plugin.h"));
	for (const name of ["continuation.so", "audit-log.so", "guard.so", "webhook.so"])
		assert.match(findFile(prefix, name) || "", /\/agentgate\/plugins\//, `${name} installed`);

	// CMake: find_package through CMAKE_PREFIX_PATH
	const tb = path.join(prefix, "template-build");
	runCmd("cmake", ["-S", path.join(REPO, "sdk/template"), "-B", tb, `-DCMAKE_PREFIX_PATH=${prefix}`]);
	runCmd("cmake", ["--build", tb]);
	const viaCmake = path.join(tb, "template.so");
	assert.ok(fs.existsSync(viaCmake));

	// pkg-config: the .pc of the installed prefix, wherever that is
	const env = { ...process.env, PKG_CONFIG_PATH: path.dirname(findFile(prefix, "agentgate-plugin.pc")) };
	const cflags = runCmd("pkg-config", ["--cflags", "agentgate-plugin"], { env }).trim();
	assert.ok(cflags.includes(prefix) || cflags.includes("pkgconfig/.."), cflags);
	const viaPc = path.join(prefix, "template-pc.so");
	runCmd("sh", ["-c", `cc -shared -fPIC -fvisibility=hidden ${cflags} "$1" -o "$2"`, "sh", path.join(REPO, "sdk/template/template.c"), viaPc]);

	await checkTemplate(t, viaCmake);
	await checkTemplate(t, viaPc);
});
