// What the page knows about the server, built from snapshots and the event stream: the
// sessions and their status, the messages of the sessions on screen, each session's
// turns (to show the queue and who sent what) and the open permission asks. No DOM here.
//
// Events are applied in seq order (the client guarantees it). Full-state events
// (session.updated, message.updated, part.updated) are idempotent; deltas are not, so a
// session's messages carry the seq of the snapshot they came from and ignore events at
// or below it.

/** A session's activity counts as stalled after this long without a token (client side). */
export const SILENCE_MS = 5000;

const TERMINAL = (info) => info.role === "assistant" && (info.error || (info.finish && info.finish !== "tool-calls"));

export class Store {
	constructor(call) {
		this.call = call; // (method, params) → Promise
		this.sessions = new Map(); // id → session record
		this.perms = new Map(); // requestID → permission.asked properties
		this.mine = new Set(); // turnIDs and messageIDs this page sent
		this.listeners = new Set();
		this.agents = [];
		this.models = [];
		this.modelInfo = new Map(); // "provider/model" → the catalog's Model (name, limit, cost)
		this.loadedAt = 0;
	}

	/** A prompt this page sent whose ids the server could not return (a slow disk): its turn is recognised by its text. */
	expectMine(sessionID, text) {
		this.pendingMine = (this.pendingMine || []).filter((x) => x.until > Date.now());
		this.pendingMine.push({ sessionID, text, until: Date.now() + 60000 });
	}

	onChange(fn) {
		this.listeners.add(fn);
		return () => this.listeners.delete(fn);
	}

	changed() {
		for (const fn of this.listeners) fn();
	}

	session(id) {
		let s = this.sessions.get(id);
		if (!s) {
			s = {
				id,
				info: null,
				status: { type: "idle" },
				error: null,
				activity: 0, // last event of any kind
				tokenAt: 0, // last streamed token or part change
				turns: new Map(), // turnID → {id, userMsg, source, created, started, ended, text}
				running: new Set(), // ids of tool parts pending or running
				msgs: null, // {floor, loading, held, map: id → {info, parts: Map, v}}
				v: 0,
			};
			this.sessions.set(id, s);
		}
		return s;
	}

	// ---- loading ----

	/**
	 * Replaces the session list, statuses and permission asks (at start and after a
	 * resync). Each answer is applied the moment it arrives: the events that follow it
	 * are newer and are applied on top; applied later, an answer would undo them.
	 */
	async loadAll() {
		// messages and turns may have moved on while we were away: load them again when shown
		for (const s of this.sessions.values()) {
			s.msgs = null;
			s.turns.clear();
			s.running.clear();
		}
		const listP = this.call("session.list", {});
		const statusP = this.call("session.status", {});
		const permsP = this.call("permission.list", {}).catch(() => []); // none without the permission system
		statusP.catch(() => {}); // awaited below; a failure of the list comes first
		const list = await listP;
		const seen = new Set();
		for (const info of list) {
			seen.add(info.id);
			const s = this.session(info.id);
			s.info = info;
			s.v++;
		}
		for (const id of [...this.sessions.keys()]) if (!seen.has(id)) this.sessions.delete(id);
		const status = await statusP;
		for (const s of this.sessions.values()) s.status = status[s.id] || { type: "idle" };
		const asks = await permsP;
		this.perms.clear();
		for (const a of asks) this.perms.set(a.id, { ...a, seq: 0, at: Date.now() });
		this.loadedAt = Date.now();
		this.changed();
		// the queue of a busy session is in its newest messages
		const busy = list.filter((i) => status[i.id] && !i.parentID).slice(0, 20);
		await Promise.all(busy.map((i) => this.loadMessages(i.id).catch(() => {})));
	}

	async loadMeta() {
		try {
			this.agents = await this.call("agent.list", {});
		} catch {
			this.agents = [];
		}
		this.models = await this.loadModels();
		this.changed();
	}

	/**
	 * The models to offer: the catalog of the connected providers (config.providers,
	 * GET /config/providers' operation; OpenCode's shape) when the server has one, else
	 * the agents' models and the default. What the catalog says of each model is kept in
	 * modelInfo for the picker's labels.
	 */
	async loadModels() {
		const found = new Set();
		this.modelInfo = new Map();
		for (const method of ["config.providers", "provider.list"]) {
			try {
				const r = await this.call(method, {});
				const providers = Array.isArray(r) ? r : r?.providers || r?.all || [];
				for (const p of providers) {
					const models = p.models || {};
					for (const m of Array.isArray(models) ? models : Object.values(models)) {
						const id = `${p.id}/${m.id || m}`;
						found.add(id);
						if (typeof m === "object") this.modelInfo.set(id, m);
					}
				}
				if (found.size) break;
			} catch {
				// no catalog on this server: fall back below
			}
		}
		for (const a of this.agents) if (a.model) found.add(`${a.model.providerID}/${a.model.modelID || a.model.id}`);
		found.add("scripted/demo");
		return [...found].sort();
	}

