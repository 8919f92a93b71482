// `cmake --install` into a temporary prefix, then the installed gateway as an
// administrator runs it: from a directory with nothing of the source tree, without
// --config, --web or plugin flags, it reads the installed default config, serves the
// installed web UI, loads the installed first-party plugins; an out-of-tree plugin
// (sdk/template) and a client program (sdk/examples/watch.c) build against the installed
// SDK with CMake and with pkg-config and work against it. The systemd unit passes
// `systemd-analyze verify`; the Dockerfile builds where Docker runs (skipped otherwise).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { BIN, REPO, freePort, pollUntil, withTimeout, runCmd, findFile } from "./lib.mjs";

const T = { timeout: 300_000 };
const BUILD = path.resolve(process.env.AGENTGATE_BUILD_DIR || path.dirname(BIN));
// a sanitizer build's library needs programs built with the same sanitizer
const cache = fs.existsSync(path.join(BUILD, "CMakeCache.txt")) ? fs.readFileSync(path.join(BUILD, "CMakeCache.txt"), "utf8") : "";
const SAN = /^AG_SANITIZE:BOOL=ON$/m.test(cache) ? "-fsanitize=address,undefined" : /^AG_TSAN:BOOL=ON$/m.test(cache) ? "-fsanitize=thread" : "";

/** The environment an administrator's shell would have: none of the test's overrides. */
function cleanEnv(extra = {}) {
	const env = { ...process.env, AGENTGATE_LOG: "warn", ...extra };
	for (const k of ["AGENTGATE_PLUGIN_DIR", "AGENTGATE_WEB", "AGENTGATE_CONFIG", "AGENTGATE_TOKEN", "AGENTGATE_BIN"])
		if (!(k in extra)) delete env[k];
	return env;
}

