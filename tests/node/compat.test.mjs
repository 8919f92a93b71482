// What OpenCode's front ends read besides sessions (net/compat.c), through the official
// SDK as its terminal UI calls it: the one project (the workspace) and its git branch,
// the empty answers (LSP, formatters, console, resources, workspaces), the v2 API's
// location, agents, models, providers and commands, and GET /session's filters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createOpencodeClient as createV1 } from "@opencode-ai/sdk";
import { createOpencodeClient as createV2 } from "@opencode-ai/sdk/v2";
import { startServer, api, apiOk, createSession } from "./lib.mjs";

const T = { timeout: 60_000 };

function tempDir(t, name) {
	const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `agentgate-${name}-`)));
	t.after(() => fs.rmSync(d, { recursive: true, force: true }));
	return d;
}

function git(cwd, ...args) {
	const r = spawnSync("git", args, { cwd, encoding: "utf8" });
	assert.equal(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
	return r.stdout.trim();
}

async function start(t, ws, config = {}) {
	const srv = await startServer({ config: { providers: { scripted: { pace_ms: 1 } }, ...config }, args: ["--workspace", ws] });
	t.after(() => srv.stop());
	return srv;
}

const ok = (r, what) => {
	assert.ok(!r.error && r.response?.status === 200, `${what}: ${r.response?.status} ${JSON.stringify(r.error)}`);
	return r.data;
};

test("the project is the workspace: SDK v2 project.current, list and directories, and v1 project.current", T, async (t) => {
	const ws = tempDir(t, "plain");
	const srv = await start(t, ws);
	const c = createV2({ baseUrl: srv.url });
	const empty = ok(await c.project.current(), "project.current");
	assert.deepEqual(empty, { id: "global", worktree: ws, name: path.basename(ws), time: { created: 0, updated: 0 }, sandboxes: [] }, "outside git, before any session");
	const a = await createSession(srv, { title: "first" });
	const b = await createSession(srv, { title: "second" });
	const p = ok(await c.project.current(), "project.current");
	assert.equal(p.time.created, a.time.created, "created: the first session's");
	assert.equal(p.time.updated, b.time.updated, "updated: the last session's");
	assert.deepEqual(ok(await c.project.list(), "project.list"), [p]);
	assert.deepEqual(ok(await c.project.directories({ projectID: "global" }), "project.directories"), [{ directory: ws }]);
	const other = await c.project.directories({ projectID: "nope" });
	assert.equal(other.response.status, 404);
	assert.match(other.error.message ?? JSON.stringify(other.error), /project nope not found/);
	assert.equal(a.projectID, p.id, "sessions name the same project");
	const v1 = createV1({ baseUrl: srv.url });
	assert.deepEqual(ok(await v1.project.current(), "v1 project.current"), p);
	assert.deepEqual(ok(await c.vcs.get(), "vcs.get"), {}, "no git, no branch");
});

test("in a git repository: the project says git, and vcs.get names HEAD's branch and origin's default", T, async (t) => {
	const repo = tempDir(t, "repo");
	git(repo, "init", "-q", "-b", "trunk");
	fs.mkdirSync(path.join(repo, "refs-test/sub"), { recursive: true });
	const srv = await start(t, path.join(repo, "refs-test/sub")); // the repository is found above the workspace
	const c = createV2({ baseUrl: srv.url });
	assert.equal(ok(await c.project.current(), "project.current").vcs, "git");
	assert.deepEqual(ok(await c.vcs.get(), "vcs.get"), { branch: "trunk" });
	fs.mkdirSync(path.join(repo, ".git/refs/remotes/origin"), { recursive: true });
	fs.writeFileSync(path.join(repo, ".git/refs/remotes/origin/HEAD"), "ref: refs/remotes/origin/main\n");
	git(repo, "symbolic-ref", "HEAD", "refs/heads/feature/x");
	assert.deepEqual(ok(await c.vcs.get(), "vcs.get"), { branch: "feature/x", default_branch: "main" });
	// a detached HEAD has no branch
	git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "one");
	git(repo, "checkout", "-q", "--detach");
	assert.deepEqual(ok(await c.vcs.get(), "vcs.get"), { default_branch: "main" });
});