	/** Loads a session's messages unless they are here or on their way. */
	ensureMessages(id) {
		const s = this.sessions.get(id);
		if (!s || (s.msgs && (s.msgs.loading || s.msgs.map))) return;
		this.loadMessages(id).catch(() => {});
	}

	async loadMessages(id) {
		const s = this.session(id);
		s.msgs = { floor: -1, loading: true, held: [], map: null };
		let snap;
		try {
			snap = await this.call("session.snapshot", { sessionID: id });
		} catch (e) {
			if (s.msgs?.loading) s.msgs = null;
			throw e;
		}
		if (!s.msgs || !s.msgs.loading) return; // dropped (deleted or resynced) meanwhile
		const held = s.msgs.held;
		const map = new Map();
		for (const { info, parts } of snap.messages) {
			const m = { info, parts: new Map(), v: 1 };
			for (const p of parts) m.parts.set(p.id, { ...p, v: 1 });
			map.set(info.id, m);
			this.trackMessage(s, info);
			for (const p of parts) this.trackPart(s, p, m);
		}
		if (snap.session) s.info = snap.session;
		s.msgs = { floor: snap.seq, loading: false, held: null, map };
		// a session whose last turn failed says so in the list after a reload too
		const last = [...map.values()].filter((m) => m.info.role === "assistant").sort((a, b) => (a.info.id < b.info.id ? -1 : 1)).at(-1);
		if (!s.error && last?.info.error && s.status.type === "idle") s.error = { ...last.info.error, at: last.info.time?.completed || 0 };
		for (const ev of held) if (ev.seq > snap.seq) this.applyToMessages(s, ev);
		s.v++;
		this.changed();
	}

	// ---- events ----

	apply(ev) {
		const p = ev.properties || {};
		const sid = ev.sessionID || p.sessionID || p.info?.sessionID;
		const now = Date.now();
		switch (ev.type) {
			case "session.created":
			case "session.updated": {
				const s = this.session(p.info.id);
				const isNew = !s.info;
				s.info = p.info;
				s.activity = now;
				// a child of a session on screen is followed from its first event
				if (isNew && !s.msgs && p.info.parentID && this.sessions.get(p.info.parentID)?.msgs?.map)
					s.msgs = { floor: ev.seq, loading: false, held: null, map: new Map() };
				s.v++;
				break;
			}
			case "session.deleted": {
				const id = p.info?.id || sid;
				this.sessions.delete(id);
				for (const [rid, ask] of this.perms) if (ask.sessionID === id) this.perms.delete(rid);
				break;
			}
			case "session.status": {
				const s = this.session(sid);
				s.status = p.status || { type: "idle" };
				if (s.status.type === "busy" && !s.busySince) {
					s.busySince = now;
					s.error = null;
				}
				if (s.status.type === "idle") {
					s.busySince = 0;
					s.running.clear();
				}
				s.activity = now;
				s.tokenAt = now;
				s.v++;
				break;
			}
			case "session.idle": {
				const s = this.session(sid);
				s.status = { type: "idle" };
				s.busySince = 0;
				s.v++;
				break;
			}
			case "session.error": {
				const s = this.session(sid);
				s.error = { ...(p.error || {}), at: now };
				s.v++;
				break;
			}
			case "message.updated":
			case "message.part.updated":
			case "message.part.delta": {
				const s = this.session(sid);
				s.activity = now;
				if (ev.type !== "message.updated") s.tokenAt = now;
				if (ev.type === "message.updated") this.trackMessage(s, p.info);
				if (ev.type === "message.part.updated") this.trackPart(s, p.part, null);
				this.applyToMessages(s, ev);
				s.v++;
				break;
			}
			case "message.removed":
			case "message.part.removed": {
				const s = this.session(sid);
				this.applyToMessages(s, ev);
				s.v++;
				break;
			}
			case "permission.asked": {
				this.perms.set(p.id, { ...p, seq: ev.seq, at: now });
				const s = this.session(sid);
				s.v++;
				break;
			}
			case "permission.replied": {
				this.perms.delete(p.requestID || p.permissionID || p.id);
				const s = this.session(sid);
				s.v++;
				break;
			}
			default:
				if (sid && this.sessions.has(sid)) this.session(sid).activity = now;
				return;
		}
		this.changed();
	}

