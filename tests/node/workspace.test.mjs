// The workspace plugin (build/plugins/workspace.so) in a real gateway: a scripted model
// calls read, write, edit, list, glob, grep and bash on a temporary tree, and each call
// is checked from outside — the tool parts of the session's messages, the files on disk,
// the processes in /proc. Paths out of the session's directory are refused; bash's
// timeout, output cap and environment hold; an abort leaves no process of the command
// behind; a subagent works in its parent's directory; a conversation that reads, edits
// and runs a file works through `agentgate run --format json` and the server; and write,
// edit and bash ask the permission system first.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
	BIN,
	DEFAULT_CONFIG,
	startServer,
	sseSubscribe,
	createSession,
	promptAsync,
	getMessages,
	apiOk,
	pollUntil,
	runBin,
} from "./lib.mjs";

const T = { timeout: 120_000 };
const BUILD = process.env.AGENTGATE_BUILD_DIR || path.dirname(BIN);
const WORKSPACE = path.join(process.env.AGENTGATE_PLUGIN_DIR || path.join(BUILD, "plugins"), "workspace.so");
// write, edit and bash ask by default: these tests allow them by rule, except those about
// the asks themselves.
const ALLOW = { edit: "allow", bash: "allow" };

/** A rule: the prompt `ws:KEY` makes the model call tool with input, then report. */
const call = (key, tool, input) => ({
	regex: `^ws:${key}$`,
	steps: [{ text: `Calling ${tool}.`, tools: [{ name: tool, input }] }, { text: `${tool} said: {{tool_output}}` }],
});

function config(rules, extra = {}) {
	const catchAll = { match: "", steps: [{ text: "You said: {{prompt}}" }] };
	return {
		...DEFAULT_CONFIG,
		providers: { scripted: { pace_ms: 1, rules: [...rules, catchAll] } },
		plugins: [{ path: WORKSPACE, required: true }],
		permission: ALLOW,
		...extra,
	};
}

async function serve(t, rules, { env = {}, extra = {} } = {}) {
	const srv = await startServer({ config: config(rules, extra), env });
	t.after(() => srv.stop());
	return srv;
}

/** A temporary tree (real path), removed after the test. */
async function tree(t, files) {
	const dir = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-ws-")));
	t.after(() => fsp.rm(dir, { recursive: true, force: true }));
	for (const [rel, text] of Object.entries(files)) {
		await fsp.mkdir(path.join(dir, path.dirname(rel)), { recursive: true });
		await fsp.writeFile(path.join(dir, rel), text);
	}
	return dir;
}

/** POST /session/{id}/message: waits for the turn; returns the reply. */
const prompt = (srv, id, text) => apiOk(srv, "POST", `/session/${id}/message`, { parts: [{ type: "text", text }] });

const toolParts = (msgs) => msgs.flatMap((m) => m.parts).filter((p) => p.type === "tool");

/** Runs `ws:KEY` in session id; returns the (one) tool part it made. */
async function run(srv, id, key) {
	const before = toolParts(await getMessages(srv, id)).length;
	await prompt(srv, id, `ws:${key}`);
	const parts = toolParts(await getMessages(srv, id));
	assert.equal(parts.length, before + 1, `ws:${key} made one tool call`);
	return parts.at(-1);
}

const completed = (p) => {
	assert.equal(p.state.status, "completed", `${p.tool} failed: ${p.state.error}`);
	return p.state;
};
const failed = (p) => {
	assert.equal(p.state.status, "error", `${p.tool} did not fail: ${p.state.output}`);
	return p.state.error;
};

const FILES = {
	"src/app.js": "function hello() {\n  return 'hi';\n}\n",
	"docs/notes.md": "# notes\n",
	".git/config": "[core] hello\n",
	"node_modules/dep/index.js": "function hello() {}\n",
};