test("a linked git worktree: its .git file is followed to HEAD, and the common directory to origin's default", T, async (t) => {
	const repo = tempDir(t, "main");
	git(repo, "init", "-q", "-b", "trunk");
	git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "one");
	fs.mkdirSync(path.join(repo, ".git/refs/remotes/origin"), { recursive: true });
	fs.writeFileSync(path.join(repo, ".git/refs/remotes/origin/HEAD"), "ref: refs/remotes/origin/trunk\n");
	const wt = path.join(tempDir(t, "wt"), "linked");
	git(repo, "worktree", "add", "-q", "-b", "side", wt);
	const srv = await start(t, wt);
	const c = createV2({ baseUrl: srv.url });
	assert.deepEqual(ok(await c.vcs.get(), "vcs.get"), { branch: "side", default_branch: "trunk" });
});

test("what agentgate has none of answers empty, in OpenCode's shapes", T, async (t) => {
	const srv = await start(t, tempDir(t, "ws"));
	const c = createV2({ baseUrl: srv.url });
	assert.deepEqual(ok(await c.lsp.status(), "lsp.status"), []);
	assert.deepEqual(ok(await c.formatter.status(), "formatter.status"), []);
	assert.deepEqual(ok(await c.experimental.capabilities.get(), "capabilities"), { backgroundSubagents: false });
	assert.deepEqual(ok(await c.experimental.console.get(), "console"), { consoleManagedProviders: [], switchableOrgCount: 0 });
	assert.deepEqual(ok(await c.experimental.resource.list(), "resource.list"), {});
	assert.deepEqual(ok(await c.experimental.workspace.list(), "workspace.list"), []);
	assert.deepEqual(ok(await c.experimental.workspace.status(), "workspace.status"), []);
	for (const what of ["integration", "skill", "reference"]) {
		const r = ok(await c.v2[what].list(), `v2.${what}.list`);
		assert.deepEqual(r.data, [], what);
	}
	const v1 = createV1({ baseUrl: srv.url });
	assert.deepEqual(ok(await v1.lsp.status(), "v1 lsp.status"), []);
	assert.deepEqual(ok(await v1.formatter.status(), "v1 formatter.status"), []);
});

