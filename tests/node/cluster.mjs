// A cluster of agentgate nodes for the tests and the bench: one PostgreSQL (pg.mjs: the
// shared store, a database per cluster) and one nats-server with JetStream
// (tests/natsserver.sh: the event bus and the nodes' requests to each other), both on
// 127.0.0.1 and free ports in temporary directories, and N `agentgate serve --bus
// nats://... --store postgres://... --node nX` processes, each with its own data
// directory. A node can be killed (-9), drained (SIGTERM) and started again under its
// name; NATS and PostgreSQL can be stopped and started again under the running nodes.
// Every process started here dies with the test process (setpriv --pdeathsig) and is
// ended by destroy(), which then checks with pgrep that none is left.
// Every wait is bounded; nothing sleeps as a way to synchronise.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { BIN, REPO, SSEReader, api, freePort, pollUntil, withTimeout, wsConnect } from "./lib.mjs";
import { startPostgres } from "./pg.mjs";

const live = new Set(); // processes started here, killed if the test process exits first
process.on("exit", () => {
	for (const p of live) {
		try {
			p.kill("SIGKILL");
		} catch {}
	}
});

/**
 * fetch on a connection of its own (node:http, no keep-alive pool). Node's fetch keeps an
 * idle connection about 4 s and the gateway (libwebsockets) closes one after about 5 s,
 * both on one-second timers: a request sent on a pooled connection idle for 4-5 s can
 * meet the server's close ("other side closed"). The cluster tests wait that long
 * between requests (on turns, on PostgreSQL), so every request they send, the SDK's and
 * the SSE streams included, goes through this (installFreshFetch).
 */
export async function freshFetch(input, init = undefined) {
	const req = new Request(input, init);
	const url = new URL(req.url);
	const body = req.body ? Buffer.from(await req.arrayBuffer()) : null;
	const headers = Object.fromEntries(req.headers);
	if (body) headers["content-length"] = String(body.length);
	return new Promise((resolve, reject) => {
		let res = null;
		const r = http.request({ host: url.hostname, port: url.port, method: req.method, path: url.pathname + url.search,
			headers, agent: false }, (response) => {
			res = response;
			const h = new Headers();
			for (const [k, v] of Object.entries(res.headers))
				for (const x of Array.isArray(v) ? v : [v]) h.append(k, x);
			const none = res.statusCode === 204 || res.statusCode === 304 || req.method === "HEAD";
			if (none) res.resume();
			resolve(new Response(none ? null : Readable.toWeb(res), { status: res.statusCode, statusText: res.statusMessage, headers: h }));
		});
		r.on("error", reject);
		// an abort ends the body too (a reader of an SSE stream is waiting on it)
		const abort = (reason) => {
			const why = reason ?? new Error("aborted");
			r.destroy(why);
			res?.destroy(why);
		};
		// the caller's own signal: the copy a Request makes may not follow it (undici)
		const sig = init?.signal ?? (input instanceof Request ? input.signal : null);
		if (sig?.aborted) abort(sig.reason);
		else sig?.addEventListener("abort", () => abort(sig.reason), { once: true });
		r.end(body ?? undefined);
	});
}

/** Makes every fetch of this process (lib.mjs's api and SSE, the SDK) a freshFetch. */
export function installFreshFetch() {
	globalThis.fetch = freshFetch;
}

const tail = (s, n = 3000) => (s.length > n ? "…" + s.slice(-n) : s);

/** Why a cluster cannot run on this machine (nats-server or PostgreSQL missing), or null. */
export function clusterMissing() {
	const nats = process.env.AGENTGATE_NATS_SERVER ||
		spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" }).stdout.trim();
	if (!nats || !fs.existsSync(nats))
		return "no nats-server (Debian's nats-server package: contrib/deps.sh --test)";
	const pgbin = process.env.AGENTGATE_PG_BIN ||
		spawnSync("sh", ["-c", "ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1"],
			{ encoding: "utf8" }).stdout.trim();
	if (!pgbin || !fs.existsSync(path.join(pgbin, "postgres")))
		return "no PostgreSQL server (Debian's postgresql package: contrib/deps.sh --test)";
	if (spawnSync("sh", ["-c", "command -v psql && command -v pg_isready"]).status !== 0)
		return "no psql / pg_isready (Debian's postgresql-client)";
	return null;
}