test("every tool on a temporary tree", T, async (t) => {
	const dir = await tree(t, FILES);
	const srv = await serve(t, [
		call("read", "read", { filePath: "src/app.js" }),
		call("read-page", "read", { filePath: "src/app.js", offset: 2, limit: 1 }),
		call("write", "write", { filePath: "out/new.txt", content: "created\n" }),
		call("edit", "edit", { filePath: "src/app.js", oldString: "'hi'", newString: "'hello'" }),
		call("list", "list", {}),
		call("glob", "glob", { pattern: "**/*.md" }),
		call("grep", "grep", { pattern: "function hel+o", include: "*.js" }),
		call("bash", "bash", { command: "ls src && echo done", description: "List the sources" }),
	]);
	const s = await createSession(srv, { directory: dir });

	let st = completed(await run(srv, s.id, "read"));
	assert.match(st.output, /^ {5}1\tfunction hello\(\) \{\n {5}2\t {2}return 'hi';\n {5}3\t\}\n/);
	assert.match(st.output, /End of file: 3 lines/);
	assert.equal(st.title, "src/app.js");
	st = completed(await run(srv, s.id, "read-page"));
	assert.match(st.output, /^ {5}2\t {2}return 'hi';\n/);
	assert.match(st.output, /Use offset=3 to read on/);

	st = completed(await run(srv, s.id, "write"));
	assert.equal(fs.readFileSync(path.join(dir, "out/new.txt"), "utf8"), "created\n");
	assert.match(st.metadata.diff, /\+created/);

	st = completed(await run(srv, s.id, "edit"));
	assert.equal(fs.readFileSync(path.join(dir, "src/app.js"), "utf8"), "function hello() {\n  return 'hello';\n}\n");
	assert.match(st.metadata.diff, /^--- a\/src\/app\.js\n\+\+\+ b\/src\/app\.js\n@@ -1,3 \+1,3 @@\n/);
	assert.match(st.metadata.diff, /\n- {2}return 'hi';\n\+ {2}return 'hello';\n/);

	st = completed(await run(srv, s.id, "list"));
	assert.match(st.output, /\n {2}docs\/\n {4}notes\.md\n/);
	assert.match(st.output, /\n {2}src\/\n {4}app\.js\n/);
	assert.doesNotMatch(st.output, /\.git|node_modules/);

	st = completed(await run(srv, s.id, "glob"));
	assert.equal(st.output.trim(), "docs/notes.md");

	st = completed(await run(srv, s.id, "grep"));
	assert.match(st.output, /^Found 1 match\nsrc\/app\.js:1: function hello\(\) \{\n$/);

	st = completed(await run(srv, s.id, "bash"));
	assert.equal(st.output, "app.js\ndone\n");
	assert.equal(st.title, "List the sources");
	assert.equal(st.metadata.exit, 0);
});

test("in a git repository list, glob and grep skip what .gitignore ignores, unless the option is off", T, async (t) => {
	const dir = await tree(t, {
		".gitignore": "*.log\ngen/\n",
		"src/app.js": "const hello = 1;\n",
		"src/debug.log": "hello from the log\n",
		"gen/bundle.js": "const hello = 2;\n",
	});
	execFileSync("git", ["init", "-q"], { cwd: dir });
	const rules = [
		call("list", "list", {}),
		call("glob", "glob", { pattern: "**/*" }),
		call("grep", "grep", { pattern: "hello" }),
	];
	const srv = await serve(t, rules);
	const s = await createSession(srv, { directory: dir });
	let st = completed(await run(srv, s.id, "grep"));
	assert.match(st.output, /^Found 1 match\nsrc\/app\.js:1: const hello = 1;\n$/);
	st = completed(await run(srv, s.id, "glob"));
	assert.deepEqual(st.output.trim().split("\n").sort(), [".gitignore", "src/app.js"]);
	st = completed(await run(srv, s.id, "list"));
	assert.doesNotMatch(st.output, /gen\/|debug\.log/);
	assert.match(st.output, /app\.js/);

	const off = await serve(t, rules, {
		extra: { plugins: [{ path: WORKSPACE, required: true, options: { gitignore: false } }] },
	});
	const s2 = await createSession(off, { directory: dir });
	st = completed(await run(off, s2.id, "grep"));
	assert.match(st.output, /^Found 3 matches\n/);
	assert.match(st.output, /gen\/bundle\.js:1/);
	assert.match(st.output, /src\/debug\.log:1/);
});

test("paths and symbolic links out of the session's directory are refused, naming the path", T, async (t) => {
	const outside = await tree(t, { "secret.txt": "top secret\n" });
	const dir = await tree(t, { "in.txt": "inside\n" });
	fs.symlinkSync(outside, path.join(dir, "link"));
	const srv = await serve(t, [
		call("dotdot", "read", { filePath: "../" + path.basename(outside) + "/secret.txt" }),
		call("absolute", "read", { filePath: path.join(outside, "secret.txt") }),
		call("link-read", "read", { filePath: "link/secret.txt" }),
		call("link-write", "write", { filePath: "link/planted.txt", content: "x" }),
		call("link-edit", "edit", { filePath: "link/secret.txt", oldString: "top", newString: "no" }),
		call("dotdot-write", "write", { filePath: "../planted.txt", content: "x" }),
		call("bash-workdir", "bash", { command: "cat secret.txt", workdir: "link" }),
		call("list-up", "list", { path: ".." }),
		call("grep-link", "grep", { pattern: "secret", path: "link" }),
		call("glob-abs", "glob", { pattern: path.join(outside, "*") }),
	]);
	const s = await createSession(srv, { directory: dir });
	const expect = {
		dotdot: /path "\.\.\/.*secret\.txt" is outside the session's directory/,
		absolute: /is outside the session's directory/,
		"link-read": /path "link\/secret\.txt" leads outside the session's directory through a symbolic link/,
		"link-write": /path "link\/planted\.txt" leads outside .* symbolic link/,
		"link-edit": /symbolic link/,
		"dotdot-write": /path "\.\.\/planted\.txt" is outside/,
		"bash-workdir": /path "link" leads outside .* symbolic link/,
		"list-up": /path "\.\." is outside/,
		"grep-link": /path "link" leads outside/,
		"glob-abs": /is outside the session's directory/,
	};
	for (const [key, re] of Object.entries(expect)) assert.match(failed(await run(srv, s.id, key)), re, key);
	assert.equal(fs.readFileSync(path.join(outside, "secret.txt"), "utf8"), "top secret\n");
	assert.ok(!fs.existsSync(path.join(outside, "planted.txt")));
	assert.ok(!fs.existsSync(path.join(path.dirname(dir), "planted.txt")));
});

test("edit refuses a missing or ambiguous string with a clear reason; replaceAll changes every one", T, async (t) => {
	const text = "x = 1;\ny = 2;\nx = 1;\n";
	const dir = await tree(t, { "a.txt": text });
	const srv = await serve(t, [
		call("ambiguous", "edit", { filePath: "a.txt", oldString: "x = 1;", newString: "x = 3;" }),
		call("missing", "edit", { filePath: "a.txt", oldString: "z = 9;", newString: "z = 0;" }),
		call("all", "edit", { filePath: "a.txt", oldString: "x = 1;", newString: "x = 3;", replaceAll: true }),
		call("nofile", "edit", { filePath: "none.txt", oldString: "a", newString: "b" }),
	]);
	const s = await createSession(srv, { directory: dir });
	assert.match(failed(await run(srv, s.id, "ambiguous")), /found 2 times \(first at line 1\).*replaceAll.*\(in a\.txt\)/s);
	assert.match(failed(await run(srv, s.id, "missing")), /oldString was not found in the file.*\(in a\.txt\)/s);
	assert.equal(fs.readFileSync(path.join(dir, "a.txt"), "utf8"), text, "a failed edit changes nothing");
	const st = completed(await run(srv, s.id, "all"));
	assert.equal(st.metadata.replacements, 2);
	assert.equal(fs.readFileSync(path.join(dir, "a.txt"), "utf8"), "x = 3;\ny = 2;\nx = 3;\n");
	assert.match(failed(await run(srv, s.id, "nofile")), /File not found: none\.txt/);
});

test("read refuses a binary file with a reason", T, async (t) => {
	const dir = await tree(t, {});
	fs.writeFileSync(path.join(dir, "blob"), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]));
	const srv = await serve(t, [call("bin", "read", { filePath: "blob" })]);
	const s = await createSession(srv, { directory: dir });
	assert.match(failed(await run(srv, s.id, "bin")), /Cannot read blob: it is a binary file \(it contains a NUL byte/);
});

