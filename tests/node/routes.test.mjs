// The rest of what SDK front ends call, through the official SDK (v1 and v2):
// GET /session/{id}/todo (the continuation plugin's todos, todo.updated), GET /command and
// POST /session/{id}/command (templates expanded as OpenCode does), GET /path, POST /log,
// GET /global/event (GlobalEvent {directory, payload}).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { createOpencodeClient as createV1 } from "@opencode-ai/sdk";
import { createOpencodeClient as createV2 } from "@opencode-ai/sdk/v2";
import { startServer, api, BIN, REPO, withTimeout } from "./lib.mjs";

const T = { timeout: 90_000 };
const CONTINUATION = path.resolve(process.env.AGENTGATE_PLUGIN_DIR || path.join(path.dirname(BIN), "plugins"), "continuation.so");

const todo = (content, status, priority, id) => ({ content, status, priority, id });
const TODOS = [todo("write the parser", "completed", "high", "1"), todo("write the tests", "in_progress", "medium", "2"), todo("ship it", "pending", "low", "3")];

const CONFIG = {
	retry: { base_ms: 10 },
	providers: {
		scripted: {
			pace_ms: 2,
			models: { fast: { name: "Fast" } },
			rules: [
				{ regex: "^plan$", steps: [{ text: "Planning.", tools: [{ name: "todowrite", input: { todos: TODOS } }] }, { text: "Planned." }] },
				{ match: "", steps: [{ text: "You said: {{prompt}}" }] },
			],
		},
	},
	agent: { reviewer: { mode: "subagent", description: "reviews" } },
	command: {
		greet: { template: "Say hello to $1 and $2", description: "greets two people", model: "scripted/fast" },
		all: { template: "Echo: $ARGUMENTS" },
		bare: { template: "Just this" },
		review: { template: "Review $1", agent: "reviewer" },
		forked: { template: "Off you go", subtask: true },
		solo: { template: "Alone", agent: "build", subtask: true },
		look: { template: "Read @README.md and @docs, ask @reviewer, not @nobody or a@b.c. $ARGUMENTS" },
	},
	plugins: { load: [{ path: CONTINUATION, options: { max_wakes: 0 } }] },
};

/** The same calls in v1 ({path, body}) and v2 (flat) style. */
const STYLES = {
	v1: (url, opts = {}) => {
		const c = createV1({ baseUrl: url, ...opts });
		return {
			create: (body = {}) => c.session.create({ body }),
			prompt: (id, text) => c.session.prompt({ path: { id }, body: { parts: [{ type: "text", text }] } }),
			messages: (id) => c.session.messages({ path: { id } }),
			todo: (id) => c.session.todo({ path: { id } }),
			commands: () => c.command.list(),
			command: (id, command, args) => c.session.command({ path: { id }, body: { command, arguments: args } }),
			path: () => c.path.get(),
			log: (body) => c.app.log({ body }),
			events: (signal) => c.event.subscribe({ signal, sseMaxRetryAttempts: 1 }),
			global: (signal) => c.global.event({ signal, sseMaxRetryAttempts: 1 }),
		};
	},
	v2: (url, opts = {}) => {
		const c = createV2({ baseUrl: url, ...opts });
		return {
			create: (body = {}) => c.session.create(body),
			prompt: (sessionID, text) => c.session.prompt({ sessionID, parts: [{ type: "text", text }] }),
			messages: (sessionID) => c.session.messages({ sessionID }),
			todo: (sessionID) => c.session.todo({ sessionID }),
			commands: () => c.command.list(),
			command: (sessionID, command, args) => c.session.command({ sessionID, command, arguments: args }),
			path: () => c.path.get(),
			log: (body) => c.app.log(body),
			events: (signal) => c.event.subscribe(undefined, { signal, sseMaxRetryAttempts: 1 }),
			global: (signal) => c.global.event(undefined, { signal, sseMaxRetryAttempts: 1 }),
		};
	},
};

function ok(r, label, status = 200) {
	assert.equal(r.error, undefined, `${label}: SDK error ${JSON.stringify(r.error)}`);
	assert.equal(r.response?.status, status, `${label}: HTTP status`);
	return r.data;
}