	applyToMessages(s, ev) {
		const ms = s.msgs;
		if (!ms) return;
		if (ms.loading) {
			ms.held.push(ev);
			return;
		}
		if (ev.seq <= ms.floor) return;
		const p = ev.properties;
		if (ev.type === "message.updated") {
			const m = ms.map.get(p.info.id);
			if (m) {
				m.info = p.info;
				m.v++;
			} else ms.map.set(p.info.id, { info: p.info, parts: new Map(), v: 1 });
		} else if (ev.type === "message.part.updated") {
			const m = this.messageFor(ms, p.part.messageID, s.id);
			const old = m.parts.get(p.part.id);
			m.parts.set(p.part.id, { ...p.part, v: (old?.v || 0) + 1 });
			m.v++;
		} else if (ev.type === "message.removed") {
			ms.map.delete(p.messageID);
		} else if (ev.type === "message.part.removed") {
			const m = ms.map.get(p.messageID);
			if (m && m.parts.delete(p.partID)) m.v++;
		} else if (ev.type === "message.part.delta") {
			const m = this.messageFor(ms, p.messageID, s.id);
			let part = m.parts.get(p.partID);
			if (!part) {
				part = { id: p.partID, messageID: p.messageID, sessionID: s.id, type: "text", text: "", v: 0 };
				m.parts.set(p.partID, part);
			}
			const field = p.field || "text";
			part[field] = (part[field] || "") + (p.delta || "");
			part.v++;
			m.v++;
		}
	}

	messageFor(ms, id, sessionID) {
		let m = ms.map.get(id);
		if (!m) {
			// a part before its message (cannot happen in order, but a lost frame must not throw)
			m = { info: { id, sessionID, role: "assistant", time: { created: Date.now() } }, parts: new Map(), v: 1 };
			ms.map.set(id, m);
		}
		return m;
	}

	/** The turn ledger as the page sees it: who sent each turn, whether it started or ended. */
	trackMessage(s, info) {
		if (!info.turnID) return;
		let t = s.turns.get(info.turnID);
		if (!t) {
			t = { id: info.turnID, userMsg: null, source: null, created: info.time?.created || 0, started: false, ended: false, text: "" };
			s.turns.set(info.turnID, t);
		}
		if (info.role === "user") {
			t.userMsg = info.id;
			t.source = info.source || t.source;
			t.created = info.time?.created || t.created;
		} else {
			t.started = true;
			if (TERMINAL(info)) t.ended = true;
		}
	}

	trackPart(s, part, m) {
		if (part.type === "tool") {
			const st = part.state?.status;
			if (st === "pending" || st === "running") s.running.add(part.id);
			else s.running.delete(part.id);
		} else if (part.type === "text") {
			for (const t of s.turns.values())
				if (t.userMsg === part.messageID) {
					t.text = part.text || "";
					const i = (this.pendingMine || []).findIndex((x) => x.sessionID === s.id && x.text === t.text);
					if (i >= 0 && !this.mine.has(t.id)) {
						this.pendingMine.splice(i, 1);
						this.mine.add(t.id);
						this.onMine?.(t.id, t.userMsg);
					}
					break;
				}
		}
	}

	// ---- questions the views ask ----

	/** Prompts waiting behind the running turn, oldest first. */
	queue(id) {
		const s = this.sessions.get(id);
		if (!s) return [];
		return [...s.turns.values()].filter((t) => t.userMsg && !t.started && !t.ended).sort((a, b) => a.created - b.created || (a.id < b.id ? -1 : 1));
	}

	/** The messages of a loaded session, oldest first, without prompts still queued. */
	messages(id) {
		const s = this.sessions.get(id);
		if (!s?.msgs?.map) return null;
		const queued = new Set(this.queue(id).map((t) => t.userMsg));
		const list = [...s.msgs.map.values()].filter((m) => !queued.has(m.info.id)).sort((a, b) => (a.info.id < b.info.id ? -1 : a.info.id > b.info.id ? 1 : 0));
		return hideReverted(list, s.info?.revert);
	}