/** Resolves once something on port answers like a NATS server (its INFO line). */
function natsAnswers(port) {
	return new Promise((resolve) => {
		const s = net.connect({ host: "127.0.0.1", port });
		const done = (ok) => {
			s.destroy();
			resolve(ok);
		};
		s.setTimeout(1000, () => done(false));
		s.once("data", (d) => done(d.toString().startsWith("INFO ")));
		s.once("error", () => done(false));
	});
}

/** A nats-server with JetStream (tests/natsserver.sh) on a free port; stop/start keep its
 * port and its JetStream files (a restart finds its streams again). */
export async function startNats() {
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-nats-"));
	const port = await freePort();
	let proc = null;
	let exited = null;
	const nats = {
		port,
		dir,
		url: `nats://127.0.0.1:${port}`,
		get running() {
			return !!proc;
		},
		async start() {
			proc = spawn("sh", [path.join(REPO, "tests/natsserver.sh"), dir, String(port)], { stdio: "ignore" });
			live.add(proc);
			let code = null;
			const p = proc;
			exited = new Promise((resolve) => p.on("exit", (c, sig) => {
				live.delete(p);
				code = c ?? sig;
				resolve(code);
			}));
			await pollUntil(async () => {
				if (code !== null) throw new Error(`nats-server did not start (exit ${code}); see ${dir}/server.log`);
				return natsAnswers(port);
			}, { timeout: 20000, interval: 50, label: "nats-server answers" });
		},
		/** SIGTERM (a clean stop) or SIGKILL; waits until it is gone. */
		async stop(sig = "SIGTERM") {
			if (!proc) return;
			proc.kill(sig);
			await withTimeout(exited, 20000, "nats-server stops");
			proc = null;
		},
		async destroy() {
			await nats.stop("SIGKILL");
			await fsp.rm(dir, { recursive: true, force: true });
		},
	};
	await nats.start();
	return nats;
}

/** The scripted model's rules the cluster tests use (config providers.scripted.rules). */
export const CLUSTER_RULES = [
	// a quick turn: one step, a few tokens
	{ regex: "^quick (.+)$", steps: [{ text: "Quick answer to {{1}}." }] },
	// a turn of N*2 paced tokens, N = 20 (s), 100 (m) or 400 (l), that names its prompt
	{ regex: "^slow s (.+)$", steps: [{ text: "slow {{1}} ", repeat: 20 }] },
	{ regex: "^slow m (.+)$", steps: [{ text: "slow {{1}} ", repeat: 100 }] },
	{ regex: "^slow l (.+)$", steps: [{ text: "slow {{1}} ", repeat: 400 }] },
	// a foreground subagent (the task tool) whose child runs "slow l ..."
	{
		regex: "^sub (.+)$",
		steps: [
			{ text: "Delegating.", tools: [{ name: "task", input: { description: "cluster task", prompt: "slow l {{1}}", subagent_type: "general" } }] },
			{ text: "The subagent reported: {{tool_output}}" },
		],
	},
	// a background subagent (the task tool, background): the parent's turn ends at once
	{
		regex: "^bg (.+)$",
		steps: [
			{ text: "Starting.", tools: [{ name: "task", input: { description: "cluster bg task", prompt: "slow l {{1}}", subagent_type: "general", background: true } }] },
			{ text: "Working in the background: {{tool_output}}" },
		],
	},
	{ steps: [{ text: "You said: {{prompt}}" }] },
];

/** A node's config: the scripted model paced at paceMs a token, fast retries. */
export function clusterConfig({ paceMs = 4, extra = {} } = {}) {
	return { providers: { scripted: { pace_ms: paceMs, rules: CLUSTER_RULES } }, retry: { base_ms: 10 }, ...extra };
}

/**
 * One agentgate node of a cluster: `agentgate serve --port P --data DIR --store DB --bus
 * NATS --node NAME --lease-ms MS --config FILE`. start() waits (bounded) for GET
 * /global/health to answer 200; kill9(), term() end it; start() again runs it under the
 * same name, port and data directory.
 */