/** Starts BIN serve from cwd with args and waits (bounded) for /global/health. */
async function serveFrom(t, bin, cwd, args) {
	const port = await freePort();
	const p = spawn(bin, ["serve", "--port", String(port), ...args], { cwd, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
	let out = "";
	p.stdout.on("data", (d) => (out += d));
	p.stderr.on("data", (d) => (out += d));
	const exited = new Promise((r) => p.on("close", (code, signal) => r({ code, signal })));
	t.after(() => {
		p.kill("SIGTERM");
		return withTimeout(exited, 10000, "the installed gateway stops").catch(() => p.kill("SIGKILL"));
	});
	const url = `http://127.0.0.1:${port}`;
	await pollUntil(
		async () => {
			try {
				return (await fetch(`${url}/global/health`)).status === 200;
			} catch {
				return false;
			}
		},
		{ timeout: 15000, label: `the installed gateway answers (${out})` },
	);
	return { url, port, output: () => out, proc: p, exited };
}

const get = async (url) => {
	const r = await fetch(url);
	return { status: r.status, type: r.headers.get("content-type"), text: await r.text() };
};
const post = async (url, body) => {
	const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
	return r.json();
};

test("installed to a prefix: the gateway finds its config, web UI and plugins; the SDK builds plugins and clients", T, async (t) => {
	const prefix = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-prefix-"));
	t.after(() => fsp.rm(prefix, { recursive: true, force: true }));
	runCmd("cmake", ["--install", BUILD, "--prefix", prefix]);

	const bin = path.join(prefix, "bin/agentgate");
	const config = path.join(prefix, "etc/agentgate/config.json");
	for (const f of [bin, config, path.join(prefix, "share/agentgate/web/index.html"), path.join(prefix, "include/agentgate/client.h"),
		path.join(prefix, "include/agentgate/plugin.h"), path.join(prefix, "lib/systemd/system/agentgate.service"),
		path.join(prefix, "lib/sysusers.d/agentgate.conf")])
		assert.ok(fs.existsSync(f), `${f} installed`);
	for (const name of ["libagentgate-client.so", "libagentgate-client.a", "agentgate-client.pc", "agentgate-clientConfig.cmake",
		"agentgate-plugin.pc", "agentgate.sample.json", "nginx.conf", "Dockerfile", "guard.so"])
		assert.ok(findFile(prefix, name), `${name} installed`);
	assert.match(findFile(prefix, "guard.so"), /\/agentgate\/plugins\/guard\.so$/);
	assert.match(runCmd(bin, ["--version"]), /^agentgate \d+\.\d+\.\d+ \(plugin ABI 1\.\d+, client library 1\.\d+\)/);
	assert.match(runCmd(bin, ["config", "check", config]), /: ok/);
	assert.match(runCmd(bin, ["config", "check", findFile(prefix, "agentgate.sample.json")]), /: ok/);

	// the admin's config: installing again keeps it
	const rules = [
		{ regex: "^ping$", steps: [{ text: "pong from the installed config" }] },
		{ regex: "^task (.+)$", steps: [{ text: "Delegating.", tools: [{ name: "task", input: { description: "sub", prompt: "{{1}}", subagent_type: "general" } }] }, { text: "sub: {{tool_output}}" }] },
		{ match: "", steps: [{ text: "You said: {{prompt}}" }] },
	];
	const mine = { model: "scripted/demo", providers: { scripted: { pace_ms: 1, rules } } };
	fs.writeFileSync(config, JSON.stringify(mine));
	runCmd("cmake", ["--install", BUILD, "--prefix", prefix]);
	assert.deepEqual(JSON.parse(fs.readFileSync(config, "utf8")), mine, "cmake --install keeps an existing config");

	// an out-of-tree plugin and a client program, built against the installed SDK
	const tb = path.join(prefix, "template-build");
	runCmd("cmake", ["-S", path.join(REPO, "sdk/template"), "-B", tb, `-DCMAKE_PREFIX_PATH=${prefix}`]);
	runCmd("cmake", ["--build", tb]);
	const template = path.join(tb, "template.so");
	const wb = path.join(prefix, "watch-build");
	runCmd("cmake", ["-S", path.join(REPO, "sdk/examples"), "-B", wb, `-DCMAKE_PREFIX_PATH=${prefix}`, `-DCMAKE_C_FLAGS=${SAN}`]);
	runCmd("cmake", ["--build", wb]);
	const watchCmake = path.join(wb, "watch");
	const pcEnv = { ...process.env, PKG_CONFIG_PATH: path.dirname(findFile(prefix, "agentgate-client.pc")) };
	const flags = runCmd("pkg-config", ["--cflags", "--libs", "agentgate-client", "libcjson"], { env: pcEnv }).trim();
	const watchPc = path.join(prefix, "watch-pc");
	runCmd("sh", ["-c", `cc ${SAN} "$1" ${flags} -o "$2"`, "sh", path.join(REPO, "sdk/examples/watch.c"), watchPc]);

	// the installed gateway, run from an empty directory, with no flag pointing anywhere
	const cwd = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-cwd-"));
	t.after(() => fsp.rm(cwd, { recursive: true, force: true }));
	const guard = findFile(prefix, "guard.so");
	const srv = await serveFrom(t, bin, cwd, ["--data", path.join(cwd, "data"), "--plugin", guard, "--plugin", template]);

	const ui = await get(`${srv.url}/`);
	assert.equal(ui.status, 200);
	assert.match(ui.type, /text\/html/);
	assert.equal(ui.text, fs.readFileSync(path.join(REPO, "web/index.html"), "utf8"), "the installed web UI");
	for (const asset of ui.text.match(/(?<=(src|href)=")[^"]+(?=")/g) || []) {
		if (/^(https?:|#|data:)/.test(asset)) continue;
		const a = await get(new URL(asset, `${srv.url}/`).href);
		assert.equal(a.status, 200, `the page's ${asset} is installed`);
	}
	assert.ok(!fs.existsSync(path.join(prefix, "share/agentgate/web/src")), "not the UI's sources");

	const plugins = await (await fetch(`${srv.url}/plugin`)).json();
	const ids = plugins.map((p) => p.id);
	assert.ok(ids.includes("guard"), "a first-party plugin from the installed directory");
	assert.ok(ids.includes("template"), "the out-of-tree plugin");
	// the first-party plugins that load by default, from the installation (those built)
	for (const name of ["workspace", "mcp"]) {
		const installed = fs.existsSync(path.join(path.dirname(guard), `${name}.so`));
		assert.equal(ids.includes(name), installed, `${name}: loaded by default exactly when installed`);
		if (installed) assert.equal(plugins.find((p) => p.id === name).path, path.join(path.dirname(guard), `${name}.so`));
	}

	const s = await post(`${srv.url}/session`, {});
	const reply = await post(`${srv.url}/session/${s.id}/message`, { parts: [{ type: "text", text: "ping" }] });
	assert.equal(reply.parts.filter((p) => p.type === "text").map((p) => p.text).join(""), "pong from the installed config");

	// the client library, installed: the example follows the session and prints it
	for (const watchBin of [watchCmake, watchPc]) {
		const env = { ...cleanEnv(), LD_LIBRARY_PATH: path.dirname(findFile(prefix, "libagentgate-client.so")) };
		const w = spawn(watchBin, [srv.url, s.id], { env, stdio: ["ignore", "pipe", "pipe"] });
		let out = "",
			err = "";
		w.stdout.on("data", (d) => (out += d));
		w.stderr.on("data", (d) => (err += d));
		const done = new Promise((r) => w.on("close", (code) => r(code)));
		t.after(() => w.kill("SIGKILL"));
		// subscribed before the prompt: every event of the turn reaches the watcher
		await pollUntil(() => err.includes(`following ${s.id}`), { label: `watch subscribed: ${err}` });
		await post(`${srv.url}/session/${s.id}/message`, { parts: [{ type: "text", text: "task ping" }] });
		await pollUntil(() => /created under/.test(out) && new RegExp(`^${s.id} idle$`, "m").test(out), { timeout: 20000, label: `watch printed the tree: ${out} ${err}` });
		assert.match(out, /^ {2}ses_\S+ \| /m, "a child's text, indented");
		w.kill("SIGINT");
		assert.equal(await withTimeout(done, 10000, "watch stops"), 0);
		assert.match(err, /stopped at seq \d+/);
	}
});

test("the systemd unit passes systemd-analyze verify and is hardened", { timeout: 60_000 }, async (t) => {
	const unit = findFile(BUILD, "agentgate.service");
	assert.ok(unit, "the unit is generated in the build tree");
	const text = fs.readFileSync(unit, "utf8");
	for (const line of ["User=agentgate", "StateDirectory=agentgate", "ProtectSystem=strict", "NoNewPrivileges=yes", "--data /var/lib/agentgate"])
		assert.ok(text.includes(line), `the unit has ${line}`);
	const has = spawnSync("systemd-analyze", ["--version"]).status === 0;
	if (!has) return t.skip("systemd-analyze is not installed (contrib/deps.sh --test installs systemd)");
	// verify wants the binary the unit names: the one just built stands in for it
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-unit-"));
	t.after(() => fsp.rm(dir, { recursive: true, force: true }));
	const exec = /^ExecStart=(\S+)/m.exec(text)[1];
	fs.writeFileSync(path.join(dir, "agentgate.service"), text.replaceAll(exec, BIN));
	const r = spawnSync("systemd-analyze", ["verify", path.join(dir, "agentgate.service")], { encoding: "utf8" });
	assert.equal(r.status, 0, r.stderr);
	assert.doesNotMatch(r.stderr, /agentgate\.service:\d+:/, "no warning about a line of the unit");
});

test("the Dockerfile builds (where Docker runs)", { timeout: 1_800_000 }, async (t) => {
	const info = spawnSync("docker", ["info"], { encoding: "utf8", timeout: 20000 });
	if (info.status !== 0) return t.skip("no Docker daemon here: the Dockerfile is not built");
	const r = spawnSync("docker", ["build", "-f", "contrib/Dockerfile", "-t", "agentgate-test", "."], { cwd: REPO, encoding: "utf8", timeout: 1_700_000 });
	assert.equal(r.status, 0, r.stderr.slice(-4000));
});
