// Helpers for the agentgate integration tests: start a server on a free loopback port
// with a fresh data dir, read SSE incrementally, talk JSON-RPC over WebSocket.
// Every wait is bounded; nothing sleeps and then asserts.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "../..");
export const BIN = path.resolve(HERE, process.env.AGENTGATE_BIN || "../../build/agentgate");

/** The default test config: fast scripted model, fast retries. */
export const DEFAULT_CONFIG = Object.freeze({
	providers: { scripted: { pace_ms: 2 } },
	retry: { base_ms: 10 },
});

const live = new Set(); // spawned servers, killed if the test process exits first
process.on("exit", () => {
	for (const p of live) {
		try {
			p.kill("SIGKILL");
		} catch {}
	}
});

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.unref();
		s.on("error", reject);
		s.listen(0, "127.0.0.1", () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

/** A promise with its resolve/reject exposed. */
export function deferred() {
	let resolve, reject;
	const promise = new Promise((res, rej) => {
		resolve = res;
		reject = rej;
	});
	return { promise, resolve, reject };
}

/** Rejects with a labelled error when p does not settle within ms. */
export function withTimeout(p, ms, label) {
	let t;
	const timeout = new Promise((_, reject) => {
		t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${label}`)), ms);
	});
	return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** Polls an async predicate (bounded); resolves with its first truthy value. */
export async function pollUntil(fn, { timeout = 10000, interval = 25, label = "condition" } = {}) {
	const deadline = Date.now() + timeout;
	let last;
	for (;;) {
		last = await fn();
		if (last) return last;
		if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms polling: ${label}`);
		await new Promise((r) => setTimeout(r, interval));
	}
}

function tail(s, n = 4000) {
	return s.length > n ? "…" + s.slice(-n) : s;
}

function argValue(args, name) {
	const i = args.indexOf(name);
	return i >= 0 ? args[i + 1] : undefined;
}

/**
 * Starts `agentgate serve --port PORT --data DIR [--config FILE] ...args` and waits
 * (bounded) until GET /global/health answers 200.
 * config: null/undefined → DEFAULT_CONFIG; an object → written as the config file;
 * false → no --config. dir: reuse this data dir (for restarts) instead of a fresh one.
 * token: sent on the health probe (defaults to --token in args or env.AGENTGATE_TOKEN).
 */
export async function startServer({
	args = [],
	env = {},
	config = null,
	dir = null,
	port = null,
	token = undefined,
	readyTimeout = 10000,
} = {}) {
	const root = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-node-"));
	const dataDir = dir || path.join(root, "data");
	await fsp.mkdir(dataDir, { recursive: true });
	port = port || (await freePort());
	const argv = ["serve", "--port", String(port), "--data", dataDir];
	if (config !== false) {
		const cfgPath = path.join(root, "config.json");
		await fsp.writeFile(cfgPath, JSON.stringify(config || DEFAULT_CONFIG));
		argv.push("--config", cfgPath);
	}
	argv.push(...args);
	const fullEnv = { ...process.env, AGENTGATE_LOG: "warn", ...env };
	if (!("AGENTGATE_TOKEN" in env)) delete fullEnv.AGENTGATE_TOKEN;
	if (token === undefined) token = argValue(args, "--token") ?? env.AGENTGATE_TOKEN;

	const proc = spawn(BIN, argv, { cwd: REPO, env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
	live.add(proc);
	let output = "";
	const onData = (d) => {
		output += d.toString();
		if (output.length > 200000) output = output.slice(-100000);
	};
	proc.stdout.on("data", onData);
	proc.stderr.on("data", onData);
	const exited = new Promise((resolve) => {
		proc.on("exit", (code, signal) => {
			live.delete(proc);
			resolve({ code, signal });
		});
		proc.on("error", (err) => {
			live.delete(proc);
			output += `\nspawn error: ${err.message}`;
			resolve({ code: null, signal: null, error: err });
		});
	});
	let exitInfo = null;
	exited.then((x) => (exitInfo = x));

	const url = `http://127.0.0.1:${port}`;
	const headers = token ? { authorization: `Bearer ${token}` } : {};
	const deadline = Date.now() + readyTimeout;
	for (;;) {
		if (exitInfo) {
			await fsp.rm(root, { recursive: true, force: true });
			throw new Error(
				`agentgate ${argv.join(" ")} exited before it was ready ` +
					`(code ${exitInfo.code}, signal ${exitInfo.signal})\n${tail(output)}`,
			);
		}
		try {
			const r = await fetch(`${url}/global/health`, { headers, signal: AbortSignal.timeout(1000) });
			await r.arrayBuffer();
			if (r.status === 200) break;
		} catch {}
		if (Date.now() > deadline) {
			proc.kill("SIGKILL");
			await exited;
			await fsp.rm(root, { recursive: true, force: true });
			throw new Error(`agentgate did not answer /global/health within ${readyTimeout} ms\n${tail(output)}`);
		}
		await new Promise((r) => setTimeout(r, 25));
	}

	let stopped = null;
	let expectExit = false;
	const server = {
		url,
		port,
		dir: dataDir,
		root,
		proc,
		token,
		wsUrl: `ws://127.0.0.1:${port}/ws`,
		output: () => output,
		exited,
		get exitInfo() {
			return exitInfo;
		},
		/** Sends a signal the test expects to end the server (stop() will not complain). */
		kill(sig = "SIGTERM") {
			expectExit = true;
			proc.kill(sig);
			return withTimeout(exited, 15000, `agentgate exit after ${sig}`);
		},
		/** SIGTERM, bounded wait (SIGKILL after 5 s); throws on a crash or a hang. */
		stop({ keepDir = false } = {}) {
			if (stopped) return stopped;
			stopped = (async () => {
				const diedEarly = expectExit ? null : exitInfo;
				let killed = false;
				if (!exitInfo) {
					proc.kill("SIGTERM");
					const t = setTimeout(() => {
						killed = true;
						proc.kill("SIGKILL");
					}, 5000);
					await exited;
					clearTimeout(t);
				}
				if (!keepDir && !dir && !process.env.AGENTGATE_KEEP_TMP)
					await fsp.rm(root, { recursive: true, force: true });
				const res = { ...exitInfo, killed };
				if (diedEarly)
					throw new Error(
						`agentgate died during the test (code ${diedEarly.code}, signal ${diedEarly.signal})\n${tail(output)}`,
					);
				if (killed) throw new Error(`agentgate did not exit within 5 s of SIGTERM\n${tail(output)}`);
				// Dying of SIGTERM itself (no graceful shutdown) is checked by the shutdown test;
				// any other signal here is a crash.
				if (res.signal && res.signal !== "SIGTERM")
					throw new Error(`agentgate exited on signal ${res.signal}\n${tail(output)}`);
				return res;
			})();
			return stopped;
		},
	};
	return server;
}

/** Runs the binary to completion (bounded) and returns {code, signal, stdout, stderr}.
 * cwd: its working directory (default the repository). */
export function runBin(args, { env = {}, timeout = 10000, cwd = REPO } = {}) {
	return new Promise((resolve, reject) => {
		const fullEnv = { ...process.env, AGENTGATE_LOG: "warn", ...env };
		if (!("AGENTGATE_TOKEN" in env)) delete fullEnv.AGENTGATE_TOKEN;
		const p = spawn(BIN, args, { cwd, env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
		live.add(p);
		let stdout = "",
			stderr = "",
			timedOut = false;
		p.stdout.on("data", (d) => (stdout += d));
		p.stderr.on("data", (d) => (stderr += d));
		const t = setTimeout(() => {
			timedOut = true;
			p.kill("SIGKILL");
		}, timeout);
		p.on("error", (e) => {
			clearTimeout(t);
			live.delete(p);
			reject(e);
		});
		// "close", not "exit": a process may exit before its last output has been read
		p.on("close", (code, signal) => {
			clearTimeout(t);
			live.delete(p);
			resolve({ code, signal, stdout, stderr, timedOut });
		});
	});
}

/**
 * Runs `agentgate ARGS` on a pseudo-terminal (util-linux's script), typing answer once
 * the terminal shows question; resolves with {code, out} (what the terminal showed).
 */
export function runOnTty(args, answer, question) {
	const q = (a) => `'${a.replace(/'/g, "'\\''")}'`;
	const p = spawn("script", ["-qfec", [BIN, ...args].map(q).join(" "), "/dev/null"], {
		stdio: ["pipe", "pipe", "pipe"],
		env: { ...process.env, AGENTGATE_LOG: "warn" },
	});
	let out = "";
	let typed = false;
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => {
			p.kill("SIGKILL");
			reject(new Error(`no exit within 20 s; the terminal showed: ${out}`));
		}, 20000);
		p.stdout.on("data", (d) => {
			out += d;
			if (!typed && question.test(out)) {
				typed = true;
				p.stdin.write(answer + "\n");
			}
		});
		p.on("close", (code) => {
			clearTimeout(timer);
			resolve({ code, out });
		});
	});
}

/** Runs a command to completion (bounded); its stdout, or throws with its output. */
export function runCmd(cmd, args, opts = {}) {
	const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 240000, ...opts });
	if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} → ${r.status}\n${r.stdout}\n${r.stderr}`);
	return r.stdout;
}

/** The first file called name below dir, or null. */
export function findFile(dir, name) {
	for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
		const p = path.join(dir, e.name);
		if (e.isDirectory()) {
			const f = findFile(p, name);
			if (f) return f;
		} else if (e.name === name) return p;
	}
	return null;
}

// ---------------------------------------------------------------------------
// HTTP

function authHeaders(srv) {
	return srv && srv.token ? { authorization: `Bearer ${srv.token}` } : {};
}

/** fetch + JSON: {status, headers, text, json}. body objects are JSON-encoded. */
export async function api(srv, method, p, body, { headers = {}, timeout = 30000 } = {}) {
	const init = { method, headers: { ...authHeaders(srv), ...headers }, signal: AbortSignal.timeout(timeout) };
	if (body !== undefined) {
		init.body = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
		if (!Object.keys(init.headers).some((k) => k.toLowerCase() === "content-type"))
			init.headers["content-type"] = "application/json";
	}
	const r = await fetch(srv.url + p, init);
	const text = await r.text();
	let json;
	try {
		json = text ? JSON.parse(text) : undefined;
	} catch {}
	return { status: r.status, headers: r.headers, text, json };
}

/** Like api() but throws unless the status is expected; returns the JSON. */
export async function apiOk(srv, method, p, body, expect = 200) {
	const r = await api(srv, method, p, body);
	if (r.status !== expect)
		throw new Error(`${method} ${p} → ${r.status} (expected ${expect}): ${r.text.slice(0, 500)}`);
	return r.json;
}

export const createSession = (srv, body = {}) => apiOk(srv, "POST", "/session", body);
export const promptAsync = (srv, id, text, extra = {}) =>
	apiOk(srv, "POST", `/session/${id}/prompt_async`, { parts: [{ type: "text", text }], ...extra }, 204);
export const getMessages = (srv, id) => apiOk(srv, "GET", `/session/${id}/message`);

/**
 * A raw HTTP/1.1 request through node:http (no fetch normalisation): exact paths such as
 * "/../../etc/passwd", bodies of any size, chunked bodies. Resolves on the response.
 */
export function rawHttp(srv, { method = "GET", path: p, headers = {}, body, chunked = false, timeout = 15000 }) {
	return new Promise((resolve, reject) => {
		const req = http.request({
			host: "127.0.0.1",
			port: srv.port,
			method,
			path: p,
			headers: { ...authHeaders(srv), ...headers },
			agent: false,
		});
		const t = setTimeout(() => req.destroy(new Error(`raw ${method} ${p}: no response within ${timeout} ms`)), timeout);
		let responded = false;
		req.on("response", (res) => {
			responded = true;
			const chunks = [];
			res.on("data", (c) => chunks.push(c));
			const done = () => {
				clearTimeout(t);
				const text = Buffer.concat(chunks).toString();
				let json;
				try {
					json = JSON.parse(text);
				} catch {}
				resolve({ status: res.statusCode, headers: res.headers, text, json });
			};
			res.on("end", done);
			res.on("error", done); // the server may close right after an error response
			res.on("aborted", done);
		});
		req.on("error", (e) => {
			if (responded) return;
			clearTimeout(t);
			reject(e);
		});
		if (body !== undefined) {
			const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
			if (chunked) {
				req.setHeader("transfer-encoding", "chunked");
				for (let off = 0; off < buf.length; off += 65536) req.write(buf.subarray(off, off + 65536));
			} else {
				req.setHeader("content-length", buf.length);
				req.write(buf);
			}
		}
		req.end();
	});
}

/**
 * Resolves with cond(obj) once it is truthy, checked now and whenever obj runs its
 * _waiters (on each frame). Rejects with gone()'s message when the stream is gone first,
 * with cond's exception, or after timeout ms naming label and detail().
 */
function waitOn(obj, cond, { timeout, label, gone, detail }) {
	return new Promise((resolve, reject) => {
		const finish = (fn, v) => {
			clearTimeout(t);
			obj._waiters.delete(check);
			fn(v);
		};
		const check = () => {
			let v;
			try {
				v = cond(obj);
			} catch (e) {
				return finish(reject, e);
			}
			const why = v ? null : gone();
			if (v) finish(resolve, v);
			else if (why) finish(reject, new Error(why));
		};
		const t = setTimeout(
			() => finish(reject, new Error(`timed out after ${timeout} ms waiting for: ${label} (${detail()})`)),
			timeout,
		);
		obj._waiters.add(check);
		check();
	});
}

// ---------------------------------------------------------------------------
// SSE

/**
 * An SSE reader on fetch: parses `id:`/`data:` frames incrementally (WHATWG rules, any
 * chunking), can be aborted. frames[] holds {id, event, data, json, seq, type};
 * comments[] holds comment lines. until(cond) waits (bounded) for a condition over the
 * frames received so far.
 */
export class SSEReader {
	constructor(url, { headers = {} } = {}) {
		this.url = url;
		this.headers = headers;
		this.frames = [];
		this.comments = [];
		this.lastEventId = "";
		this.ended = false;
		this.aborted = false;
		this.error = null;
		this._buf = "";
		this._data = null;
		this._id = undefined;
		this._event = undefined;
		this._waiters = new Set();
		this._end = deferred();
	}

	/** Opens the stream; resolves once the response headers are in. */
	static async open(url, opts = {}) {
		const r = new SSEReader(url, opts);
		await r._start(opts.timeout ?? 10000);
		return r;
	}

	async _start(timeout) {
		this.ac = new AbortController();
		const t = setTimeout(() => this.ac.abort(new Error("SSE connect timeout")), timeout);
		let res;
		try {
			res = await fetch(this.url, { headers: this.headers, signal: this.ac.signal });
		} finally {
			clearTimeout(t);
		}
		this.status = res.status;
		this.responseHeaders = res.headers;
		const ct = res.headers.get("content-type") || "";
		if (!res.ok || !ct.startsWith("text/event-stream")) {
			this.body = await res.text().catch(() => "");
			try {
				this.json = JSON.parse(this.body);
			} catch {}
			this._finish();
			return;
		}
		this._pump(res.body.getReader());
	}

	async _pump(reader) {
		const dec = new TextDecoder();
		try {
			for (;;) {
				const { done, value } = await reader.read();
				if (done) break;
				this._feed(dec.decode(value, { stream: true }));
			}
			this._feed(dec.decode(), true);
		} catch (e) {
			if (!this.aborted) this.error = e;
		}
		this._finish();
	}

	_finish() {
		this.ended = true;
		this._end.resolve();
		this._notify();
	}

	_feed(text, eof = false) {
		this._buf += text;
		for (;;) {
			const i = this._buf.search(/[\r\n]/);
			if (i < 0) break;
			if (this._buf[i] === "\r" && i === this._buf.length - 1 && !eof) break; // maybe CRLF
			const skip = this._buf[i] === "\r" && this._buf[i + 1] === "\n" ? 2 : 1;
			const line = this._buf.slice(0, i);
			this._buf = this._buf.slice(i + skip);
			this._line(line);
		}
		this._notify();
	}

	_line(line) {
		if (line === "") {
			if (this._data !== null) {
				const data = this._data;
				let json;
				try {
					json = JSON.parse(data);
				} catch {}
				this.frames.push({
					id: this._id,
					lastEventId: this.lastEventId,
					event: this._event,
					data,
					json,
					type: json?.type,
					seq: json?.seq,
				});
			}
			this._data = null;
			this._id = undefined;
			this._event = undefined;
			return;
		}
		if (line[0] === ":") {
			this.comments.push(line.slice(1));
			return;
		}
		const c = line.indexOf(":");
		const field = c < 0 ? line : line.slice(0, c);
		let value = c < 0 ? "" : line.slice(c + 1);
		if (value[0] === " ") value = value.slice(1);
		if (field === "data") this._data = this._data === null ? value : this._data + "\n" + value;
		else if (field === "id" && !value.includes("\0")) this._id = this.lastEventId = value;
		else if (field === "event") this._event = value;
	}

	_notify() {
		for (const w of [...this._waiters]) w();
	}

	/** Frames carrying an event with a seq (i.e. not server.connected etc.). */
	get events() {
		return this.frames.filter((f) => f.json && typeof f.json.seq === "number");
	}

	/** Waits until cond(this) is truthy (bounded); rejects early if the stream ends. */
	until(cond, { timeout = 15000, label = "condition", allowEnd = false } = {}) {
		const last = () => `${this.frames.length} frames, last: ${this.frames.at(-1)?.data?.slice(0, 200)}`;
		return waitOn(this, cond, {
			timeout,
			label,
			gone: () =>
				this.ended && !allowEnd
					? `SSE stream ended (${this.error ? this.error.message : "closed"}) before: ${label}; ${last()}`
					: null,
			detail: () => `SSE ${this.url}; ${last()}`,
		});
	}

	/** Waits for the first event (parsed frame JSON) matching pred(json, frame), from frame index `from`; resolves with the JSON. */
	async waitFor(pred, opts = {}) {
		const from = opts.from ?? 0;
		const f = await this.until((s) => s.frames.slice(from).find((f) => f.json && pred(f.json, f)), opts);
		return f.json;
	}

	/** Waits (bounded) for the server to end the stream. */
	waitEnd(timeout = 10000) {
		return withTimeout(this._end.promise, timeout, `SSE stream end (${this.url})`);
	}

	close() {
		if (!this.ended) {
			this.aborted = true;
			this.ac.abort();
		}
		return this._end.promise;
	}
}

export const sseOpen = (url, opts) => SSEReader.open(url, opts);

/** Opens GET /event on srv with an optional query string, waits for server.connected. */
export async function sseSubscribe(srv, query = "", { headers = {}, connected = true } = {}) {
	const r = await SSEReader.open(`${srv.url}/event${query}`, { headers: { ...authHeaders(srv), ...headers } });
	if (r.status !== 200) throw new Error(`GET /event${query} → ${r.status}: ${r.body}`);
	if (connected) await r.waitFor((e) => e.type === "server.connected", { label: "server.connected" });
	return r;
}

// ---------------------------------------------------------------------------
// WebSocket JSON-RPC

export class RpcError extends Error {
	constructor(err, method) {
		super(`${method}: JSON-RPC error ${err.code}: ${err.message}`);
		this.code = err.code;
		this.rpcMessage = err.message;
		this.data = err.data;
	}
}

/**
 * A JSON-RPC 2.0 client on `ws`. call() → result or rejects with RpcError. Event
 * notifications go to onEvent(params) and (unless keepEvents is false) to events[].
 * Responses whose id is unknown (e.g. null after a parse error) go to stray[].
 */
export class RpcClient {
	constructor(ws, { onEvent = null, keepEvents = true } = {}) {
		this.ws = ws;
		this.nextId = 1;
		this.pending = new Map();
		this.events = [];
		this.stray = [];
		this.onEvent = onEvent;
		this.keepEvents = keepEvents;
		this.closeInfo = null;
		this._waiters = new Set();
		this._closed = deferred();
		ws.on("message", (buf, isBinary) => this._message(buf, isBinary));
		ws.on("close", (code, reason) => {
			this.closeInfo = { code, reason: reason.toString() };
			for (const [, p] of this.pending)
				p.reject(new Error(`${p.method}: connection closed (${code} ${reason})`));
			this.pending.clear();
			this._closed.resolve(this.closeInfo);
			this._notify();
		});
		ws.on("error", (e) => {
			this.error = e;
		});
	}

	static connect(url, { headers = {}, origin, timeout = 10000, ...opts } = {}) {
		return new Promise((resolve, reject) => {
			const ws = new WebSocket(url, { headers, origin, handshakeTimeout: timeout, maxPayload: 4 << 20 });
			const client = new RpcClient(ws, opts); // attach handlers before the first frame
			ws.once("open", () => resolve(client));
			ws.once("unexpected-response", (req, res) => {
				const e = new Error(`WS upgrade refused: ${res.statusCode}`);
				e.status = res.statusCode;
				req.destroy();
				reject(e);
			});
			ws.once("error", reject);
		});
	}

	_message(buf, isBinary) {
		this.bytes = (this.bytes || 0) + buf.length;
		let msg;
		try {
			msg = JSON.parse(buf.toString());
		} catch (e) {
			this.badFrames = (this.badFrames || 0) + 1;
			return;
		}
		if (msg && msg.method === "event" && msg.id === undefined) {
			if (this.keepEvents) this.events.push(msg.params);
			if (this.onEvent) this.onEvent(msg.params);
		} else if (msg && (msg.result !== undefined || msg.error !== undefined) && this.pending.has(msg.id)) {
			const p = this.pending.get(msg.id);
			this.pending.delete(msg.id);
			clearTimeout(p.timer);
			if (msg.error !== undefined) p.reject(new RpcError(msg.error, p.method));
			else p.resolve(msg.result);
		} else {
			this.stray.push(msg);
		}
		this._notify();
	}

	_notify() {
		for (const w of [...this._waiters]) w();
	}

	call(method, params, { timeout = 30000 } = {}) {
		const id = this.nextId++;
		const msg = { jsonrpc: "2.0", id, method };
		if (params !== undefined) msg.params = params;
		return new Promise((resolve, reject) => {
			if (this.closeInfo) return reject(new Error(`${method}: connection already closed`));
			const timer = setTimeout(() => {
				this.pending.delete(id);
				reject(new Error(`${method}: no response within ${timeout} ms`));
			}, timeout);
			this.pending.set(id, { resolve, reject, method, timer });
			this.ws.send(JSON.stringify(msg));
		});
	}

	/** Sends a raw text frame; resolves with the next stray response matching pred. */
	async raw(text, pred = () => true, timeout = 10000) {
		const from = this.stray.length;
		this.ws.send(text);
		return this.until((c) => c.stray.slice(from).find(pred), { timeout, label: `response to ${text.slice(0, 80)}` });
	}

	until(cond, { timeout = 15000, label = "condition", allowClose = false } = {}) {
		return waitOn(this, cond, {
			timeout,
			label,
			gone: () =>
				this.closeInfo && !allowClose
					? `WS closed (${this.closeInfo.code} ${this.closeInfo.reason}) before: ${label}`
					: null,
			detail: () => `${this.events.length} events`,
		});
	}

	waitFor(pred, opts = {}) {
		const from = opts.from ?? 0;
		return this.until((c) => c.events.slice(from).find(pred), opts);
	}

	/** Resolves {code, reason} when the connection closes (bounded). */
	closed(timeout = 10000) {
		return withTimeout(this._closed.promise, timeout, "WS close");
	}

	get isOpen() {
		return this.ws.readyState === WebSocket.OPEN;
	}

	close() {
		if (!this.closeInfo) this.ws.close();
		return this.closed().catch(() => this.ws.terminate());
	}

	terminate() {
		this.ws.terminate();
	}
}

export const wsConnect = (url, opts) => RpcClient.connect(url, opts);

/**
 * Attempts a WS upgrade; resolves with 101 when it opens (then closes it) or the HTTP
 * status of a refusal.
 */
export function wsUpgradeStatus(url, { headers = {}, origin } = {}) {
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(url, { headers, origin, handshakeTimeout: 10000 });
		ws.once("open", () => {
			ws.close();
			resolve(101);
		});
		ws.once("unexpected-response", (req, res) => {
			res.resume();
			req.destroy();
			resolve(res.statusCode);
		});
		ws.once("error", (e) => reject(e));
	});
}

// ---------------------------------------------------------------------------
// Event helpers

/** The session an event belongs to (envelope first, then properties). */
export const evSession = (e) => e.sessionID ?? e.properties?.sessionID ?? e.properties?.info?.sessionID;

export const isIdleOf = (id) => (e) =>
	(e.type === "session.idle" && evSession(e) === id) ||
	(e.type === "session.status" && evSession(e) === id && e.properties?.status?.type === "idle");

export const isSessionIdle = (id) => (e) => e.type === "session.idle" && evSession(e) === id;

/** messageID → partID → concatenated text deltas. */
export function deltaText(events) {
	const out = new Map();
	for (const e of events) {
		if (e.type !== "message.part.delta" || e.properties?.field !== "text") continue;
		const { messageID, partID, delta } = e.properties;
		if (!out.has(messageID)) out.set(messageID, new Map());
		const m = out.get(messageID);
		m.set(partID, (m.get(partID) ?? "") + delta);
	}
	return out;
}

/** Asserts strictly increasing seq; returns the list. */
export function seqList(events) {
	return events.map((e) => e.seq);
}

export function firstNonIncreasing(seqs) {
	for (let i = 1; i < seqs.length; i++) if (!(seqs[i] > seqs[i - 1])) return i;
	return -1;
}

export function firstGap(seqs) {
	for (let i = 1; i < seqs.length; i++) if (seqs[i] !== seqs[i - 1] + 1) return i;
	return -1;
}

export const ensureBinary = () => fs.existsSync(BIN);

/** Rows of /proc/net/tcp and /proc/net/tcp6, split into columns (Linux). */
export function tcpRows() {
	const rows = [];
	for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
		let text = "";
		try {
			text = fs.readFileSync(f, "utf8");
		} catch {
			continue;
		}
		for (const l of text.trim().split("\n").slice(1)) rows.push(l.trim().split(/\s+/));
	}
	return rows;
}

/** The local addresses (hex, as in /proc/net/tcp*) of sockets listening on port. */
export function listenAddrs(port) {
	const hex = ":" + port.toString(16).toUpperCase().padStart(4, "0");
	return tcpRows()
		.filter((c) => c[3] === "0A" && c[1].endsWith(hex))
		.map((c) => c[1].slice(0, -hex.length));
}

const LOOPBACK_HEX = new Set([
	"0100007F", // 127.0.0.1
	"00000000000000000000000001000000", // ::1
	"0000000000000000FFFF00000100007F", // ::ffff:127.0.0.1
]);
export const isLoopbackHex = (h) => LOOPBACK_HEX.has(h);