test("the v2 API: location, agents with their permission rules, models, providers and commands", T, async (t) => {
	const ws = tempDir(t, "ws");
	const srv = await start(t, ws, {
		permission: { bash: { "git *": "allow" } },
		agent: { reviewer: { description: "reviews", mode: "subagent", model: "scripted/demo", prompt: "Review.", permission: { edit: "deny" } } },
		command: { greet: { template: "Say hello to $1", description: "greets", agent: "reviewer", model: "scripted/demo" } },
		providers: { scripted: { pace_ms: 1, models: { quick: { name: "Quick", release_date: "2025-02-03", limit: { context: 1000, output: 100 }, modalities: { input: ["text", "image"] }, cost: { input: 1, output: 2, cache_read: 0.5, cache_write: 0.25 } } } } },
	});
	const c = createV2({ baseUrl: srv.url });
	const location = { directory: ws, project: { id: "global", directory: ws } };
	assert.deepEqual(ok(await c.v2.location.get(), "location"), location);

	const agents = ok(await c.v2.agent.list(), "agent.list");
	assert.deepEqual(agents.location, location);
	const reviewer = agents.data.find((a) => a.id === "reviewer");
	assert.deepEqual(reviewer, {
		id: "reviewer",
		model: { providerID: "scripted", id: "demo" },
		request: { headers: {}, body: {} },
		system: "Review.",
		description: "reviews",
		mode: "subagent",
		hidden: false,
		steps: reviewer.steps,
		permissions: [
			{ action: "*", resource: "*", effect: "allow" },
			{ action: "edit", resource: "*", effect: "ask" },
			{ action: "write", resource: "*", effect: "ask" },
			{ action: "bash", resource: "*", effect: "ask" },
			{ action: "bash", resource: "git *", effect: "allow" },
			{ action: "edit", resource: "*", effect: "deny" },
		],
	});
	const build = agents.data.find((a) => a.id === "build");
	assert.equal(build.mode, "primary");
	assert.deepEqual(build.permissions.at(-1), { action: "bash", resource: "git *", effect: "allow" }, "the config's rules, without another agent's");

	const models = ok(await c.v2.model.list(), "model.list").data;
	const quick = models.find((m) => m.id === "quick");
	assert.deepEqual(quick, {
		id: "quick",
		providerID: "scripted",
		name: "Quick",
		api: { id: "quick", type: "native", settings: {} },
		capabilities: { tools: quick.capabilities.tools, input: ["text", "image"], output: ["text"] },
		request: { headers: {}, body: {} },
		variants: [],
		time: { released: Date.UTC(2025, 1, 3) },
		cost: [{ input: 1, output: 2, cache: { read: 0.5, write: 0.25 } }],
		status: "active",
		enabled: true,
		limit: { context: 1000, output: 100 },
	});
	assert.ok(models.some((m) => m.id === "demo" && m.providerID === "scripted"), "the embedded model");

	const providers = ok(await c.v2.provider.list(), "provider.list").data;
	assert.deepEqual(providers.map((p) => p.id), ["scripted", "openai", "anthropic"]);
	assert.deepEqual(providers[0], { id: "scripted", name: providers[0].name, api: { type: "native", settings: {} }, request: { headers: {}, body: {} } });
	assert.match(providers[1].api.url, /^https?:\/\//, "a network provider names its base URL");

	const commands = ok(await c.v2.command.list(), "command.list").data;
	assert.deepEqual(commands, [{ name: "greet", template: "Say hello to $1", description: "greets", agent: "reviewer", model: { providerID: "scripted", id: "demo" } }]);
});

test("GET /session takes OpenCode's filters: start, search, limit, directory, path, scope", T, async (t) => {
	const ws = tempDir(t, "ws");
	fs.mkdirSync(path.join(ws, "sub/deeper"), { recursive: true });
	fs.mkdirSync(path.join(ws, "subway"));
	const srv = await start(t, ws);
	const alpha = await createSession(srv, { title: "Alpha one" });
	const beta = await createSession(srv, { title: "beta TWO", directory: path.join(ws, "sub") });
	const deep = await createSession(srv, { title: "deep", directory: path.join(ws, "sub/deeper") });
	const way = await createSession(srv, { title: "way", directory: path.join(ws, "subway") });
	const child = await createSession(srv, { title: "alpha's child", parentID: alpha.id });
	const c = createV2({ baseUrl: srv.url });
	const ids = async (q) => ok(await c.session.list(q), JSON.stringify(q)).map((s) => s.id).sort();
	const sorted = (...s) => s.map((x) => x.id).sort();
	assert.deepEqual(await ids({ search: "ALPHA" }), sorted(alpha, child), "search ignores case");
	assert.deepEqual(await ids({ search: "alpha", roots: true }), sorted(alpha));
	assert.deepEqual(await ids({ path: "sub" }), sorted(beta, deep), "path: the directory and below, not its namesake");
	assert.deepEqual(await ids({ path: "sub/" }), sorted(beta, deep));
	assert.deepEqual(await ids({ path: "" }), sorted(alpha, beta, deep, way, child), "an empty path is every directory");
	assert.deepEqual(await ids({ directory: path.join(ws, "sub") }), sorted(beta), "directory: exactly");
	assert.deepEqual(await ids({ directory: path.join(ws, "sub"), scope: "project" }), sorted(alpha, beta, deep, way, child), "scope project: the whole project");
	const newest = ok(await c.session.list({ limit: 2 }), "limit");
	assert.equal(newest.length, 2, "limit");
	assert.deepEqual(newest.map((s) => s.id), [child.id, way.id], "the most recently updated first");
	assert.deepEqual(await ids({ start: way.time.updated }), sorted(way, child), "start: updated at or after");
	assert.deepEqual(await ids({ start: Date.now() + 3_600_000 }), []);
	for (const [q, name] of [["start=-1", "start"], ["limit=-2", "limit"], ["limit=x", "limit"], ["scope=global", "scope"]]) {
		const r = await api(srv, "GET", `/session?${q}`);
		assert.equal(r.status, 400, q);
		assert.match(r.json.message, new RegExp(`"${name}"`), `${q} names ${name}`);
	}
	const v1 = createV1({ baseUrl: srv.url });
	assert.deepEqual(ok(await v1.session.list({ query: { search: "way" } }), "v1 search").map((s) => s.id), [way.id]);
	// a client made for a directory: the SDKs send it as ?directory= on a GET, which
	// filters as above; the x-opencode-directory header alone filters no list, as in
	// OpenCode (it names where new sessions work)
	const scoped = createV2({ baseUrl: srv.url, directory: path.join(ws, "sub") });
	assert.deepEqual(ok(await scoped.session.list(), "scoped list").map((s) => s.id), [beta.id]);
	const header = { "x-opencode-directory": encodeURIComponent(path.join(ws, "sub")) };
	const listed = await api(srv, "GET", "/session", undefined, { headers: header });
	assert.deepEqual(listed.json.map((s) => s.id).sort(), sorted(alpha, beta, deep, way, child));
	const made = await api(srv, "POST", "/session", {}, { headers: header });
	assert.equal(made.json.directory, path.join(ws, "sub"), "it is where a new session works");
});