class Node {
	constructor(cluster, name, port, dir) {
		this.cluster = cluster;
		this.name = name;
		this.port = port;
		this.dir = dir;
		this.url = `http://127.0.0.1:${port}`;
		this.wsUrl = `ws://127.0.0.1:${port}/ws`;
		this.proc = null;
		this.exitInfo = null;
		this.log = "";
	}

	get alive() {
		return !!this.proc && !this.exitInfo;
	}

	output() {
		return tail(this.log, 6000);
	}

	async start({ readyTimeout = 20000 } = {}) {
		const c = this.cluster;
		const argv = ["--pdeathsig", "KILL", "--", BIN, "serve", "--port", String(this.port), "--data", this.dir,
			"--store", c.dbUrl, "--bus", c.nats.url, "--node", this.name, "--lease-ms", String(c.leaseMs),
			"--config", c.configPath, ...c.args];
		const env = { ...process.env, AGENTGATE_LOG: process.env.AGENTGATE_CLUSTER_LOG || "warn" };
		delete env.AGENTGATE_TOKEN;
		this.exitInfo = null;
		this.expectExit = false;
		this.log += `\n--- ${this.name} starts\n`;
		const proc = spawn("setpriv", argv, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
		this.proc = proc;
		live.add(proc);
		const onData = (d) => {
			this.log += d.toString();
			if (this.log.length > 400000) this.log = this.log.slice(-200000);
		};
		proc.stdout.on("data", onData);
		proc.stderr.on("data", onData);
		this.exited = new Promise((resolve) => {
			proc.on("exit", (code, signal) => {
				live.delete(proc);
				this.exitInfo = { code, signal };
				resolve(this.exitInfo);
			});
		});
		await pollUntil(async () => {
			if (this.exitInfo)
				throw new Error(`node ${this.name} exited before it was ready (code ${this.exitInfo.code}, ` +
					`signal ${this.exitInfo.signal})\n${this.output()}`);
			try {
				const r = await fetch(`${this.url}/global/health`, { signal: AbortSignal.timeout(1000) });
				await r.arrayBuffer();
				return r.status === 200;
			} catch {
				return false;
			}
		}, { timeout: readyTimeout, interval: 25, label: `node ${this.name} answers /global/health` });
		return this;
	}

	/** kill -9; resolves once it is gone. */
	async kill9() {
		if (!this.alive) return this.exitInfo;
		this.expectExit = true;
		this.proc.kill("SIGKILL");
		return withTimeout(this.exited, 10000, `node ${this.name} dies of SIGKILL`);
	}

	/** SIGTERM (a drain); resolves {code, signal} when it exits (bounded by timeout). */
	async term(timeout = 45000) {
		if (!this.alive) return this.exitInfo;
		this.expectExit = true;
		this.proc.kill("SIGTERM");
		return withTimeout(this.exited, timeout, `node ${this.name} exits after SIGTERM`);
	}

	/** GET /global/health: {status, json}. */
	async health() {
		const r = await api(this, "GET", "/global/health", undefined, { timeout: 5000 });
		return { status: r.status, json: r.json };
	}

	/** GET /metrics as a map "name{labels}" → value. */
	async metrics() {
		const r = await api(this, "GET", "/metrics", undefined, { timeout: 5000 });
		const out = new Map();
		for (const line of r.text.split("\n")) {
			if (!line || line[0] === "#") continue;
			const i = line.lastIndexOf(" ");
			out.set(line.slice(0, i), Number(line.slice(i + 1)));
		}
		return out;
	}
}

/**
 * Starts PostgreSQL and NATS (or reuses `pg`/`nats` given), a fresh database, and `nodes`
 * nodes named n1..nN. leaseMs: --lease-ms. config: the nodes' config (clusterConfig()).
 * args: more flags for every node (e.g. --openai-base-url).
 */
export async function startCluster({ nodes = 3, leaseMs = 2000, config = clusterConfig(), pg = null, nats = null, db = null, args = [] } = {}) {
	const root = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-cluster-"));
	const own = { pg: !pg, nats: !nats };
	const c = {
		root,
		leaseMs,
		args,
		nodes: [],
		configPath: path.join(root, "config.json"),
		pg,
		nats,
	};
	try {
		c.pg = pg || (await startPostgres());
		c.nats = nats || (await startNats());
		c.db = db || `c${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
		c.dbUrl = c.pg.createdb(c.db);
		await fsp.writeFile(c.configPath, JSON.stringify(config));
		for (let i = 1; i <= nodes; i++) await addNode(c, `n${i}`);
	} catch (e) {
		await destroyCluster(c, own);
		throw e;
	}
	/** The rows of a query on the cluster's database, each as an array of columns. */
	c.rows = (sql) => c.pg.query(c.db, sql).map((l) => l.split("|"));
	/** The first column of each row. */
	c.query = (sql) => c.pg.query(c.db, sql);
	c.node = (name) => c.nodes.find((n) => n.name === name);
	c.addNode = (name) => addNode(c, name);
	/** The node holding root's lease (a live one), or null. */
	c.owner = (root) => c.query(`SELECT node FROM lease WHERE root_id = '${root}' AND expires_at > now()`)[0] ?? null;
	c.destroy = () => destroyCluster(c, own);
	return c;
}

async function addNode(c, name) {
	const dir = path.join(c.root, name);
	await fsp.mkdir(dir, { recursive: true });
	const n = new Node(c, name, await freePort(), dir);
	c.nodes.push(n);
	await n.start();
	return n;
}

/** The pids of live processes whose command line mentions s (pgrep -f). */
export function pidsMentioning(s) {
	const r = spawnSync("pgrep", ["-f", s], { encoding: "utf8" });
	if (r.error) throw new Error(`pgrep (Debian's procps: contrib/deps.sh --test): ${r.error.message}`);
	return r.stdout.split("\n").filter((l) => l && Number(l) !== process.pid);
}

async function destroyCluster(c, own) {
	const crashed = c.nodes.filter((n) => n.exitInfo && !n.expectExit);
	for (const n of c.nodes) if (n.alive) await n.kill9().catch(() => {});
	if (own.nats && c.nats) await c.nats.destroy();
	if (own.pg && c.pg) await c.pg.destroy();
	const left = pidsMentioning(c.root);
	await fsp.rm(c.root, { recursive: true, force: true });
	if (left.length) throw new Error(`processes left behind by the cluster in ${c.root}: ${left.join(" ")}`);
	if (crashed.length) {
		const why = crashed.map((n) => `node ${n.name} died during the test (code ${n.exitInfo.code}, ` +
			`signal ${n.exitInfo.signal}):\n${n.output()}`).join("\n");
		console.error(why); // a test that failed already reports no error of its after hooks
		throw new Error(why);
	}
}

// ---------------------------------------------------------------------------
// Event streams on a node, of three kinds, as lists of events ({type, properties, seq, ...})

/**
 * A subscriber on a node: kind "event" (GET /event, with query), "global" (GET
 * /global/event: {directory, payload}) or "ws" (WebSocket `subscribe` with params).
 * events(): the events received so far with a seq; until(cond) waits (bounded).
 */
export async function subscribe(node, kind, { query = "", params = {}, headers = {} } = {}) {
	if (kind === "ws") {
		const ws = await wsConnect(node.wsUrl);
		const res = await ws.call("subscribe", params);
		return {
			kind, node: node.name, startSeq: res.seq, raw: ws,
			events: () => ws.events.filter((e) => typeof e.seq === "number"),
			until: (cond, opts) => ws.until(() => cond(ws.events.filter((e) => typeof e.seq === "number")), opts),
			get ended() {
				return !!ws.closeInfo;
			},
			close: () => ws.close(),
		};
	}
	const p = kind === "global" ? "/global/event" : "/event";
	const r = await SSEReader.open(`${node.url}${p}${query}`, { headers });
	if (r.status !== 200) throw new Error(`GET ${p}${query} on ${node.name} → ${r.status}: ${r.body}`);
	const evs = () => r.frames.map((f) => (kind === "global" ? f.json?.payload : f.json)).filter((e) => e && typeof e.seq === "number");
	await r.until((x) => x.frames.length > 0, { label: `${p} opens on ${node.name}` });
	return {
		kind, node: node.name, raw: r,
		events: evs,
		until: (cond, opts) => r.until(() => cond(evs()), opts),
		get ended() {
			return r.ended;
		},
		close: () => r.close(),
	};
}

/** The events of a list that belong to one of the trees (rootID in roots). */
export const ofTrees = (events, roots) => events.filter((e) => roots.has(e.rootID));