function failed(r, status, label) {
	assert.equal(r.response?.status, status, `${label}: HTTP status (${JSON.stringify(r.error)})`);
	return r.error?.data?.message ?? r.error?.message ?? JSON.stringify(r.error);
}

/** Reads an SDK event stream in the background; until(pred) waits (bounded) for an item. */
function collect(result, t) {
	const seen = [];
	const waiters = new Set();
	(async () => {
		try {
			for await (const e of result.stream) {
				seen.push(e);
				for (const w of waiters) w();
			}
		} catch {}
	})();
	return {
		seen,
		until: (pred, label, ms = 20000) =>
			withTimeout(
				new Promise((resolve) => {
					const check = () => {
						const hit = seen.find(pred);
						if (hit) {
							waiters.delete(check);
							resolve(hit);
						}
					};
					waiters.add(check);
					check();
				}),
				ms,
				`${label}; saw ${seen.map((e) => e.type ?? e.payload?.type).join(",").slice(-400)}`,
			),
	};
}

const textOf = (parts) => parts.filter((p) => p.type === "text").map((p) => p.text).join("");

for (const style of ["v1", "v2"]) {
	test(`SDK ${style}: session.todo is [] until the continuation plugin's todowrite sets it, announced as todo.updated`, T, async (t) => {
		assert.ok(fs.existsSync(CONTINUATION), `${CONTINUATION} is built`);
		const srv = await startServer({ config: CONFIG });
		t.after(() => srv.stop());
		const c = STYLES[style](srv.url);
		const ac = new AbortController();
		t.after(() => ac.abort());
		const events = collect(await c.events(ac.signal), t);
		const s = ok(await c.create({}), "session.create");
		assert.deepEqual(ok(await c.todo(s.id), "session.todo"), [], "no list yet");
		ok(await c.prompt(s.id, "plan"), "session.prompt");
		const ev = await events.until((e) => e.type === "todo.updated" && e.properties.sessionID === s.id, "todo.updated");
		assert.deepEqual(ev.properties.todos, TODOS, "the event carries the whole list");
		assert.deepEqual(ok(await c.todo(s.id), "session.todo"), TODOS, "completed items included");
		const other = ok(await c.create({}), "session.create");
		assert.deepEqual(ok(await c.todo(other.id), "session.todo"), [], "another session's list is its own");
		failed(await c.todo("ses_nosuchsession0000000000000"), 404, "unknown session");
	});

	test(`SDK ${style}: command.list and session.command expand templates as OpenCode does`, T, async (t) => {
		const srv = await startServer({ config: CONFIG });
		t.after(() => srv.stop());
		const c = STYLES[style](srv.url);
		const list = ok(await c.commands(), "command.list");
		assert.deepEqual(list.map((x) => x.name), ["greet", "all", "bare", "review", "forked", "solo", "look"]);
		const greet = list[0];
		assert.equal(greet.template, "Say hello to $1 and $2");
		assert.equal(greet.description, "greets two people");
		assert.equal(greet.model, "scripted/fast");
		assert.deepEqual(greet.hints, ["$1", "$2"], "v2: the placeholders");
		assert.equal(list[4].subtask, true);

		const ac = new AbortController();
		t.after(() => ac.abort());
		const events = collect(await c.events(ac.signal), t);
		const s = ok(await c.create({}), "session.create");
		// quoted words are one argument; the highest placeholder takes the rest
		const r = ok(await c.command(s.id, "greet", `Ann "Bob Smith" and 'friends'`), "session.command");
		assert.equal(r.info.role, "assistant");
		assert.equal(textOf(r.parts), "You said: Say hello to Ann and Bob Smith and friends");
		assert.equal(r.info.modelID, "fast", "the command's model");
		const ran = await events.until((e) => e.type === "command.executed" && e.properties.sessionID === s.id, "command.executed");
		assert.equal(ran.properties.name, "greet");
		assert.equal(ran.properties.arguments, `Ann "Bob Smith" and 'friends'`);
		assert.equal(ran.properties.messageID, r.info.parentID, "names the user message the command became");

		assert.equal(textOf(ok(await c.command(s.id, "all", "a  b"), "all").parts), "You said: Echo: a  b", "$ARGUMENTS as given");
		assert.equal(textOf(ok(await c.command(s.id, "bare", "more words"), "bare").parts), "You said: Just this\n\nmore words", "no placeholder: appended");
		const msgs = ok(await c.messages(s.id), "session.messages");
		const users = msgs.filter((m) => m.info.role === "user").map((m) => textOf(m.parts));
		assert.deepEqual(users, ["Say hello to Ann and Bob Smith and friends", "Echo: a  b", "Just this\n\nmore words"]);

		assert.match(failed(await c.command(s.id, "nope", ""), 404, "unknown command"), /Command not found: "nope"\. Available commands: greet, all, bare, review, forked, solo, look/);
		// @references: a file or folder of the session's directory, else an agent
		// (what the arguments bring in never names a path outside the directory)
		const look = ok(await c.command(s.id, "look", "@../etc/passwd @/etc/passwd"), "look");
		const asked = ok(await c.messages(s.id), "session.messages").find((m) => m.info.id === look.info.parentID);
		const shape = asked.parts.map((p) => (p.type === "file" ? `file:${p.filename}:${p.mime}` : p.type === "agent" ? `agent:${p.name}` : p.type));
		assert.deepEqual(shape.filter((x) => x !== "text"), ["file:README.md:text/plain", "file:docs:application/x-directory", "agent:reviewer"]);
		assert.equal(textOf(asked.parts.slice(0, 1)), "Read @README.md and @docs, ask @reviewer, not @nobody or a@b.c. @../etc/passwd @/etc/passwd");

		// a subtask needs a subagent
		const count = ok(await c.messages(s.id), "session.messages").length;
		assert.match(failed(await c.command(s.id, "forked", ""), 400, "subtask command without an agent"), /"forked" runs as a subtask .*give the command an "agent"/);
		assert.match(failed(await c.command(s.id, "solo", ""), 400, "subtask command with a primary agent"), /"solo" runs as a subtask .*agent "build" is a primary agent/);
		assert.equal(ok(await c.messages(s.id), "session.messages").length, count, "a refused command leaves nothing behind");

		// a subagent's command runs as OpenCode runs it: one subtask part, in a child session
		ok(await c.command(s.id, "review", "the patch"), "subtask command");
		const after = ok(await c.messages(s.id), "session.messages");
		const user = after.filter((m) => m.info.role === "user").at(-1);
		const sub = user.parts.find((p) => p.type === "subtask");
		assert.deepEqual([sub.agent, sub.prompt, sub.description], ["reviewer", "Review the patch", "review"]);
		const task = after.flatMap((m) => m.parts).find((p) => p.type === "tool" && p.tool === "task");
		assert.equal(task.state.status, "completed", `the task ran: ${task.state.error}`);
		const kids = (await api(srv, "GET", `/session/${s.id}/children`)).json;
		assert.equal(kids.length, 1);
		const kid = ok(await c.messages(kids[0].id), "child messages");
		assert.equal(textOf(kid[0].parts), "Review the patch");
		assert.equal(textOf(kid.at(-1).parts), "You said: Review the patch");
	});

	test(`SDK ${style}: path.get and app.log`, T, async (t) => {
		const srv = await startServer({ config: CONFIG });
		t.after(() => srv.stop());
		const c = STYLES[style](srv.url);
		const p = ok(await c.path(), "path.get");
		for (const k of ["state", "config", "worktree", "directory"]) assert.equal(typeof p[k], "string", `path.${k}`);
		assert.equal(p.state, fs.realpathSync(srv.dir), "state: the data directory");
		assert.equal(p.config, fs.realpathSync(srv.root), "config: the config file's directory");
		assert.equal(p.directory, fs.realpathSync(REPO), "directory: the workspace (the server's working directory)");
		assert.equal(p.worktree, p.directory);
		if (style === "v2") {
			assert.equal(typeof p.home, "string");
			const there = ok(await STYLES.v2(srv.url, { directory: "/tmp" }).path(), "path.get ?directory=");
			assert.equal(there.directory, "/tmp", "the directory the v2 client works in");
		}
		assert.equal(ok(await c.log({ service: "sdk-test", level: "warn", message: `from ${style}\nsecond line`, extra: { n: 1 } }), "app.log"), true);
		const line = srv.output().split("\n").find((l) => l.includes(`client sdk-test: from ${style}`));
		assert.ok(line, `the log line: ${srv.output().slice(-500)}`);
		assert.match(line, /from v[12] second line \{"n":1\}/, "one line, extra appended");
		const bad = await api(srv, "POST", "/log", { service: "x", level: "loud", message: "m" });
		assert.equal(bad.status, 400);
		assert.match(bad.json.message, /"level" must be debug, info, warn or error/);
		const missing = await api(srv, "POST", "/log", { level: "info" });
		assert.equal(missing.status, 400);
		assert.match(missing.json.message, /service/);
	});

	test(`SDK ${style}: global.event streams GlobalEvent {directory, payload}`, T, async (t) => {
		const srv = await startServer({ config: CONFIG });
		t.after(() => srv.stop());
		const c = STYLES[style](srv.url);
		const ac = new AbortController();
		t.after(() => ac.abort());
		const g = collect(await c.global(ac.signal), t);
		await g.until((e) => e.payload?.type === "server.connected", "server.connected");
		const s = ok(await c.create({ directory: "/tmp" }), "session.create");
		const created = await g.until((e) => e.payload?.type === "session.created" && e.payload.properties.sessionID === s.id, "session.created");
		assert.equal(created.directory, "/tmp", "the session's directory");
		assert.equal(created.payload.properties.info.id, s.id);
		ok(await c.prompt(s.id, "hello"), "session.prompt");
		const idle = await g.until((e) => e.payload?.type === "session.idle" && e.payload.properties.sessionID === s.id, "session.idle");
		assert.equal(idle.directory, "/tmp");
		for (const e of g.seen) assert.ok(e.payload && typeof e.payload.type === "string", `every item is {directory?, payload}: ${JSON.stringify(e).slice(0, 200)}`);
	});
}

