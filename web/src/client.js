// agentgate's WebSocket JSON-RPC client: requests with ids and timeouts, one event
// subscription that survives reconnects (resumed from the last seq the client saw),
// reconnect with backoff, and a `resync` signal when the server cannot replay what was
// missed. No dependencies: it runs in browsers and in Node (pass `WebSocket`).
//
//   const c = new AgentgateClient({ url: "ws://127.0.0.1:4096/ws" });
//   c.on("ready", ({ resumed }) => { if (!resumed) reloadEverything(); });
//   c.on("event", (ev) => apply(ev));          // every event, in seq order, once
//   c.on("resync", () => reloadEverything());  // replay impossible: state is stale
//   c.on("state", (s) => show(s.status));      // connecting | open | waiting | closed
//   c.subscribe({ descendants: true });         // {sessionID?, descendants?}
//   c.connect();
//   const s = await c.call("session.create", {});
//
// Events: "ready" {resumed, seq} once subscribed after each connect; "event" EVENT;
// "resync" {reason, since, last}; "state" {status, attempt, retryIn, error}; "error" Error.

export class RpcError extends Error {
	constructor(method, err) {
		super(`${method}: ${err.message} (${err.code})`);
		this.name = "RpcError";
		this.method = method;
		this.code = err.code;
		this.rpcMessage = err.message;
		this.data = err.data;
	}
}

/** JSON-RPC error codes the server uses (docs/API.md). */
export const RPC = Object.freeze({
	PARSE: -32700,
	INVALID: -32600,
	NO_METHOD: -32601,
	PARAMS: -32602,
	INTERNAL: -32603,
	NOT_FOUND: -32004,
	BUSY: -32009,
	LIMIT: -32029,
	UNAVAILABLE: -32003,
});

const OPEN = 1;

export class AgentgateClient {
	/**
	 * url: the /ws URL. WebSocket: the constructor (globalThis.WebSocket by default).
	 * timeout: per request, ms. backoff: {min, max, factor} for reconnect delays (ms);
	 * jitter spreads clients that lost the same server. idleProbeMs: after this long
	 * without a frame, a global.health request checks the connection (a dead network
	 * is otherwise noticed only by TCP, minutes later).
	 */
	constructor({
		url,
		WebSocket = globalThis.WebSocket,
		timeout = 30000,
		backoff = {},
		idleProbeMs = 45000,
		since = null,
	} = {}) {
		if (!url) throw new Error("AgentgateClient: url is required");
		this.url = url;
		this.WebSocket = WebSocket;
		this.timeout = timeout;
		this.backoff = { min: 250, max: 10000, factor: 2, ...backoff };
		this.idleProbeMs = idleProbeMs;
		this.lastSeq = since; // the seq of the last event delivered; null before any
		this.subscription = null; // {sessionID?, descendants?} or null: not subscribed
		this.status = "closed";
		this.attempt = 0;
		this._ws = null;
		this._nextId = 1;
		this._pending = new Map(); // id → {method, resolve, reject, timer}
		this._queue = []; // requests made while not connected: sent on open
		this._handlers = new Map();
		this._want = false; // connect() called and not close()d
		this._retryTimer = null;
		this._probeTimer = null;
		this._lastFrame = 0;
		this._subscribing = false;
		this._held = []; // events that arrived before the subscribe answer
	}

	on(type, fn) {
		if (!this._handlers.has(type)) this._handlers.set(type, new Set());
		this._handlers.get(type).add(fn);
		return () => this._handlers.get(type)?.delete(fn);
	}

	_emit(type, arg) {
		for (const fn of [...(this._handlers.get(type) || [])]) {
			try {
				fn(arg);
			} catch (e) {
				if (type !== "error") this._emit("error", e);
				else setTimeout(() => { throw e; });
			}
		}
	}

	_setState(status, extra = {}) {
		this.status = status;
		this._emit("state", { status, attempt: this.attempt, ...extra });
	}

