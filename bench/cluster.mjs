// The cluster bench: `node bench/cluster.mjs` (or `cmake --build build --target
// bench-cluster`) prints, in one run, with 1 node and with 3 nodes on one PostgreSQL and
// one NATS JetStream (tests/node/cluster.mjs starts them all on 127.0.0.1):
//   - events/s: sessions streaming as fast as the provider sends, every event delivered
//     to one /event subscriber on every node;
//   - token -> subscriber latency p50/p99: paced sessions; the provider (mockllm's
//     "stamped" model) writes each token's CLOCK_MONOTONIC send time as its text, the
//     subscriber (on every node) reads it back when the delta arrives;
//   - failover time: kill -9 of the node running a streaming session with a prompt
//     queued behind it -> the queued turn's first token at a subscriber on another node.
// The machine's load average before and after is printed with the figures: the
// provider, the nodes, PostgreSQL, NATS and the subscribers share its cores.
// Env: AGENTGATE_BIN (the server), MOCKLLM_BIN (the provider), BENCH_SCALE (0.5 halves
// the work).
import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { installFreshFetch, startCluster, startNats, subscribe } from "../tests/node/cluster.mjs";
import { apiOk, withTimeout } from "../tests/node/lib.mjs";
import { startPostgres } from "../tests/node/pg.mjs";

installFreshFetch();
const HERE = path.dirname(fileURLToPath(import.meta.url));
const MOCKLLM = process.env.MOCKLLM_BIN || path.resolve(HERE, "../build/tests/mockllm");
const SCALE = Number(process.env.BENCH_SCALE || 1);
const LEASE_MS = 2000;
const scaled = (n) => Math.max(1, Math.round(n * SCALE));

