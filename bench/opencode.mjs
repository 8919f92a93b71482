// agentgate vs OpenCode, same provider, same workload: `node bench/opencode.mjs` (or
// `cmake --build build --target bench-opencode`). It measures, for each server, the
// server's CPU per token when N sessions (default 20) each stream T tokens (default
// 2000) from the same scripted provider as fast as it sends them:
//   - the provider is mockllm's "stamped" model (user text "T 0": T text deltas, unpaced,
//     each one's text the CLOCK_MONOTONIC microsecond it was written at), the same
//     script bench/bench.c's burst uses; agentgate reaches it with --openai-base-url,
//     OpenCode through an "@ai-sdk/openai-compatible" provider in its opencode.json;
//   - per round: N fresh sessions (titled, so OpenCode makes no title request), one
//     POST /session/{id}/prompt_async each, one GET /event subscriber counting text
//     deltas, until every session is idle again (session.idle or session.status idle);
//   - server CPU: /proc/PID/task/*/schedstat summed over the server and every process
//     below it (plus the CPU of children it reaped, from /proc/PID/stat), from just
//     before the prompts to the last idle; per token = CPU / the tokens the provider
//     sent (requests it streamed x T), cross-checked with what the subscriber counted;
//   - wall time, prompt -> first delta p50, token -> subscriber p50, RSS (whole tree).
// Each server runs alone (agentgate first, then OpenCode), is warmed up with one short
// prompt and left to go quiet (OpenCode installs @opencode-ai/plugin into its config
// directory in the background at start) before its rounds; the machine's load average is
// printed with each round. Everything listens on 127.0.0.1; every process is killed and
// every temp directory removed at the end, also on error, timeout or Ctrl-C.
// Options: --sessions N --tokens T --rounds R (default 3) --timeout S (per round, 300)
// --only agentgate|opencode. Env: AGENTGATE_BIN, MOCKLLM_BIN, OPENCODE_BIN.
// Needs `npm ci` in tests/node (OpenCode is its opencode-ai devDependency).
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
if (!fs.existsSync(path.join(REPO, "tests/node/node_modules/ws"))) {
	console.error("bench/opencode.mjs: tests/node/node_modules is missing: run `npm ci` in tests/node first");
	process.exit(2);
}
const { apiOk, deferred, evSession, freePort, isIdleOf, pollUntil, withTimeout } = await import("../tests/node/lib.mjs");

const AGENTGATE = process.env.AGENTGATE_BIN || path.join(REPO, "build/agentgate");
const MOCKLLM = process.env.MOCKLLM_BIN || path.join(REPO, "build/tests/mockllm");
const OPENCODE = process.env.OPENCODE_BIN || path.join(REPO, "tests/node/node_modules/.bin/opencode");

// ---- options ----
const argv = process.argv.slice(2);
const usage = (why) => {
	console.error(`bench/opencode.mjs: ${why}\nusage: node bench/opencode.mjs [--sessions N] [--tokens T] [--rounds R] [--timeout S] [--only agentgate|opencode]`);
	process.exit(2);
};
const opts = { "--sessions": 20, "--tokens": 2000, "--rounds": 3, "--timeout": 300, "--only": null };
for (let i = 0; i < argv.length; i += 2) {
	if (!(argv[i] in opts)) usage(`unknown option ${argv[i]}`);
	if (argv[i + 1] === undefined) usage(`${argv[i]} needs a value`);
	opts[argv[i]] = argv[i] === "--only" ? argv[i + 1] : Number(argv[i + 1]);
	if (argv[i] !== "--only" && !(Number.isInteger(opts[argv[i]]) && opts[argv[i]] > 0)) usage(`${argv[i]} must be a positive integer`);
}
const N = opts["--sessions"], T = opts["--tokens"], ROUNDS = opts["--rounds"], TIMEOUT_MS = opts["--timeout"] * 1000;
const KINDS = opts["--only"] ? [opts["--only"]] : ["agentgate", "opencode"];
if (!KINDS.every((k) => k === "agentgate" || k === "opencode")) usage("--only takes agentgate or opencode");

// ---- processes: each in its own group, killed with everything below it ----
const nowUs = () => Number(process.hrtime.bigint() / 1000n); // CLOCK_MONOTONIC, as mockllm's stamps
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const live = new Set(), temps = new Set();
const TICK_NS = 1e9 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }));