test("bash: a timeout stops the command, long output is capped, the provider keys are not in its environment", T, async (t) => {
	const dir = await tree(t, {});
	const srv = await serve(
		t,
		[
			call("timeout", "bash", { command: "echo before; sleep 30; echo after", timeout: 500 }),
			call("flood", "bash", { command: "seq 1 100000" }),
			call("env", "bash", { command: "env" }),
		],
		{ env: { OPENAI_API_KEY: "sk-test-openai-key", ANTHROPIC_API_KEY: "sk-test-anthropic", WS_VISIBLE: "yes" } },
	);
	const s = await createSession(srv, { directory: dir });
	const t0 = Date.now();
	const err = failed(await run(srv, s.id, "timeout"));
	assert.ok(Date.now() - t0 < 15000, "the timeout ended the call");
	assert.match(err, /timed out after 500 ms.*Output so far:\nbefore\n/s);
	assert.doesNotMatch(err, /^after$/m);

	const st = completed(await run(srv, s.id, "flood"));
	assert.ok(st.output.length < 32 * 1024, `output kept: ${st.output.length} bytes`);
	assert.match(st.output, /^1\n2\n3\n/);
	assert.match(st.output, /99999\n100000\n$/);
	assert.match(st.output, /\[\d+ bytes of output cut: the first \d+ and the last \d+ of 588895 bytes are shown\]/);
	assert.equal(st.metadata.truncated, true);

	const env = completed(await run(srv, s.id, "env")).output;
	assert.match(env, /^WS_VISIBLE=yes$/m);
	assert.doesNotMatch(env, /OPENAI_API_KEY|ANTHROPIC_API_KEY|sk-test/);
});