test("a session's todo list outlives a restart and goes with the session", T, async (t) => {
	const srv = await startServer({ config: CONFIG });
	const c = STYLES.v2(srv.url);
	const s = ok(await c.create({}), "session.create");
	ok(await c.prompt(s.id, "plan"), "session.prompt");
	assert.deepEqual(ok(await c.todo(s.id), "session.todo"), TODOS);
	await srv.kill("SIGTERM");
	const again = await startServer({ config: CONFIG, dir: srv.dir });
	t.after(() => again.stop());
	const c2 = STYLES.v2(again.url);
	assert.deepEqual(ok(await c2.todo(s.id), "session.todo after a restart"), TODOS);
	assert.equal((await api(again, "DELETE", `/session/${s.id}`)).status, 200);
	assert.equal((await api(again, "GET", `/session/${s.id}/todo`)).status, 404);
});

// ---- the routes agentgate deliberately does not implement: 501, never a bare 404 ----

/** The 501 list as docs/API.md states it ("Not implemented"): [[method, template]]. */
function documented501() {
	const doc = fs.readFileSync(path.join(REPO, "docs/API.md"), "utf8");
	const section = doc.slice(doc.indexOf("## Not implemented"), doc.indexOf("\n## ", doc.indexOf("## Not implemented") + 5));
	return [...section.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`]*)`/g)].map((m) => [m[1], m[2]]);
}