/** bin in its own process group, killed with node (pdeathsig); p.log(): its output's tail. */
function launch(bin, args, { env = process.env, cwd = REPO, stdout = true } = {}) {
	const p = spawn("setpriv", ["--pdeathsig", "KILL", "--", bin, ...args], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
	let log = "";
	const keep = (d) => (log = (log + d).slice(-6000));
	p.stderr.on("data", keep);
	if (stdout) p.stdout.on("data", keep);
	p.log = () => log;
	live.add(p);
	p.once("exit", () => live.delete(p));
	return p;
}

/** {pid: [ppid, comm, utime+stime of reaped children in ticks]} for every process. */
function procTable() {
	const t = new Map();
	for (const d of fs.readdirSync("/proc")) {
		if (!/^\d+$/.test(d)) continue;
		try {
			const s = fs.readFileSync(`/proc/${d}/stat`, "utf8");
			const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
			t.set(Number(d), { ppid: Number(f[1]), comm: s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")), reaped: Number(f[13]) + Number(f[14]) });
		} catch {} // gone meanwhile
	}
	return t;
}

/** The pid and every process below it: [{pid, comm, reaped}]. */
function tree(root, table = procTable()) {
	const out = [], todo = [root];
	while (todo.length) {
		const pid = todo.pop();
		if (!table.has(pid)) continue;
		out.push({ pid, ...table.get(pid) });
		for (const [c, v] of table) if (v.ppid === pid) todo.push(c);
	}
	return out;
}

const readNum = (file, re) => {
	try { return Number(fs.readFileSync(file, "utf8").match(re)?.[1] ?? 0); } catch { return 0; }
};

/** CPU ns of the tree: every thread's schedstat, plus what each process's reaped children used. */
function cpuNs(root) {
	let ns = 0;
	for (const p of tree(root)) {
		ns += p.reaped * TICK_NS;
		try {
			for (const t of fs.readdirSync(`/proc/${p.pid}/task`)) ns += readNum(`/proc/${p.pid}/task/${t}/schedstat`, /^(\d+)/);
		} catch {}
	}
	return ns;
}
const rssKb = (procs) => procs.reduce((kb, p) => kb + readNum(`/proc/${p.pid}/status`, /VmRSS:\s+(\d+)/), 0);

const signalTree = (p, sig) => {
	for (const { pid } of tree(p.pid)) try { process.kill(pid, sig); } catch {}
	try { process.kill(-p.pid, sig); } catch {}
};
async function stop(p) {
	if (!live.has(p)) return;
	const gone = new Promise((r) => p.once("exit", r));
	signalTree(p, "SIGTERM");
	if (!(await Promise.race([gone.then(() => true), sleep(5000)]))) signalTree(p, "SIGKILL");
	await Promise.race([gone, sleep(2000)]);
}
process.on("exit", () => {
	for (const p of live) signalTree(p, "SIGKILL");
	for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

// ---- HTTP (apiOk(srv, ...) from tests/node/lib.mjs: srv is anything with a url) ----
const waitHealthy = (srv, ms) => pollUntil(async () => {
	if (!live.has(srv.proc)) throw new Error(`${srv.kind} exited at start:\n${srv.proc.log()}`);
	return fetch(`${srv.url}/global/health`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status === 200, () => false);
}, { timeout: ms, interval: 100, label: `${srv.kind} answering GET /global/health` });

/** One GET /event stream; onEvent(event, nowUs) for every parsed data frame. */
function subscribe(url, onEvent) {
	const ready = deferred();
	const req = http.get(`${url}/event`, { agent: false }, (res) => {
		if (res.statusCode !== 200) ready.reject(new Error(`GET /event -> ${res.statusCode}`));
		res.setEncoding("utf8");
		let buf = "";
		res.on("data", (d) => {
			const frames = (buf + d).split("\n\n");
			buf = frames.pop();
			const now = nowUs();
			for (const f of frames) {
				const data = f.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
				let e;
				try { e = JSON.parse(data); } catch { continue; }
				if (e.type === "server.connected") ready.resolve();
				onEvent(e, now);
			}
		});
	});
	req.on("error", (e) => ready.reject(e));
	return { ready: withTimeout(ready.promise, 30000, "server.connected on GET /event"), close: () => req.destroy() };
}

// ---- the two servers ----
async function startMock() {
	const proc = launch(MOCKLLM, [], { stdout: false });
	const port = await withTimeout(new Promise((resolve, reject) => {
		readline.createInterface({ input: proc.stdout }).once("line", (l) => (/^PORT \d+$/.test(l) ? resolve(Number(l.slice(5))) : reject(new Error(`mockllm said ${l}`))));
		proc.once("exit", (c) => reject(new Error(`mockllm exited (${c}): ${proc.log()}`)));
	}), 10000, "mockllm's PORT line");
	return { proc, url: `http://127.0.0.1:${port}` };
}

function tempDir(name) {
	const d = fs.mkdtempSync(path.join(os.tmpdir(), `agentgate-bench-${name}-`));
	temps.add(d);
	return d;
}

async function startAgentgate(mock) {
	const dir = tempDir("agentgate"), port = await freePort(), cfg = path.join(dir, "config.json");
	fs.writeFileSync(cfg, JSON.stringify({ stall_timeout_ms: 600000, task: { max_running: 64 } })); // as bench.c
	const proc = launch(AGENTGATE, ["serve", "--port", String(port), "--data", path.join(dir, "data"), "--config", cfg, "--openai-base-url", `${mock.url}/v1`],
		{ env: { ...process.env, AGENTGATE_LOG: "error" } });
	return { kind: "agentgate", proc, dir, url: `http://127.0.0.1:${port}`, model: { providerID: "openai", modelID: "stamped" } };
}

/** OpenCode's environment: HOME and XDG dirs in the temp dir, nothing fetched or loaded
 * from elsewhere, no file watcher, no default plugins, no share, no autoupdate. */
function opencodeEnv(home) {
	return {
		PATH: process.env.PATH, LANG: "C.UTF-8", HOME: home,
		XDG_CONFIG_HOME: path.join(home, ".config"), XDG_DATA_HOME: path.join(home, ".local/share"),
		XDG_CACHE_HOME: path.join(home, ".cache"), XDG_STATE_HOME: path.join(home, ".local/state"),
		OPENCODE_DISABLE_AUTOUPDATE: "1", OPENCODE_DISABLE_MODELS_FETCH: "1", OPENCODE_PURE: "1",
		OPENCODE_DISABLE_SHARE: "1", OPENCODE_DISABLE_LSP_DOWNLOAD: "1", OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
		OPENCODE_DISABLE_CLAUDE_CODE: "1", OPENCODE_DISABLE_EXTERNAL_SKILLS: "1", OPENCODE_DISABLE_AUTOCOMPACT: "1",
		OPENCODE_EXPERIMENTAL_DISABLE_FILEWATCHER: "1",
	};
}

async function startOpencode(mock) {
	const dir = tempDir("opencode"), home = path.join(dir, "home"), project = path.join(dir, "project"), port = await freePort();
	fs.mkdirSync(home);
	fs.mkdirSync(project);
	const model = { limit: { context: 10_000_000, output: 10_000_000 } };
	fs.writeFileSync(path.join(project, "opencode.json"), JSON.stringify({
		autoupdate: false, share: "disabled", snapshot: false, lsp: false, formatter: false,
		model: "mock/stamped", small_model: "mock/normal",
		provider: { mock: { npm: "@ai-sdk/openai-compatible", name: "mockllm", options: { baseURL: `${mock.url}/v1`, apiKey: "bench" },
			models: { stamped: { name: "stamped", ...model }, normal: { name: "normal", ...model } } } },
	}, null, 1));
	const proc = launch(OPENCODE, ["serve", "--port", String(port), "--hostname", "127.0.0.1", "--pure", "--log-level", "ERROR"],
		{ env: opencodeEnv(home), cwd: project });
	return { kind: "opencode", proc, dir, url: `http://127.0.0.1:${port}`, model: { providerID: "mock", modelID: "stamped" } };
}

function version(kind) {
	const bin = kind === "agentgate" ? AGENTGATE : OPENCODE;
	try {
		return execFileSync(bin, ["--version"], { encoding: "utf8", timeout: 60000, env: kind === "agentgate" ? process.env : opencodeEnv(tempDir("opencode-version")) }).trim();
	} catch (e) {
		console.error(`bench/opencode.mjs: ${bin} --version failed (${e.message.split("\n")[0]}); set ${kind.toUpperCase()}_BIN or build/install it`);
		process.exit(2);
	}
}

/** Waits until the tree used under 2% of one core over windowMs (at most maxMs); true if it did. */
async function quiesce(pid, windowMs, maxMs) {
	for (const deadline = Date.now() + maxMs; Date.now() < deadline;) {
		const a = cpuNs(pid);
		await sleep(windowMs);
		if (cpuNs(pid) - a < windowMs * 1e6 * 0.02) return true;
	}
	return false;
}

// ---- one round ----
const median = (xs) => {
	const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
	return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
let st = null; // the round being measured

function onEvent(e, now) {
	const s = st?.sess.get(evSession(e));
	if (!s) return;
	const p = e.properties ?? {};
	if (e.type === "message.part.delta" && (p.field ?? "text") === "text") st.deltas++, stamps(s, p.delta, now);
	else if (e.type === "message.part.updated" && p.part?.type === "text") st.updates++, p.delta && stamps(s, p.delta, now);
	else if (e.type === "session.status" && p.status?.type === "busy") s.busy = true;
	else if (e.type === "session.error") st.errors.push(JSON.stringify(p.error).slice(0, 200));
	if (s.idle || !(s.busy || s.first) || !isIdleOf(s.id)(e)) return; // idle once it has run
	s.idle = now;
	if (++st.idled === st.sess.size) st.done.resolve();
}

/** A stamped delta: one token per "<us> " (its send time). */
function stamps(s, text, now) {
	for (const w of String(text ?? "").split(" ")) {
		const t = Number(w);
		if (t > 0) st.tokens++, st.lat.push(now - t), (s.first ||= now);
	}
}
const newState = (ids) => ({ sess: new Map(ids.map((id) => [id, { id }])), deltas: 0, updates: 0, tokens: 0, lat: [], errors: [], idled: 0, done: deferred() });

/** Prompts each session with "<tokens> 0" (unpaced), waits until each is idle again:
 * "" or why not. */
async function promptAll(srv, ids, tokens, ms) {
	st = newState(ids);
	try {
		await Promise.all(ids.map((id) => ((st.sess.get(id).prompted = nowUs()),
			apiOk(srv, "POST", `/session/${id}/prompt_async`, { model: srv.model, parts: [{ type: "text", text: `${tokens} 0` }] }, 204))));
		await withTimeout(st.done.promise, ms, "every session idle again");
		return "";
	} catch (e) {
		return e.message;
	}
}

async function round(srv, mock, r) {
	await apiOk(mock, "POST", "/_reset");
	const ids = [];
	for (let i = 0; i < N; i++) ids.push((await apiOk(srv, "POST", "/session", { title: `bench ${r}.${i}` })).id);
	await quiesce(srv.proc.pid, 300, 10000);
	const load = fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
	const procs = new Map(), rss0 = rssKb(tree(srv.proc.pid));
	let rssPeak = rss0;
	const sample = () => {
		const t = tree(srv.proc.pid);
		for (const p of t) procs.set(p.pid, p.comm);
		rssPeak = Math.max(rssPeak, rssKb(t));
	};
	const sampler = setInterval(sample, 200);
	const cpu0 = cpuNs(srv.proc.pid), t0 = nowUs();
	const incomplete = await promptAll(srv, ids, T, TIMEOUT_MS);
	const cpu = cpuNs(srv.proc.pid) - cpu0;
	clearInterval(sampler);
	sample();
	const sess = [...st.sess.values()], stats = await apiOk(mock, "GET", "/_stats");
	const sent = (stats.by_model.stamped ?? 0) * T;
	const f = {
		load, cpuS: cpu / 1e9, usPerToken: sent ? cpu / 1e3 / sent : NaN, sent, received: st.tokens, deltas: st.deltas, updates: st.updates,
		wallS: (Math.max(...sess.map((s) => s.idle ?? nowUs())) - t0) / 1e6,
		firstMs: median(sess.map((s) => (s.first - s.prompted) / 1e3)), latMs: median(st.lat) / 1e3,
		rss0Mb: rss0 / 1024, rssMb: rssPeak / 1024, procs: [...procs].map(([pid, comm]) => `${comm}(${pid})`).join(" "),
		requests: JSON.stringify(stats.by_model), aborts: stats.client_aborts, errors: st.errors, incomplete,
	};
	st = null;
	return f;
}

// ---- the run ----
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");
const roundLine = (kind, r, f) => `${kind} round ${r} (load ${f.load}): tokens sent ${f.sent}, received ${f.received} in ${f.deltas} deltas ` +
	`(+${f.updates} text part updates); CPU ${fmt(f.cpuS, 2)} s = ${fmt(f.usPerToken)} us/token; wall ${fmt(f.wallS, 2)} s; ` +
	`prompt -> first delta p50 ${fmt(f.firstMs)} ms; token -> subscriber p50 ${fmt(f.latMs)} ms; RSS ${fmt(f.rss0Mb)} -> peak ${fmt(f.rssMb)} MB; ` +
	`processes ${f.procs}; provider requests ${f.requests}` + (f.aborts ? `, ${f.aborts} aborted` : "") +
	(f.errors.length ? `; session errors: ${f.errors.join("; ")}` : "") + (f.incomplete ? `; INCOMPLETE: ${f.incomplete}` : "");

async function benchOne(kind, mock) {
	const srv = await (kind === "agentgate" ? startAgentgate(mock) : startOpencode(mock));
	try {
		await waitHealthy(srv, kind === "opencode" ? 120000 : 20000);
		const sub = subscribe(srv.url, onEvent);
		await sub.ready;
		const warm = (await apiOk(srv, "POST", "/session", { title: "bench warm-up" })).id;
		const why = await promptAll(srv, [warm], 5, 120000);
		if (why || st.tokens !== 5) throw new Error(`${kind}'s warm-up prompt streamed ${st.tokens} of 5 tokens: ${why} ${st.errors.join("; ")}`);
		const quiet = await quiesce(srv.proc.pid, 1000, 60000);
		console.log(`${kind}: up, warmed up, ${quiet ? "quiet" : "still busy after 60 s (measuring anyway)"}; ` +
			`processes: ${tree(srv.proc.pid).map((p) => `${p.comm}(${p.pid})`).join(" ")}`);
		const rounds = [];
		for (let r = 1; r <= ROUNDS; r++) {
			rounds.push(await round(srv, mock, r));
			console.log(roundLine(kind, r, rounds[r - 1]));
		}
		sub.close();
		return rounds;
	} finally {
		await stop(srv.proc);
		fs.rmSync(srv.dir, { recursive: true, force: true });
		temps.delete(srv.dir);
	}
}

const ROWS = [
	["server CPU per token (us)", "usPerToken", 1], ["server CPU (s)", "cpuS", 2],
	["wall, prompts -> last idle (s)", "wallS", 2], ["prompt -> first delta p50 (ms)", "firstMs", 1],
	["token -> subscriber p50 (ms)", "latMs", 1], ["RSS peak, whole tree (MB)", "rssMb", 1],
	["tokens sent (provider)", "sent", 0], ["tokens received (subscriber)", "received", 0],
];

/** Per-round CPU per token and the medians, side by side, with opencode/agentgate. */
function table(res) {
	const pad = (x, n) => String(x).padStart(n), two = KINDS.length === 2;
	const line = (label, vals, d) => label.padEnd(34) + vals.map((v) => pad(fmt(v, d), 12)).join("") + (two ? pad(`${fmt(vals[1] / vals[0])}x`, 20) : "");
	const col = (k, key, r) => (res[k] ? (r === undefined ? median(res[k].map((f) => f[key])) : res[k][r].usPerToken) : NaN);
	const out = ["".padEnd(34) + KINDS.map((k) => pad(k, 12)).join("") + (two ? pad("opencode/agentgate", 20) : "")];
	for (let r = 0; r < ROUNDS; r++) out.push(line(`round ${r + 1}: CPU per token (us)`, KINDS.map((k) => col(k, "usPerToken", r)), 1));
	out.push("median of the rounds:");
	for (const [label, key, d] of ROWS) out.push(line(`  ${label}`, KINDS.map((k) => col(k, key)), d));
	return out.join("\n");
}

const loadavg = () => fs.readFileSync("/proc/loadavg", "utf8").trim();
const startLoad = loadavg();
console.log(`bench/opencode.mjs: ${N} sessions x ${T} tokens, unpaced (mockllm "stamped"), ${ROUNDS} rounds; ` +
	`${os.cpus().length} cores, /proc/loadavg at start: ${startLoad}`);
for (const k of KINDS) console.log(`  ${k}: ${k === "agentgate" ? AGENTGATE : OPENCODE} (${version(k)})`);
const res = {};
let failed = false;
const mock = await startMock();
try {
	for (const k of KINDS) {
		res[k] = await benchOne(k, mock).catch((e) => void console.log(`${k} FAILED: ${e.message}`));
		failed ||= !res[k] || res[k].some((f) => f.incomplete || f.received !== N * T || f.sent !== N * T);
	}
} finally {
	await stop(mock.proc);
}
console.log(`\n${N} sessions x ${T} tokens burst; /proc/loadavg at start ${startLoad}, at end ${loadavg()}`);
console.log(table(res));
if (failed) console.log("INCOMPLETE: a server failed, timed out, or did not stream every token to the subscriber (see above)");
process.exitCode = failed ? 1 : 0;
