// GET /metrics against a real `agentgate serve`: the body is read by a strict parser of
// Prometheus' text format (version 0.0.4) written here — HELP/TYPE once per family and
// before its samples, families contiguous, valid names, escaped label values, no
// series twice, counters named *_total and never negative — and its counters move as
// turns run: prompts and turns by source and outcome, provider requests, retries,
// stalls and tokens, the bus's subscribers, a plugin's hook calls. It is protected like
// every route (token, Host).
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { BIN, HERE, startServer, apiOk, createSession, sseSubscribe, wsConnect, rawHttp, pollUntil } from "./lib.mjs";

const T = { timeout: 120_000 };
const PROBE = path.resolve(process.env.AGENTGATE_PROBE || path.join(path.dirname(BIN), "tests/plugins/probe.so"));
const EVERYTHING = path.join(HERE, "node_modules/.bin/mcp-server-everything");

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(s, where) {
	if (s === "+Inf") return Infinity;
	if (s === "-Inf") return -Infinity;
	if (s === "NaN") return NaN;
	if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`${where}: bad value "${s}"`);
	return Number(s);
}

/** Parses {labels} at s[i] ('{' there); returns [labels, index after '}']. */
function parseLabels(s, i, where) {
	const labels = {};
	i++;
	for (;;) {
		if (s[i] === "}") return [labels, i + 1];
		const eq = s.indexOf("=", i);
		if (eq < 0) throw new Error(`${where}: label without =`);
		const name = s.slice(i, eq);
		if (!LABEL.test(name)) throw new Error(`${where}: bad label name "${name}"`);
		if (name in labels) throw new Error(`${where}: label ${name} twice`);
		if (s[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`);
		let v = "";
		let j = eq + 2;
		for (;; j++) {
			if (j >= s.length) throw new Error(`${where}: unterminated label value`);
			const c = s[j];
			if (c === "\\") {
				const n = s[++j];
				if (n === "\\") v += "\\";
				else if (n === '"') v += '"';
				else if (n === "n") v += "\n";
				else throw new Error(`${where}: bad escape \\${n}`);
			} else if (c === '"') break;
			else v += c;
		}
		labels[name] = v;
		i = j + 1;
		if (s[i] === ",") i++;
		else if (s[i] !== "}") throw new Error(`${where}: expected , or } after a label`);
	}
}

/** A strict reader of the text format: {families: {name: {type, help, samples: [{labels, value}]}}}. */
export function parsePrometheus(text) {
	if (!text.endsWith("\n")) throw new Error("the body must end with a newline");
	const families = {};
	const series = new Set();
	const done = new Set(); // families whose samples are over (a later sample would interleave)
	let current = null;
	const fam = (name) => (families[name] ??= { type: null, help: null, samples: [] });
	text.slice(0, -1).split("\n").forEach((line, n) => {
		const where = `line ${n + 1}`;
		if (line === "") return;
		if (line.startsWith("#")) {
			const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
			if (!m) return; // a plain comment
			const [, kind, name, rest] = m;
			if (!NAME.test(name)) throw new Error(`${where}: bad metric name "${name}"`);
			const f = fam(name);
			if (kind === "TYPE") {
				if (f.type) throw new Error(`${where}: TYPE of ${name} twice`);
				if (f.samples.length) throw new Error(`${where}: TYPE of ${name} after its samples`);
				if (!TYPES.has(rest)) throw new Error(`${where}: bad type "${rest}"`);
				f.type = rest;
			} else {
				if (f.help !== null) throw new Error(`${where}: HELP of ${name} twice`);
				f.help = rest;
			}
			if (current && current !== name) done.add(current);
			current = name;
			return;
		}
		const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
		if (!m) throw new Error(`${where}: bad sample "${line}"`);
		const name = m[1];
		let i = name.length,
			labels = {};
		if (line[i] === "{") [labels, i] = parseLabels(line, i, where);
		if (line[i] !== " ") throw new Error(`${where}: expected a space before the value`);
		const parts = line.slice(i + 1).split(" ");
		if (parts.length > 2) throw new Error(`${where}: trailing fields`);
		const value = parseValue(parts[0], where);
		if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: bad timestamp`);
		const f = families[name];
		if (!f || !f.type) throw new Error(`${where}: sample of ${name} before its TYPE`);
		if (done.has(name)) throw new Error(`${where}: samples of ${name} are not together`);
		if (current && current !== name) done.add(current);
		current = name;
		const key = name + JSON.stringify(Object.entries(labels).sort());
		if (series.has(key)) throw new Error(`${where}: series ${key} twice`);
		series.add(key);
		if (f.type === "counter") {
			if (!name.endsWith("_total")) throw new Error(`${where}: counter ${name} not named *_total`);
			if (!(value >= 0)) throw new Error(`${where}: counter ${name} is ${value}`);
		}
		f.samples.push({ labels, value });
	});
	return families;
}