const nowUs = () => Number(process.hrtime.bigint() / 1000n); // CLOCK_MONOTONIC, as mockllm's stamps
const pct = (xs, p) => {
	if (!xs.length) return NaN;
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(" ");

async function startMock() {
	const p = spawn("setpriv", ["--pdeathsig", "KILL", "--", MOCKLLM], { stdio: ["ignore", "pipe", "inherit"] });
	const rl = readline.createInterface({ input: p.stdout });
	const port = await withTimeout(new Promise((resolve, reject) => {
		rl.once("line", (l) => (/^PORT \d+$/.test(l) ? resolve(Number(l.slice(5))) : reject(new Error(`mockllm said ${l}`))));
		p.once("exit", (c) => reject(new Error(`mockllm exited (${c})`)));
	}), 10000, "mockllm's port");
	return { port, base: `http://127.0.0.1:${port}/v1`, stop: () => p.kill("SIGKILL") };
}

const CONFIG = { stall_timeout_ms: 600000, task: { max_running: 64 }, retry: { base_ms: 10 } };

/** Prompts each session (round robin over the nodes) with mockllm's stamped model. */
async function promptAll(c, ids, tokens, pace) {
	await Promise.all(ids.map((id, i) => apiOk(c.nodes[i % c.nodes.length], "POST", `/session/${id}/prompt_async`,
		{ model: "openai/stamped", parts: [{ type: "text", text: `${tokens} ${pace}` }] }, 204)));
}

/** Sessions made round robin on the nodes (each node runs its own). */
async function sessions(c, n) {
	const ids = [];
	for (let i = 0; i < n; i++) ids.push((await apiOk(c.nodes[i % c.nodes.length], "POST", "/session", {})).id);
	return ids;
}

/** Each stamped delta's arrival minus its send time (µs) into lat, read as frames come. */
function watchLatency(sub, lat) {
	let next = 0;
	return () => {
		const now = nowUs();
		for (; next < sub.raw.frames.length; next++) {
			const e = sub.raw.frames[next].json;
			if (e?.type !== "message.part.delta") continue;
			const t = Number.parseInt(e.properties.delta, 10);
			if (t > 0) lat.push(now - t);
		}
	};
}

/** Waits (bounded) until every subscriber has seen every session go idle; the frames are
 * read once each (a scan of all of them on every chunk would cost the reader more than
 * the server). */
function idleAll(subs, ids, timeout = 300000) {
	return Promise.all(subs.map((s) => {
		const idle = new Set();
		let next = 0;
		return s.raw.until((r) => {
			for (; next < r.frames.length; next++) {
				const e = r.frames[next].json;
				if (e?.type === "session.idle") idle.add(e.sessionID);
			}
			return ids.every((id) => idle.has(id));
		}, { timeout, label: `${s.node}'s subscriber sees every session idle` });
	}));
}

/** More than the machine can take (nsess sessions, a token every pace ms each): events per
 * second the cluster publishes and delivers. (Unpaced tokens arrive together and are
 * sent as one delta event per read: they would count reads, not events.) */
async function burst(c, nsess, tokens, pace) {
	const subs = await Promise.all(c.nodes.map((n) => subscribe(n, "event")));
	const ids = await sessions(c, nsess);
	const t0 = Date.now();
	await promptAll(c, ids, tokens, pace);
	await idleAll(subs, ids);
	const secs = (Date.now() - t0) / 1000;
	const seqs = new Set(subs.flatMap((s) => s.events().map((e) => e.seq)));
	const delivered = subs.reduce((a, s) => a + s.events().length, 0);
	await Promise.all(subs.map((s) => s.close()));
	return { events: seqs.size, secs, perSec: seqs.size / secs, deliveredPerSec: delivered / secs };
}

/** Paced sessions: token -> subscriber latency at every node's subscriber. */
async function paced(c, nsess, tokens, pace) {
	const subs = await Promise.all(c.nodes.map((n) => subscribe(n, "event")));
	const lat = [];
	const takers = subs.map((s) => watchLatency(s, lat));
	// read the stamps as the frames arrive (SSEReader runs its waiters on each chunk)
	subs.forEach((s, i) => s.raw._waiters.add(takers[i]));
	const ids = await sessions(c, nsess);
	await promptAll(c, ids, tokens, pace);
	await idleAll(subs, ids);
	for (const t of takers) t();
	await Promise.all(subs.map((s) => s.close()));
	return { n: lat.length, p50: pct(lat, 0.5) / 1000, p99: pct(lat, 0.99) / 1000 };
}

/** kill -9 of the node running a streaming session with a prompt queued: how long until
 * the queued turn's first token reaches a subscriber on another node. */
async function failover(c) {
	const [n1, n2] = c.nodes;
	const id = (await apiOk(n1, "POST", "/session", {})).id;
	const sub = await subscribe(n2, "event", { query: `?sessionID=${id}` });
	await apiOk(n1, "POST", `/session/${id}/prompt_async`, { model: "openai/stamped", parts: [{ type: "text", text: "100000 5" }] }, 204);
	await apiOk(n2, "POST", `/session/${id}/prompt_async`, { model: "openai/stamped", parts: [{ type: "text", text: "20 0" }] }, 204);
	await sub.until((evs) => evs.filter((e) => e.type === "message.part.delta").length >= 20, { label: "streams", timeout: 20000 });
	const before = new Set(sub.events().filter((e) => e.type === "message.part.delta").map((e) => e.properties.messageID));
	const t0 = Date.now();
	await n1.kill9();
	await sub.until((evs) => evs.some((e) => e.type === "message.part.delta" && !before.has(e.properties.messageID)),
		{ label: "the queued turn streams on another node", timeout: LEASE_MS + 30000 });
	const ms = Date.now() - t0;
	await sub.close();
	await n1.start(); // back for the next round
	return ms;
}

async function main() {
	const mock = await startMock();
	const pg = await startPostgres();
	const nats = await startNats();
	const cpus = os.cpus().length;
	const out = [];
	const say = (s) => {
		out.push(s);
		console.log(s);
	};
	say(`cluster bench: ${cpus} cores, load average ${load()} at the start; lease ${LEASE_MS} ms; ` +
		"provider, nodes, PostgreSQL, NATS and subscribers on this machine");
	try {
		for (const n of [1, 3]) {
			const c = await startCluster({ nodes: n, pg, nats, leaseMs: LEASE_MS, config: CONFIG, args: ["--openai-base-url", mock.base] });
			try {
				const b = await burst(c, scaled(24), scaled(400), 1);
				const p = await paced(c, scaled(60), scaled(100), 20);
				say(`${n} node${n > 1 ? "s" : " "}: ${b.perSec.toFixed(0)} events/s published (${b.events} events, ` +
					`${scaled(24)} sessions x ${scaled(400)} tokens every 1 ms, ${b.deliveredPerSec.toFixed(0)}/s delivered to ${n} subscriber${n > 1 ? "s" : ""}); ` +
					`token -> subscriber p50 ${p.p50.toFixed(2)} ms p99 ${p.p99.toFixed(2)} ms ` +
					`(${scaled(60)} sessions x ${scaled(100)} tokens every 20 ms, ${p.n} deliveries)`);
				if (n === 3) {
					const f = [];
					for (let i = 0; i < 3; i++) f.push(await failover(c));
					say(`failover (kill -9 -> the queued turn streams on another node): ${f.map((x) => (x / 1000).toFixed(2)).join(" / ")} s ` +
						`(lease ${LEASE_MS} ms)`);
				}
			} finally {
				await c.destroy();
			}
		}
	} finally {
		await nats.destroy();
		await pg.destroy();
		mock.stop();
	}
	say(`load average ${load()} at the end`);
}

await main();