	get connected() {
		return !!this._ws && this._ws.readyState === OPEN && this.status === "open";
	}

	/** Opens the connection and keeps it open until close(). */
	connect() {
		this._want = true;
		if (!this._ws && !this._retryTimer) this._open();
		return this;
	}

	/** Closes for good: pending and queued requests fail. */
	close() {
		this._want = false;
		clearTimeout(this._retryTimer);
		this._retryTimer = null;
		this._stopProbe();
		const ws = this._ws;
		this._ws = null;
		if (ws) {
			ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
			try {
				ws.close(1000, "client closed");
			} catch {}
		}
		this._failAll(new Error("client closed"));
		for (const q of this._queue.splice(0)) {
			clearTimeout(q.timer);
			q.reject(new Error(`${q.method}: client closed`));
		}
		this._setState("closed");
	}

	/** Drops the connection now and reconnects at once (e.g. the page became visible). */
	reconnectNow() {
		if (!this._want) return;
		clearTimeout(this._retryTimer);
		this._retryTimer = null;
		if (this._ws) this._ws.close(4000, "reconnect");
		else this._open();
	}

	/**
	 * Sets the event subscription ({sessionID?, descendants?}; null: none). It is made
	 * again, from the last seq seen, after every reconnect. Changing the filter resets
	 * nothing: events keep their global seq.
	 */
	subscribe(filter = {}) {
		this.subscription = { ...filter };
		if (this.connected) this._subscribe();
	}

	unsubscribe() {
		this.subscription = null;
		if (this.connected) this.call("unsubscribe").catch(() => {});
	}

	/**
	 * A request. Made while disconnected, it waits (within its timeout) for the next
	 * connection. Rejects with RpcError for a JSON-RPC error, with Error on a timeout
	 * or when the connection drops before the answer (the server may or may not have
	 * acted on it: prompts carry a messageID so that a retry can tell).
	 */
	call(method, params, { timeout = this.timeout } = {}) {
		return new Promise((resolve, reject) => {
			const req = { method, params, resolve, reject, timer: null, id: 0 };
			req.timer = setTimeout(() => {
				const i = this._queue.indexOf(req);
				if (i >= 0) this._queue.splice(i, 1);
				this._pending.delete(req.id);
				reject(new Error(`${method}: no response within ${timeout} ms`));
			}, timeout);
			if (this.connected || (method === "subscribe" && this._ws?.readyState === OPEN)) this._send(req);
			else if (!this._want) {
				clearTimeout(req.timer);
				reject(new Error(`${method}: not connected`));
			} else this._queue.push(req);
		});
	}

	_send(req) {
		req.id = this._nextId++;
		this._pending.set(req.id, req);
		const msg = { jsonrpc: "2.0", id: req.id, method: req.method };
		if (req.params !== undefined) msg.params = req.params;
		try {
			this._ws.send(JSON.stringify(msg));
		} catch (e) {
			this._pending.delete(req.id);
			clearTimeout(req.timer);
			req.reject(e);
		}
	}

	_failAll(err) {
		for (const [, p] of this._pending) {
			clearTimeout(p.timer);
			p.reject(new Error(`${p.method}: ${err.message}`));
		}
		this._pending.clear();
	}

	_open() {
		this._retryTimer = null;
		this._setState("connecting");
		let ws;
		try {
			ws = new this.WebSocket(this.url);
		} catch (e) {
			this._emit("error", e);
			this._scheduleRetry(e.message);
			return;
		}
		this._ws = ws;
		ws.onopen = () => {
			this._lastFrame = Date.now();
			this._startProbe();
			if (this.subscription) this._subscribe(true);
			else this._ready(false, null);
		};
		ws.onmessage = (m) => this._frame(m.data);
		ws.onerror = () => {}; // the close that follows says what happened
		ws.onclose = (ev) => {
			if (this._ws !== ws) return;
			this._ws = null;
			this._stopProbe();
			this._subscribing = false;
			this._held = [];
			const why = ev.reason || `code ${ev.code}`;
			this._failAll(new Error(`connection lost (${why})`));
			if (this._want) this._scheduleRetry(why);
			else this._setState("closed");
		};
	}