async function scrape(srv, headers = {}) {
	const r = await rawHttp(srv, { path: "/metrics", headers });
	assert.equal(r.status, 200, r.text);
	assert.match(r.headers["content-type"], /^text\/plain; version=0\.0\.4/);
	return parsePrometheus(r.text);
}

/** The value of name{labels} (0 when absent). */
function value(fams, name, labels = {}) {
	const f = fams[name];
	assert.ok(f, `no family ${name}`);
	const s = f.samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
	return s ? s.value : 0;
}

test("the parser is strict: it refuses what the format does not allow", () => {
	const ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"\\n\\\\\"} 1\n";
	assert.equal(parsePrometheus(ok).a_total.samples[0].labels.k, 'v"\n\\');
	const bad = [
		"# TYPE a gauge\na 1", // no final newline
		"a 1\n", // no TYPE
		"# TYPE a gauge\n# TYPE a gauge\na 1\n",
		"# TYPE a counter\na 1\n", // counter without _total
		"# TYPE a_total counter\na_total -1\n",
		"# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n",
		"# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n", // interleaved
		"# TYPE a gauge\na{x=1} 1\n",
		"# TYPE a gauge\na{x=\"\\t\"} 1\n",
		"# TYPE a gauge\na one\n",
		"# TYPE 1a gauge\n",
	];
	for (const b of bad) assert.throws(() => parsePrometheus(b), undefined, JSON.stringify(b));
});

