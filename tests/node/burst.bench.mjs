// WebSocket burst: the figures of `agentgate_bench --only burst` for a WebSocket
// subscriber (whose frames go through the front door's relay, where an SSE stream is
// handed to lws). N sessions answer the scripted provider's "long" prompt unpaced; one
// subscriber over WebSocket, or over SSE with --sse, receives every event. Prints
// events/s and server CPU per event (all threads, from schedstat).
// Usage (in tests/node):
//   AGENTGATE_BIN=../../build/agentgate node burst.bench.mjs [--sse] [--sessions N] [--rounds R]
import fs from "node:fs";
import http from "node:http";
import WebSocket from "ws";
import { startServer, DEFAULT_CONFIG, createSession, promptAsync, deferred } from "./lib.mjs";

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const SSE = args.includes("--sse");
const SESSIONS = opt("--sessions", 20);
const ROUNDS = opt("--rounds", 3);

function cpuNs(pid) {
	let ns = 0;
	for (const t of fs.readdirSync(`/proc/${pid}/task`))
		ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
	return ns;
}

let closed = (why) => {
	console.error(why);
	process.exitCode = 1;
};

function subscribe(srv, onEvent) {
	const ready = deferred();
	if (SSE) {
		const req = http.get({ host: "127.0.0.1", port: srv.port, path: "/event", agent: false }, (res) => {
			let buf = "";
			res.setEncoding("utf8");
			res.on("data", (d) => {
				buf += d;
				const frames = buf.split("\n\n");
				buf = frames.pop();
				for (const f of frames) f.includes("server.connected") ? ready.resolve() : onEvent(f);
			});
		});
		return { ready: ready.promise, close: () => req.destroy() };
	}
	const ws = new WebSocket(srv.wsUrl);
	ws.on("open", () => ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscribe", params: {} })));
	ws.on("message", (b) => {
		const text = b.toString();
		text.startsWith('{"jsonrpc":"2.0","id":1') ? ready.resolve() : onEvent(text);
	});
	ws.on("close", (code, reason) => closed && closed(`WebSocket closed: ${code} ${reason}`));
	return { ready: ready.promise, close: () => ((closed = null), ws.terminate()) };
}

const srv = await startServer({ config: { ...DEFAULT_CONFIG, providers: { scripted: { pace_ms: 0 } } } });
try {
	const ids = [];
	for (let i = 0; i < SESSIONS; i++) ids.push((await createSession(srv)).id);
	let events = 0, idle = 0, round = deferred();
	const sub = subscribe(srv, (text) => {
		events++;
		if (text.includes('"type":"session.idle"') && ++idle === SESSIONS) round.resolve();
	});
	await sub.ready;
	for (let r = 0; r < ROUNDS; r++) {
		events = 0;
		idle = 0;
		round = deferred();
		const cpu0 = cpuNs(srv.proc.pid), t0 = process.hrtime.bigint();
		await Promise.all(ids.map((id) => promptAsync(srv, id, "long")));
		await round.promise;
		const secs = Number(process.hrtime.bigint() - t0) / 1e9, cpu = (cpuNs(srv.proc.pid) - cpu0) / 1e3;
		console.log(`${SSE ? "SSE" : "WS "} round ${r + 1}: ${events} events in ${secs.toFixed(2)} s = ` +
			`${Math.round(events / secs)} events/s, server CPU ${(cpu / 1e6).toFixed(2)} s = ${(cpu / events).toFixed(1)} us per event`);
	}
	sub.close();
} finally {
	await srv.stop();
}