	_scheduleRetry(why) {
		const { min, max, factor } = this.backoff;
		const base = Math.min(max, min * Math.pow(factor, this.attempt));
		const delay = Math.round(base / 2 + Math.random() * (base / 2));
		this.attempt++;
		this._setState("waiting", { retryIn: delay, retryAt: Date.now() + delay, error: why });
		this._retryTimer = setTimeout(() => this._open(), delay);
	}

	/** Subscribes (again): from the last seq seen, so the server replays what was missed. */
	async _subscribe(onConnect = false) {
		const params = { ...this.subscription };
		const since = this.lastSeq;
		if (since !== null) params.since = since;
		this._subscribing = true;
		this._held = [];
		let res;
		try {
			res = await this.call("subscribe", params);
		} catch (e) {
			this._subscribing = false;
			this._emit("error", e);
			if (this._ws) this._ws.close(4001, "subscribe failed");
			return;
		}
		this._subscribing = false;
		const last = typeof res?.seq === "number" ? res.seq : null;
		// A server whose log is behind what this client saw is another world (a wiped
		// data directory): nothing can be replayed, start over.
		const behind = since !== null && last !== null && last < since;
		if ((since === null || behind) && last !== null) this.lastSeq = last;
		if (onConnect) this._ready(since !== null && !behind, last);
		else if (behind) this._emit("resync", { reason: "the server is behind the client", since, last });
		const held = this._held;
		this._held = [];
		for (const ev of held) this._deliver(ev);
	}

	_ready(resumed, seq) {
		this.attempt = 0;
		this._setState("open");
		this._emit("ready", { resumed, seq });
		for (const q of this._queue.splice(0)) this._send(q);
	}

	_frame(data) {
		this._lastFrame = Date.now();
		let msg;
		try {
			msg = JSON.parse(data);
		} catch {
			this._emit("error", new Error("a frame that is not JSON"));
			return;
		}
		if (msg && msg.method === "event" && msg.id === undefined) {
			if (this._subscribing) this._held.push(msg.params);
			else this._deliver(msg.params);
			return;
		}
		const p = msg && this._pending.get(msg.id);
		if (!p) return;
		this._pending.delete(msg.id);
		clearTimeout(p.timer);
		if (msg.error) p.reject(new RpcError(p.method, msg.error));
		else p.resolve(msg.result);
	}

	_deliver(ev) {
		if (!ev || typeof ev !== "object") return;
		if (ev.type === "resync") {
			const pr = ev.properties || {};
			if (typeof pr.last === "number") this.lastSeq = pr.last;
			this._emit("resync", { reason: "the server no longer holds the missed events", ...pr });
			return;
		}
		if (typeof ev.seq === "number") {
			if (this.lastSeq !== null && ev.seq <= this.lastSeq) return; // already delivered
			this.lastSeq = ev.seq;
		}
		this._emit("event", ev);
	}

	_startProbe() {
		this._stopProbe();
		if (!this.idleProbeMs) return;
		const tick = () => {
			this._probeTimer = setTimeout(tick, Math.max(1000, this.idleProbeMs / 3));
			if (!this.connected || Date.now() - this._lastFrame < this.idleProbeMs) return;
			this._lastFrame = Date.now();
			const ws = this._ws;
			this.call("global.health", undefined, { timeout: 10000 }).catch(() => {
				if (this._ws === ws && ws) ws.close(4002, "no answer to a health probe");
			});
		};
		this._probeTimer = setTimeout(tick, Math.max(1000, this.idleProbeMs / 3));
	}

	_stopProbe() {
		clearTimeout(this._probeTimer);
		this._probeTimer = null;
	}
}

/** The /ws URL of the page's own server. */
export function defaultUrl(loc = globalThis.location) {
	return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}