/** The processes whose command line is exactly argv (not zombies): [{pid, pgid}]. */
function processes(argv) {
	const want = argv.join("\0") + "\0";
	const out = [];
	for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
		try {
			if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8") !== want) continue;
			const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
			const [state, , pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
			if (state !== "Z") out.push({ pid: Number(pid), pgid: Number(pgid) });
		} catch {} // gone meanwhile
	}
	return out;
}

/** Live processes (not zombies) of process group pgid. */
function groupMembers(pgid) {
	const out = [];
	for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
		try {
			const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
			const [state, , g] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
			if (Number(g) === pgid && state !== "Z") out.push(Number(pid));
		} catch {}
	}
	return out;
}

test("bash: aborting the session kills the command's whole process tree, and its output streamed while it ran", T, async (t) => {
	const dir = await tree(t, {});
	const secs = 5000 + Math.floor(Math.random() * 4000); // a command line no one else runs
	const a = `${secs}.1`,
		b = `${secs}.2`;
	let pgid = 0;
	t.after(() => {
		// only when the test failed: registered before the server's stop, which may hang on it
		for (const pid of pgid ? groupMembers(pgid) : [])
			try {
				process.kill(pid, "SIGKILL");
			} catch {}
	});
	const srv = await serve(t, [call("tree", "bash", { command: `echo started; sh -c 'sleep ${a} & sleep ${b}'` })]);
	const sse = await sseSubscribe(srv);
	t.after(() => sse.close());
	const s = await createSession(srv, { directory: dir });
	await promptAsync(srv, s.id, "ws:tree");
	const procs = await pollUntil(
		() => {
			const p = [...processes(["sleep", a]), ...processes(["sleep", b])];
			return p.length === 2 ? p : null;
		},
		{ timeout: 10000, label: "both sleeps running" },
	);
	pgid = procs[0].pgid;
	assert.equal(procs[1].pgid, pgid, "one process group");
	const running = await sse.waitFor(
		(e) =>
			e.type === "message.part.updated" &&
			e.properties.part.tool === "bash" &&
			e.properties.part.state.status === "running" &&
			/started/.test(e.properties.part.state.metadata?.output ?? ""),
		{ timeout: 10000, label: "the output so far, live" },
	);
	assert.equal(running.properties.part.sessionID, s.id);

	await apiOk(srv, "POST", `/session/${s.id}/abort`, {});
	await pollUntil(() => groupMembers(pgid).length === 0, { timeout: 10000, label: "no process of the group left" });
	assert.deepEqual([...processes(["sleep", a]), ...processes(["sleep", b])], []);
	await pollUntil(async () => !(await apiOk(srv, "GET", "/session/status"))[s.id], { label: "the session idle" });
	const part = toolParts(await getMessages(srv, s.id)).at(-1);
	assert.equal(part.state.status, "error");
});