	/**
	 * The name to show: the title, or, while it is still the server's default
	 * ("New session - <id>"), the first line of the session's first prompt when known.
	 */
	title(id) {
		const s = this.sessions.get(id);
		const title = s?.info?.title || id;
		if (!s || !/^New session - /.test(title)) return title;
		const first = [...s.turns.values()].filter((t) => t.userMsg && t.text).sort((a, b) => (a.userMsg < b.userMsg ? -1 : 1))[0];
		const line = first?.text.split("\n").find((l) => l.trim())?.trim();
		return line ? (line.length > 60 ? line.slice(0, 57) + "…" : line) : title;
	}

	children(id) {
		const out = [];
		for (const s of this.sessions.values()) if (s.info?.parentID === id) out.push(s);
		return out.sort((a, b) => (a.id < b.id ? -1 : 1));
	}

	/** The child session a task call started: by its metadata, or the child's parentToolCallID. */
	childOfCall(sessionID, part) {
		const meta = part.state?.metadata?.sessionId;
		if (meta) return meta;
		for (const s of this.sessions.values())
			if (s.info?.parentID === sessionID && s.info.parentToolCallID === part.callID) return s.id;
		return null;
	}

	/** Permission asks of a session and its descendants. */
	permsIn(id) {
		const out = [];
		for (const ask of this.perms.values()) {
			let cur = ask.sessionID;
			for (let depth = 0; cur && depth < 32; depth++) {
				if (cur === id) {
					out.push(ask);
					break;
				}
				cur = this.sessions.get(cur)?.info?.parentID;
			}
		}
		return out.sort((a, b) => a.seq - b.seq);
	}

	/** A busy session waiting on nothing it shows (no tool, child, ask) for SILENCE_MS. */
	silentFor(id, now = Date.now()) {
		const s = this.sessions.get(id);
		if (!s || s.status.type !== "busy" || s.running.size) return 0;
		if (this.permsIn(id).length) return 0;
		const since = Math.max(s.tokenAt, s.busySince || 0, this.loadedAt);
		const d = now - since;
		return d >= SILENCE_MS ? d : 0;
	}

	/** The status word the session list and panels show, with its detail. */
	statusOf(id, now = Date.now()) {
		const s = this.sessions.get(id);
		if (!s) return { kind: "gone", label: "deleted" };
		const q = this.queue(id).length;
		if (this.permsIn(id).length) return { kind: "perm", label: "waiting for permission", queued: q };
		if (s.status.type === "retry") {
			const secs = Math.max(0, Math.ceil(((s.status.next || now) - now) / 1000));
			return { kind: "retry", label: `retrying (attempt ${s.status.attempt})`, detail: `next in ${secs} s`, queued: q };
		}
		if (s.status.type === "busy") {
			const silent = this.silentFor(id, now);
			if (silent) return { kind: "stalled", label: "stalled", detail: `no tokens for ${Math.floor(silent / 1000)} s`, queued: q };
			return { kind: "busy", label: q ? `busy · queued ${q}` : "busy", queued: q };
		}
		if (s.error && !isAbort(s.error)) return { kind: "error", label: isStall(s.error) ? "stalled" : "error", detail: errorText(s.error) };
		if (q) return { kind: "busy", label: `queued ${q}`, queued: q };
		return { kind: "idle", label: "idle" };
	}
}

export function errorText(err) {
	if (!err) return "";
	return err.data?.message || err.message || err.name || "error";
}

export const isStall = (err) => /LLM stream stalled/.test(errorText(err));
export const isAbort = (err) => err?.name === "MessageAbortedError" || /abort/i.test(err?.name || "");

/**
 * A rewound session (Session.revert) shows its conversation up to the revert point, as
 * OpenCode's clients do: the messages from there on (by turn, then id) are hidden, and
 * inside the point's message, with a partID, the parts from that one on. The next prompt
 * deletes them on the server (message.removed).
 */
function hideReverted(list, revert) {
	if (!revert?.messageID) return list;
	const key = (m) => [m.info.turnID || "", m.info.id];
	const at = [revert.turnID || "", revert.messageID];
	const before = (m) => {
		const k = key(m);
		return k[0] < at[0] || (k[0] === at[0] && k[1] < at[1]);
	};
	const out = list.filter(before);
	const point = list.find((m) => m.info.id === revert.messageID);
	if (point && revert.partID) {
		const parts = new Map([...point.parts].filter(([pid]) => pid < revert.partID));
		out.push({ ...point, parts });
	}
	return out;
}