/** The same list as the server's table (gateway/net/api_notimpl.c) holds it. */
function served501() {
	const src = fs.readFileSync(path.join(REPO, "gateway/net/api_notimpl.c"), "utf8");
	return [...src.matchAll(/\{\{"(GET|POST|PUT|PATCH|DELETE)", "([^"]+)"/g)].map((m) => [m[1], m[2]]);
}

const NOT_IMPLEMENTED = { status: 501 };

const calls501 = {
	v1: (c, sid) => [
		["POST /session/{sessionID}/share", () => c.session.share({ path: { id: sid } })],
		["DELETE /session/{sessionID}/share", () => c.session.unshare({ path: { id: sid } })],
		["POST /session/{sessionID}/shell", () => c.session.shell({ path: { id: sid }, body: { agent: "build", command: "ls" } })],
		["POST /session/{sessionID}/init", () => c.session.init({ path: { id: sid }, body: { messageID: "msg_x", providerID: "scripted", modelID: "demo" } })],
		["GET /file/content", () => c.file.read({ query: { path: "README.md" } })],
		["GET /find", () => c.find.text({ query: { pattern: "x" } })],
		["GET /pty", () => c.pty.list()],
		["POST /tui/show-toast", () => c.tui.showToast({ body: { message: "hi", variant: "info" } })],
		["PATCH /config", () => c.config.update({ body: { model: "scripted/demo" } })],
		["GET /file/status", () => c.file.status()],
		["POST /instance/dispose", () => c.instance.dispose()],
		["PUT /auth/{providerID}", () => c.auth.set({ path: { id: "openai" }, body: { type: "api", key: "k" } })],
	],
	v2: (c, sid) => [
		["POST /session/{sessionID}/share", () => c.session.share({ sessionID: sid })],
		["DELETE /session/{sessionID}/share", () => c.session.unshare({ sessionID: sid })],
		["POST /session/{sessionID}/shell", () => c.session.shell({ sessionID: sid, agent: "build", command: "ls" })],
		["GET /file/content", () => c.file.read({ path: "README.md" })],
		["GET /find", () => c.find.text({ pattern: "x" })],
		["GET /pty/shells", () => c.pty.shells()],
		["POST /tui/show-toast", () => c.tui.showToast({ message: "hi", variant: "info" })],
		["PATCH /config", () => c.config.update({ config: { model: "scripted/demo" } })],
		["PATCH /global/config", () => c.global.config.update({ config: {} })],
		["GET /question", () => c.question.list()],
		["GET /vcs/status", () => c.vcs.status()],
		["POST /sync/start", () => c.sync.start()],
		["GET /skill", () => c.app.skills()],
		["PUT /auth/{providerID}", () => c.auth.set({ providerID: "openai", auth: { type: "api", key: "k" } })],
	],
};

for (const style of ["v1", "v2"]) {
	test(`SDK ${style}: OpenCode's routes agentgate does not implement answer 501 naming the route`, T, async (t) => {
		const srv = await startServer({ config: CONFIG });
		t.after(() => srv.stop());
		const c = style === "v1" ? createV1({ baseUrl: srv.url }) : createV2({ baseUrl: srv.url });
		const sid = ok(await STYLES[style](srv.url).create({}), "session.create").id;
		for (const [route, call] of calls501[style](c, sid)) {
			const r = await call();
			assert.equal(r.response?.status, NOT_IMPLEMENTED.status, `${route}: ${JSON.stringify(r.error)}`);
			assert.equal(r.error?.name, "NotImplemented", route);
			assert.ok(r.error?.message?.startsWith(`${route} is not implemented by agentgate: `), `${route}: ${r.error?.message}`);
		}
	});
}

test("every route of the documented 501 list answers 501, and the list is the server's", T, async (t) => {
	const documented = documented501();
	const served = served501();
	assert.ok(documented.length >= 60, `the docs list them (${documented.length})`);
	assert.deepEqual(documented.map((r) => r.join(" ")).sort(), served.map((r) => r.join(" ")).sort(), "docs/API.md and the server's table agree");
	const srv = await startServer({ config: CONFIG });
	t.after(() => srv.stop());
	for (const [method, template] of documented) {
		const p = template.replace(/\{[^}]+\}/g, "x1");
		const r = await api(srv, method, p, method === "GET" || method === "DELETE" ? undefined : {});
		assert.equal(r.status, 501, `${method} ${p}: ${r.text.slice(0, 200)}`);
		assert.equal(r.json?.name, "NotImplemented");
		assert.match(r.json.message, new RegExp(`^${method} ${template.replace(/[{}]/g, "\\$&")} is not implemented by agentgate: .+\\(docs/API\\.md, "Not implemented"\\)$`));
		assert.equal(r.json.data?.message, r.json.message);
	}
	// another method on such a path: 405 naming what it takes; an unknown path stays 404
	const other = await api(srv, "PUT", "/session/x1/share", {});
	assert.equal(other.status, 405);
	assert.match(other.json.message, /allowed: POST,DELETE/);
	assert.equal((await api(srv, "POST", "/no/such/route", {})).status, 404);
	// implemented routes beside them are untouched
	assert.equal((await api(srv, "GET", "/config")).status, 200);
	assert.equal((await api(srv, "GET", "/mcp")).status, 200);
});