test("GET /metrics parses, and its counters move as turns run", T, async (t) => {
	const srv = await startServer({
		config: { providers: { scripted: { pace_ms: 1 } }, retry: { base_ms: 10, max: 2, stall_max: 1 } },
		args: ["--plugin", PROBE, "--stall-timeout-ms", "300"],
	});
	t.after(() => srv.stop());
	const before = await scrape(srv);
	for (const f of ["agentgate_sessions", "agentgate_turns_queued", "agentgate_turns_running", "agentgate_prompts_total",
		"agentgate_turns_total", "agentgate_provider_requests_total", "agentgate_provider_retries_total",
		"agentgate_provider_stalls_total", "agentgate_tokens_total", "agentgate_bus_lag_events", "agentgate_bus_lag_max_events",
		"agentgate_bus_subscribers_dropped_total", "agentgate_plugin_hook_seconds_total", "agentgate_plugin_events_dropped_total",
		"agentgate_mcp_server_up", "agentgate_mcp_server_status", "process_resident_memory_bytes"])
		assert.ok(before[f] && before[f].help, `family ${f} with its HELP`);
	assert.ok(value(before, "agentgate_plugins_loaded") >= 1, "the probe, and the first-party plugins built here");
	assert.ok(before.agentgate_plugin_inflight.samples.some((x) => x.labels.plugin === "probe"));

	const s = await createSession(srv);
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}&descendants=true`);
	t.after(() => sse.close());
	const ws = await wsConnect(srv.wsUrl);
	t.after(() => ws.close());
	await ws.call("subscribe", { sessionID: s.id, descendants: true });
	const during = await scrape(srv);
	assert.equal(value(during, "agentgate_bus_subscribers", { transport: "sse" }), 1);
	assert.equal(value(during, "agentgate_bus_subscribers", { transport: "ws" }), 1);

	for (const text of ["hello", "task echo hi", "fail", "stall"])
		await apiOk(srv, "POST", `/session/${s.id}/message`, { parts: [{ type: "text", text }] });
	await ws.call("session.prompt", { sessionID: s.id, text: "hello", wait: true });
	const after = await scrape(srv);
	const d = (name, labels) => value(after, name, labels) - value(before, name, labels);
	assert.equal(d("agentgate_prompts_total", { source: "http", result: "accepted" }), 4);
	assert.equal(d("agentgate_prompts_total", { source: "ws", result: "accepted" }), 1);
	assert.equal(d("agentgate_prompts_total", { source: "task", result: "accepted" }), 1);
	assert.equal(d("agentgate_turns_total", { source: "http", outcome: "completed" }), 2);
	assert.equal(d("agentgate_turns_total", { source: "http", outcome: "failed" }), 2, "fail and stall");
	assert.equal(d("agentgate_turns_total", { source: "task", outcome: "completed" }), 1);
	assert.equal(d("agentgate_turns_total", { source: "ws", outcome: "completed" }), 1);
	const sc = { provider: "scripted" };
	assert.ok(d("agentgate_provider_requests_total", sc) >= 8, "a request per step and per retry");
	assert.ok(d("agentgate_provider_completed_total", sc) >= 5);
	assert.equal(d("agentgate_provider_failures_total", sc), 2);
	assert.equal(d("agentgate_provider_stalls_total", sc), 2, "the stall and its one retry");
	assert.ok(d("agentgate_provider_retries_total", sc) >= 1);
	assert.ok(d("agentgate_tokens_total", { provider: "scripted", kind: "output" }) > 0);
	assert.ok(d("agentgate_tokens_total", { provider: "scripted", kind: "input" }) > 0);
	assert.equal(value(after, "agentgate_turns_running"), 0);
	assert.equal(value(after, "agentgate_turns_queued"), 0);
	assert.equal(value(after, "agentgate_sessions", { state: "busy" }), 0);
	assert.ok(value(after, "agentgate_sessions", { state: "idle" }) >= 2, "the session and its child");
	assert.ok(value(after, "agentgate_bus_last_seq") > value(before, "agentgate_bus_last_seq"));
	assert.ok(d("agentgate_plugin_hook_calls_total", { plugin: "probe" }) >= 6, "the probe's turn_end hook ran");
	assert.ok(value(after, "agentgate_plugin_hook_seconds_total", { plugin: "probe" }) >= 0);
	assert.ok(value(after, "process_resident_memory_bytes") > 1e6);
	// GET /plugin reports the hook time /metrics shows
	const probe = (await apiOk(srv, "GET", "/plugin")).find((p) => p.id === "probe");
	assert.equal(typeof probe.counters.hookTimeUs, "number");
});

test("GET /metrics shows the MCP servers as GET /mcp does: up, status, tools", T, async (t) => {
	const srv = await startServer({
		config: { mcp: { everything: { type: "local", command: [EVERYTHING] }, off: { type: "local", command: [EVERYTHING], enabled: false } } },
	});
	t.after(() => srv.stop());
	const m = await pollUntil(async () => {
		const f = await scrape(srv);
		return value(f, "agentgate_mcp_server_up", { server: "everything" }) === 1 && f;
	}, { timeout: 60000, label: "the everything server connected" });
	const mcp = await apiOk(srv, "GET", "/mcp");
	assert.equal(mcp.everything.status, "connected");
	assert.equal(value(m, "agentgate_mcp_server_tools", { server: "everything" }), mcp.everything.tools.length);
	assert.ok(mcp.everything.tools.length > 0);
	assert.equal(value(m, "agentgate_mcp_server_status", { server: "everything", status: "connected" }), 1);
	assert.equal(value(m, "agentgate_mcp_server_status", { server: "everything", status: "failed" }), 0);
	assert.equal(value(m, "agentgate_mcp_server_up", { server: "off" }), 0);
	assert.equal(value(m, "agentgate_mcp_server_status", { server: "off", status: "disabled" }), 1);
});

test("GET /metrics is protected like every route: the token, the Host check", T, async (t) => {
	const srv = await startServer({ args: ["--token", "m3trics"] });
	t.after(() => srv.stop());
	const anon = await rawHttp({ port: srv.port }, { path: "/metrics" });
	assert.equal(anon.status, 401);
	const ok = await rawHttp(srv, { path: "/metrics" });
	assert.equal(ok.status, 200);
	parsePrometheus(ok.text);
	const host = await rawHttp(srv, { path: "/metrics", headers: { host: "evil.example" } });
	assert.equal(host.status, 403);
	const site = await rawHttp(srv, { path: "/metrics", headers: { origin: "http://evil.example" } });
	assert.equal(site.status, 403);
});