test("a subagent's tools work in its parent's directory", T, async (t) => {
	const dir = await tree(t, FILES);
	const srv = await serve(t, [
		{
			regex: "^delegate$",
			steps: [
				{
					text: "Delegating.",
					tools: [{ name: "task", input: { description: "read it", prompt: "sub:read", subagent_type: "general" } }],
				},
				{ text: "The subagent reported: {{tool_output}}" },
			],
		},
		{
			regex: "^sub:read$",
			steps: [
				{ text: "Reading.", tools: [{ name: "read", input: { filePath: "src/app.js" } }] },
				{ text: "child read: {{tool_output}}" },
			],
		},
	]);
	const s = await createSession(srv, { directory: dir });
	const reply = await prompt(srv, s.id, "delegate");
	const text = reply.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
	assert.match(text, /The subagent reported: child read: {6}1\tfunction hello\(\) \{/);
	const [child] = await apiOk(srv, "GET", `/session/${s.id}/children`);
	assert.equal(child.directory, dir);
	const read = toolParts(await getMessages(srv, child.id)).find((p) => p.tool === "read");
	assert.equal(completed(read).title, "src/app.js");
});

// read a script, fix its typo, run it: the same rule through `agentgate run` and the server
const CONVERSATION = [
	{
		regex: "^fix and run hello\\.sh$",
		steps: [
			{ text: "Reading it.", tools: [{ name: "read", input: { filePath: "hello.sh" } }] },
			{ text: "Fixing the typo.", tools: [{ name: "edit", input: { filePath: "hello.sh", oldString: "wrold", newString: "world" } }] },
			{ text: "Running it.", tools: [{ name: "bash", input: { command: "sh hello.sh", description: "Run the script" } }] },
			{ text: "It printed: {{tool_output}}" },
		],
	},
];

test("a conversation that reads, edits and runs a file: agentgate run --format json has the tool events", T, async (t) => {
	const dir = await tree(t, { "hello.sh": "echo hello wrold\n" });
	const work = await tree(t, {});
	const cfg = path.join(work, "config.json");
	fs.writeFileSync(cfg, JSON.stringify({ ...config(CONVERSATION), plugins: [] })); // --plugin loads it
	const r = await runBin(
		["run", "--format", "json", "--data", path.join(work, "data"), "--config", cfg, "--plugin", WORKSPACE, "fix and run hello.sh"],
		{ cwd: dir, timeout: 30000 },
	);
	assert.equal(r.code, 0, r.stderr);
	const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
	const tools = lines.filter((l) => l.type === "tool_use").map((l) => l.part);
	assert.deepEqual(tools.map((p) => [p.tool, p.state.status]), [
		["read", "completed"],
		["edit", "completed"],
		["bash", "completed"],
	]);
	assert.match(tools[0].state.output, /1\techo hello wrold/);
	assert.match(tools[1].state.metadata.diff, /-echo hello wrold\n\+echo hello world/);
	assert.equal(tools[2].state.output, "hello world\n");
	const text = lines.filter((l) => l.type === "text").map((l) => l.part.text).join("");
	assert.match(text, /It printed: hello world/);
	assert.equal(fs.readFileSync(path.join(dir, "hello.sh"), "utf8"), "echo hello world\n");
});

test("agentgate run: edit and bash ask — refused without a terminal, naming --yes, and allowed with --yes", T, async (t) => {
	const dir = await tree(t, { "hello.sh": "echo hello wrold\n" });
	const work = await tree(t, {});
	const cfg = path.join(work, "config.json");
	const { permission, ...defaults } = { ...config(CONVERSATION), plugins: [] }; // the default rules
	fs.writeFileSync(cfg, JSON.stringify(defaults));
	const args = ["run", "--format", "json", "--config", cfg, "--plugin", WORKSPACE];
	const tools = (r) =>
		r.stdout
			.trim()
			.split("\n")
			.map((l) => JSON.parse(l))
			.filter((l) => l.type === "tool_use")
			.map((l) => l.part);
	const no = await runBin([...args, "--data", path.join(work, "d1"), "fix and run hello.sh"], { cwd: dir, timeout: 30000 });
	assert.equal(no.code, 0, no.stderr);
	const refused = tools(no);
	assert.deepEqual(refused.map((p) => [p.tool, p.state.status]), [
		["read", "completed"], // read is allowed by default
		["edit", "error"],
		["bash", "error"],
	]);
	for (const p of refused.slice(1)) assert.match(p.state.error, /^permission denied: .*--yes/);
	assert.equal(fs.readFileSync(path.join(dir, "hello.sh"), "utf8"), "echo hello wrold\n");
	const yes = await runBin([...args, "--yes", "--data", path.join(work, "d2"), "fix and run hello.sh"], {
		cwd: dir,
		timeout: 30000,
	});
	assert.equal(yes.code, 0, yes.stderr);
	assert.deepEqual(tools(yes).map((p) => [p.tool, p.state.status]), [
		["read", "completed"],
		["edit", "completed"],
		["bash", "completed"],
	]);
	assert.equal(tools(yes)[2].state.output, "hello world\n");
});

test("a conversation that reads, edits and runs a file through the server", T, async (t) => {
	const dir = await tree(t, { "hello.sh": "echo hello wrold\n" });
	const srv = await serve(t, CONVERSATION);
	const s = await createSession(srv, { directory: dir });
	const reply = await prompt(srv, s.id, "fix and run hello.sh");
	assert.equal(reply.parts.filter((p) => p.type === "text").map((p) => p.text).join(""), "It printed: hello world\n");
	const tools = toolParts(await getMessages(srv, s.id));
	assert.deepEqual(tools.map((p) => [p.tool, p.state.status]), [
		["read", "completed"],
		["edit", "completed"],
		["bash", "completed"],
	]);
	assert.equal(fs.readFileSync(path.join(dir, "hello.sh"), "utf8"), "echo hello world\n");
});

test("edit and bash ask first: the ask names the file or command, a reject reaches the model, once lets it go on", T, async (t) => {
	const dir = await tree(t, { "a.txt": "one\n" });
	const srv = await serve(
		t,
		[
			call("edit", "edit", { filePath: "a.txt", oldString: "one", newString: "two" }),
			call("bash", "bash", { command: "touch made-by-bash", description: "Make a file" }),
		],
		{ extra: { permission: { edit: "ask", bash: "ask" } } },
	);
	const sse = await sseSubscribe(srv);
	t.after(() => sse.close());
	const s = await createSession(srv, { directory: dir });
	for (const [key, want] of [
		["edit", { permission: "edit", patterns: ["a.txt"], title: "Edit a.txt" }],
		["bash", { permission: "bash", patterns: ["touch made-by-bash"], title: "Run: touch made-by-bash" }],
	]) {
		const from = sse.frames.length;
		await promptAsync(srv, s.id, `ws:${key}`);
		const asked = await sse.waitFor((e) => e.type === "permission.asked", { from, timeout: 10000, label: `${key} asks` });
		const p = asked.properties;
		assert.equal(p.permission, want.permission);
		assert.deepEqual(p.patterns, want.patterns);
		assert.equal(p.title ?? p.metadata?.title, want.title);
		if (key === "edit") assert.match(p.metadata.diff, /-one\n\+two/);
		else assert.equal(p.metadata.command, "touch made-by-bash");
		await apiOk(srv, "POST", `/permission/${p.id}/reply`, { reply: "reject", message: `no ${key} today` });
		await pollUntil(async () => !(await apiOk(srv, "GET", "/session/status"))[s.id], { label: "idle" });
		assert.match(failed(toolParts(await getMessages(srv, s.id)).at(-1)), new RegExp(`no ${key} today`));
	}
	assert.equal(fs.readFileSync(path.join(dir, "a.txt"), "utf8"), "one\n");
	assert.ok(!fs.existsSync(path.join(dir, "made-by-bash")));
	// allowed once, the edit goes on
	const from = sse.frames.length;
	await promptAsync(srv, s.id, "ws:edit");
	const asked = await sse.waitFor((e) => e.type === "permission.asked", { from, timeout: 10000, label: "asks again" });
	await apiOk(srv, "POST", `/permission/${asked.properties.id}/reply`, { reply: "once" });
	await pollUntil(async () => !(await apiOk(srv, "GET", "/session/status"))[s.id], { label: "idle" });
	completed(toolParts(await getMessages(srv, s.id)).at(-1));
	assert.equal(fs.readFileSync(path.join(dir, "a.txt"), "utf8"), "two\n");
});
