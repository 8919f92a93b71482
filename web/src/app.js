// agentgate's web UI: the session list, the chat view with the live subagent tree, the
// queue, permission asks, and a status page — all through the WebSocket JSON-RPC API
// (client.js). Rendering is plain DOM, updated once per animation frame after changes.
import { errorLine, makePerm, makeTranscript, updatePerm, updateTranscript } from "./chat.js";
import { AgentgateClient, defaultUrl, RPC } from "./client.js";
import { ago, atBottom, h, setAttr, setText, syncList } from "./dom.js";
import { Store } from "./state.js";

const $ = (id) => document.getElementById(id);

const client = new AgentgateClient({ url: defaultUrl() });
const store = new Store((method, params) => client.call(method, params));
store.onMine = (...ids) => remember(...ids);
const ui = {
	route: { view: "chat", id: null },
	search: "",
	conn: { status: "connecting" },
	statusPage: null, // {plugins, mcp, health, error}
	toast: null,
};

// Prompts this tab sent, so the queue can say "you" (kept across reloads of the tab).
const MINE_KEY = "agentgate.mine";
try {
	for (const id of JSON.parse(sessionStorage.getItem(MINE_KEY) || "[]")) store.mine.add(id);
} catch {}
function remember(...ids) {
	for (const id of ids) if (id) store.mine.add(id);
	try {
		sessionStorage.setItem(MINE_KEY, JSON.stringify([...store.mine].slice(-500)));
	} catch {}
}

// ---- connection ----

client.on("event", (ev) => store.apply(ev));
client.on("state", (s) => {
	ui.conn = s;
	if (s.status === "waiting" && s.attempt >= 2) checkLogin();
	schedule();
});
client.on("ready", ({ resumed }) => {
	ui.login = false;
	if (!resumed) reload();
	else schedule();
});
client.on("resync", () => reload());
client.on("error", (e) => console.warn("agentgate:", e.message));

let metaLoaded = false;
async function reload() {
	try {
		await store.loadAll();
		if (!metaLoaded) {
			metaLoaded = true;
			await store.loadMeta();
			fillPickers();
		}
		if (ui.route.view === "status") loadStatusPage();
	} catch (e) {
		toast(`Could not load the sessions: ${e.message}`);
	}
	schedule();
}

/** A refused WebSocket says nothing about why: ask over HTTP whether a token is missing. */
async function checkLogin() {
	try {
		const r = await fetch("global/health", { cache: "no-store" });
		ui.login = r.status === 401;
	} catch {
		ui.login = false;
	}
	schedule();
}

// ---- rendering ----

let frame = 0;
function schedule() {
	if (!frame) frame = requestAnimationFrame(render);
}
store.onChange(schedule);
setInterval(schedule, 1000); // "12 s ago", countdowns, stall timers

function ctx() {
	return { store, now: Date.now(), actions, sourceLabel, depth: 0 };
}

function render() {
	frame = 0;
	const c = ctx();
	renderConn();
	renderList(c);
	renderBanner(c);
	if (ui.route.view === "status") renderStatusPage();
	else renderChat(c);
	renderToast();
}

function renderConn() {
	const el = $("conn");
	const s = ui.conn;
	let text = "connecting…";
	let kind = "wait";
	if (s.status === "open") {
		text = "connected";
		kind = "ok";
	} else if (s.status === "waiting") {
		const secs = Math.max(0, Math.ceil(((s.retryAt || Date.now()) - Date.now()) / 1000));
		text = `disconnected — reconnecting${secs ? ` in ${secs} s` : "…"}`;
		kind = "bad";
	}
	if (ui.login) text = "the server needs a token";
	setText(el.label, text);
	el.className = `conn conn-${kind}`;
	el.loginBtn.hidden = !ui.login;
	el.retryBtn.hidden = s.status !== "waiting" || ui.login;
}

function sortedRoots() {
	const q = ui.search.trim().toLowerCase();
	return [...store.sessions.values()]
		.filter((s) => s.info && !s.info.parentID)
		.filter((s) => !q || (s.info.title || "").toLowerCase().includes(q))
		.sort((a, b) => b.info.time.created - a.info.time.created || (a.id < b.id ? 1 : -1));
}

function renderList(c) {
	const list = $("session-list");
	const roots = sortedRoots();
	syncList(
		list,
		roots,
		(s) => s.id,
		(s) => {
			const li = h("li", { class: "session-item" });
			li.link = h("a", { class: "session-link" });
			li.titleEl = h("span", { class: "title" });
			li.badge = h("span", { class: "badge" });
			li.when = h("span", { class: "when" });
			li.link.append(li.titleEl, h("span", { class: "meta" }, li.badge, li.when));
			li.link.addEventListener("click", () => closeDrawer());
			li.rename = h("button", { type: "button", class: "icon", text: "✎", onclick: () => actions.rename(s.id) });
			li.del = h("button", { type: "button", class: "icon", text: "✕", onclick: () => actions.remove(s.id) });
			li.append(li.link, li.rename, li.del);
			return li;
		},
		(li, s) => {
			const title = store.title(s.id);
			const st = store.statusOf(s.id, c.now);
			setAttr(li.link, "href", `#/s/${s.id}`);
			setAttr(li.link, "aria-current", ui.route.id === s.id ? "page" : null);
			setText(li.titleEl, title);
			setText(li.badge, st.label);
			li.badge.className = `badge status-${st.kind}`;
			setAttr(li, "data-status", st.kind);
			setText(li.when, ago(s.info.time.updated || s.info.time.created, c.now));
			setAttr(li.rename, "aria-label", `Rename session ${title}`);
			setAttr(li.del, "aria-label", `Delete session ${title}`);
		},
	);
	$("list-empty").hidden = roots.length > 0;
	setText($("list-empty"), ui.search ? "No session has that in its title." : "No sessions yet.");
}

function openTreeRoot() {
	return ui.route.view === "chat" ? ui.route.id : null;
}

function renderBanner(c) {
	const root = openTreeRoot();
	// asks in the open tree first; others (elsewhere) still shown, they block someone
	const asks = [...store.perms.values()].sort((a, b) => a.seq - b.seq);
	const here = root ? new Set(store.permsIn(root).map((a) => a.id)) : new Set();
	asks.sort((a, b) => (here.has(b.id) ? 1 : 0) - (here.has(a.id) ? 1 : 0));
	const banner = $("banner");
	banner.hidden = asks.length === 0;
	syncList(
		$("banner-list"),
		asks,
		(a) => a.id,
		(a) => {
			const el = makePerm(a, c);
			el.goto = h("a", { class: "small", text: "Show" });
			el.append(el.goto);
			return el;
		},
		(el, a) => {
			updatePerm(el, a, c);
			const sess = store.sessions.get(a.sessionID)?.info;
			setAttr(el.goto, "href", `#/s/${sess?.rootID || a.sessionID}`);
			el.goto.hidden = here.has(a.id);
		},
	);
}

// ---- the chat view ----

let chat = null; // the chat view's elements, made once
function chatView() {
	if (chat) return chat;
	const v = {};
	v.crumbs = h("nav", { class: "crumbs", "aria-label": "Parent sessions" });
	v.title = h("h1", { class: "chat-title", tabindex: "-1" });
	v.badge = h("span", { class: "badge" });
	v.meta = h("span", { class: "chat-meta" });
	v.rename = h("button", { type: "button", class: "small", text: "Rename", onclick: () => actions.rename(ui.route.id) });
	v.del = h("button", { type: "button", class: "small danger", text: "Delete", onclick: () => actions.remove(ui.route.id) });
	v.head = h("header", { class: "chat-head" }, v.crumbs, h("div", { class: "chat-title-row" }, v.title, v.badge, v.meta, h("span", { class: "spacer" }), v.rename, v.del));
	v.scroll = h("div", { class: "transcript", role: "log", "aria-label": "Conversation" });
	v.transcript = makeTranscript();
	v.scroll.append(v.transcript);
	v.live = h("div", { class: "live-status", role: "status", "aria-live": "polite" });
	v.bg = h("section", { class: "bg-tasks", "aria-label": "Background tasks" });
	v.bgList = h("ul");
	v.bg.append(h("h2", { text: "Background tasks" }), v.bgList);
	v.welcome = h(
		"div",
		{ class: "welcome" },
		h("h1", { text: "agentgate" }),
		h("p", { text: "Type a prompt and press Enter to start a new session. Subagents appear live inside the conversation." }),
	);
	v.root = h("div", { class: "chat" }, v.head, v.welcome, v.scroll, v.bg, v.live);
	chat = v;
	return v;
}

function renderChat(c) {
	const view = $("view");
	const v = chatView();
	if (view.firstElementChild !== v.root) view.replaceChildren(v.root);
	const id = ui.route.id;
	const s = id && store.sessions.get(id);
	const known = !!s?.info;
	v.welcome.hidden = !!id;
	v.head.hidden = !known;
	v.scroll.hidden = !id;
	$("abort").disabled = true;
	if (id && !known) {
		setText(v.transcript.empty, store.loadedAt ? "This session does not exist (any more)." : "Loading…");
		v.transcript.empty.hidden = false;
		v.transcript.msgs.replaceChildren();
		v.bg.hidden = true;
		setText(v.live, "");
		renderQueue(null);
		return;
	}
	if (!id) {
		v.bg.hidden = true;
		setText(v.live, "");
		renderQueue(null);
		document.title = "agentgate";
		return;
	}
	const info = s.info;
	const title = store.title(id);
	document.title = `${title} · agentgate`;
	setText(v.title, title);
	const st = store.statusOf(id, c.now);
	setText(v.badge, st.label);
	v.badge.className = `badge status-${st.kind}`;
	setAttr(v.root, "data-status", st.kind);
	setText(v.meta, [info.agent, modelName(info.model), info.directory].filter(Boolean).join(" · "));
	setAttr(v.rename, "aria-label", `Rename session ${title}`);
	setAttr(v.del, "aria-label", `Delete session ${title}`);
	// breadcrumbs: the parents of a child opened full size
	const chain = [];
	for (let p = info.parentID, i = 0; p && i < 16; i++) {
		const ps = store.sessions.get(p);
		chain.unshift({ id: p, title: store.title(p) });
		p = ps?.info?.parentID;
	}
	v.crumbs.hidden = chain.length === 0;
	syncList(
		v.crumbs,
		chain,
		(x) => x.id,
		(x) => h("a", { class: "crumb" }),
		(a, x) => {
			setAttr(a, "href", `#/s/${x.id}`);
			setText(a, `${x.title} ›`);
		},
	);
	const stick = atBottom(v.scroll);
	updateTranscript(v.transcript, id, c);
	if (stick) v.scroll.scrollTop = v.scroll.scrollHeight;
	// background tasks of this session
	const bg = store.children(id).filter((k) => k.info.background);
	v.bg.hidden = bg.length === 0;
	syncList(
		v.bgList,
		bg,
		(k) => k.id,
		(k) => {
			const li = h("li");
			li.link = h("a");
			li.badge = h("span", { class: "badge" });
			li.when = h("span", { class: "when" });
			li.append(li.link, li.badge, li.when);
			return li;
		},
		(li, k) => {
			const kst = store.statusOf(k.id, c.now);
			setAttr(li.link, "href", `#/s/${k.id}`);
			setText(li.link, k.info.title || k.id);
			setText(li.badge, kst.label);
			li.badge.className = `badge status-${kst.kind}`;
			setText(li.when, k.activity ? `last activity ${ago(k.activity, c.now)}` : "");
		},
	);
	setText(v.live, liveLine(id, c.now));
	renderQueue(id);
	$("abort").disabled = s.status.type === "idle" && !store.queue(id).length;
}

function liveLine(id, now) {
	const s = store.sessions.get(id);
	const st = store.statusOf(id, now);
	switch (st.kind) {
		case "retry": {
			const secs = Math.max(0, Math.ceil(((s.status.next || now) - now) / 1000));
			return `Attempt ${s.status.attempt - 1} failed: ${s.status.message || "error"}. Retrying (attempt ${s.status.attempt}) in ${secs} s…`;
		}
		case "stalled":
			return s.status.type === "busy" ? `The model has sent no token for ${Math.floor(store.silentFor(id, now) / 1000)} s.` : errorLine(s.error);
		case "busy":
			return s.status.type === "busy" ? "Working… (Esc aborts)" : "";
		case "perm":
			return "Waiting for a permission answer.";
		default:
			return "";
	}
}

function renderQueue(id) {
	const box = $("queue");
	const q = id ? store.queue(id) : [];
	box.hidden = q.length === 0;
	setText($("queue-title"), `Queued (${q.length})`);
	syncList(
		$("queue-list"),
		q,
		(t) => t.id,
		(t) => {
			const li = h("li", { class: "queued" });
			li.text = h("span", { class: "q-text" });
			li.src = h("span", { class: "q-src" });
			li.cancel = h("button", { type: "button", class: "small", text: "Cancel", onclick: () => actions.cancelTurn(id, t.id) });
			li.append(li.text, li.src, li.cancel);
			return li;
		},
		(li, t) => {
			const preview = t.text ? (t.text.length > 120 ? t.text.slice(0, 117) + "…" : t.text) : "…";
			setText(li.text, preview);
			setText(li.src, `from ${sourceLabel(t, store.sessions.get(id)?.info)}`);
			setAttr(li.cancel, "aria-label", `Cancel queued prompt: ${preview}`);
		},
	);
}

/** "provider/model" from either shape the server uses ({providerID, modelID} or {providerID, id}). */
function modelName(m) {
	if (!m) return "";
	if (typeof m === "string") return m;
	return `${m.providerID}/${m.modelID || m.id}`;
}

/** Who sent a turn, as the queue and the transcript say it. */
function sourceLabel(t, info) {
	if (!t) return "unknown";
	if (store.mine.has(t.id) || store.mine.has(t.userMsg)) return "you";
	const src = t.source || "";
	if (src === "ws") return "another client";
	if (src === "http") return "an HTTP client";
	if (src === "cli") return "the CLI";
	// a child's first prompt is its parent's task call; later ones are background results
	if (src === "task") {
		const turns = info?.parentID ? [...(store.sessions.get(info.id)?.turns.values() || [])] : [];
		const first = turns.filter((x) => x.userMsg).sort((a, b) => (a.userMsg < b.userMsg ? -1 : 1))[0];
		return first && first.id === t.id ? "the parent agent" : "a background task";
	}
	if (src.startsWith("plugin:")) return `plugin ${src.slice(7)}`;
	return src || "unknown";
}

// ---- the status page ----

async function loadStatusPage() {
	const get = (m) => client.call(m, {}).catch((e) => ({ error: e.message }));
	const [health, plugins, mcp, agents] = await Promise.all([get("global.health"), get("plugin.list"), get("mcp.status"), get("agent.list")]);
	ui.statusPage = { health, plugins, mcp, agents, at: Date.now() };
	schedule();
}

function renderStatusPage() {
	const view = $("view");
	const sp = ui.statusPage;
	$("abort").disabled = true;
	const shown = view.firstElementChild?.classList.contains("status-page");
	if (shown && view._sp === sp && view._conn === ui.conn.status) return;
	view._sp = sp;
	view._conn = ui.conn.status;
	document.title = "Status · agentgate";
	const table = (cols, rows) =>
		h("table", {}, h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col", text: c })))), h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))));
	const body = [h("h1", { text: "Server status" })];
	if (!sp) body.push(h("p", { text: "Loading…" }));
	else {
		const hl = sp.health;
		body.push(h("p", { class: "health", text: hl.error ? `Health: ${hl.error}` : `Healthy · version ${hl.version} · connection ${ui.conn.status}` }));
		body.push(h("h2", { text: "Plugins" }));
		if (sp.plugins.error) body.push(h("p", { text: sp.plugins.error }));
		else if (!sp.plugins.length) body.push(h("p", { text: "No plugins loaded." }));
		else
			body.push(
				table(
					["Plugin", "Version", "Hooks", "Tools", "Calls (errors)"],
					sp.plugins.map((p) => [
						h("span", { title: p.path || "", text: `${p.id}${p.description ? ` — ${p.description}` : ""}` }),
						p.version || "",
						(p.hooks || []).join(", "),
						(p.tools || []).join(", "),
						`${p.counters?.hookCalls ?? 0} (${p.counters?.hookErrors ?? 0})`,
					]),
				),
			);
		body.push(h("h2", { text: "MCP servers" }));
		// OpenCode's shape, {name: {status, tools, error?}}; an array from older servers
		const mcp = Array.isArray(sp.mcp) ? sp.mcp
			: sp.mcp && !sp.mcp.error ? Object.entries(sp.mcp).map(([name, st]) => ({ name, ...st })) : [];
		if (sp.mcp.error) body.push(h("p", { text: sp.mcp.error }));
		else if (!mcp.length) body.push(h("p", { text: "No MCP servers." }));
		else
			body.push(
				table(
					["Server", "Status", "Tools", "Error"],
					mcp.map((m) => [m.name || m.id || "", m.status || "", String(Array.isArray(m.tools) ? m.tools.length : (m.tools ?? "")), m.error || ""]),
				),
			);
		body.push(h("h2", { text: "Agents" }));
		const agents = Array.isArray(sp.agents) ? sp.agents : [];
		body.push(table(["Agent", "Mode", "Model", "Description"], agents.map((a) => [a.name, a.mode || "", modelName(a.model), a.description || ""])));
		body.push(h("button", { type: "button", class: "small", text: "Refresh", onclick: () => loadStatusPage() }));
	}
	view.replaceChildren(h("div", { class: "status-page" }, ...body));
	renderQueue(null);
}

// ---- actions ----

const actions = {
	open(id) {
		location.hash = `#/s/${id}`;
	},
	async rename(id) {
		const s = store.sessions.get(id);
		if (!s?.info) return;
		const dlg = $("rename-dialog");
		const input = $("rename-title");
		input.value = store.title(id);
		dlg._id = id;
		dlg.showModal();
		input.select();
	},
	async remove(id) {
		const s = store.sessions.get(id);
		if (!s?.info) return;
		if (!confirm(`Delete the session “${store.title(id)}” and its subagents?`)) return;
		try {
			await client.call("session.delete", { sessionID: id });
			if (ui.route.id === id) location.hash = "#/";
		} catch (e) {
			toast(`Delete failed: ${e.message}`);
		}
	},
	async abort(id) {
		if (!id) return;
		try {
			await client.call("session.abort", { sessionID: id });
			toast("Aborted");
		} catch (e) {
			toast(`Abort failed: ${e.message}`);
		}
	},
	async cancelTurn(sid, turnID) {
		try {
			await client.call("turn.cancel", { sessionID: sid, turnID });
		} catch (e) {
			toast(`Could not cancel: ${e.message}`);
		}
	},
	async replyPermission(requestID, reply, message) {
		const params = { requestID, reply };
		if (message && reply === "reject") params.message = message;
		try {
			await client.call("permission.reply", params);
			store.perms.delete(requestID);
			schedule();
		} catch (e) {
			toast(e.code === RPC.NO_METHOD ? "This server cannot answer permission asks (no permission.reply)." : `Reply failed: ${e.message}`);
		}
	},
};

async function createSession(opts = {}) {
	const params = {};
	for (const k of ["title", "agent", "directory"]) if (opts[k]) params[k] = opts[k];
	if (opts.model) params.model = opts.model;
	const info = await client.call("session.create", params);
	store.apply({ type: "session.updated", properties: { info }, seq: 0 }); // shown now, not at its event
	return info;
}

let sending = false;
async function send() {
	const ta = $("prompt");
	const text = ta.value.trim();
	if (!text || sending) return;
	sending = true;
	ta.value = "";
	autosize();
	try {
		let id = ui.route.view === "chat" ? ui.route.id : null;
		if (!id || !store.sessions.get(id)?.info) {
			const info = await createSession({ agent: $("agent").value, model: $("model").value.trim() });
			id = info.id;
			location.hash = `#/s/${id}`;
		}
		const params = { sessionID: id, text, policy: $("policy").value };
		const agent = $("agent").value;
		const model = $("model").value.trim();
		const cur = store.sessions.get(id)?.info;
		if (agent && agent !== cur?.agent) params.agent = agent;
		if (model && model !== modelName(cur?.model)) params.model = model;
		try {
			const r = await client.call("session.prompt_async", params);
			remember(r.turnID, r.messageID);
		} catch (e) {
			// a slow disk: the server kept the prompt and will run it, but could not say
			// it is on disk within its deadline
			if (e.code !== RPC.UNAVAILABLE || !/\bkept\b/.test(e.rpcMessage || "")) throw e;
			store.expectMine(id, text);
			toast("The server's disk is slow: your prompt is kept and will run.");
		}
		schedule();
	} catch (e) {
		if (!ta.value) ta.value = text; // nothing lost
		autosize();
		toast(e.code === RPC.BUSY ? "The session is busy (policy: reject)." : `Not sent: ${e.message}`);
	} finally {
		sending = false;
		ta.focus();
	}
}

function toast(text) {
	console.warn("agentgate:", text);
	ui.toast = { text, until: Date.now() + 4000 };
	schedule();
}

function renderToast() {
	const el = $("toast");
	const t = ui.toast;
	const show = t && t.until > Date.now();
	el.hidden = !show;
	if (show) setText(el, t.text);
}

// ---- pickers ----

function fillPickers() {
	const primary = store.agents.filter((a) => a.mode !== "subagent");
	for (const sel of [$("agent"), $("new-agent")]) {
		const cur = sel.value;
		sel.replaceChildren(h("option", { value: "", text: "Default agent" }), ...primary.map((a) => h("option", { value: a.name, text: a.name, title: a.description || "" })));
		sel.value = cur;
	}
	$("models").replaceChildren(...store.models.map((m) => h("option", { value: m, label: modelLabel(m) })));
}

/** "GPT-4o · 128k context · $2.5/$10 per M tokens": what the catalog says of a model. */
function modelLabel(id) {
	const m = store.modelInfo.get(id);
	if (!m) return id;
	const k = (n) => (n >= 1000 ? `${Math.round(n / 1000)}k` : String(n));
	const bits = [m.name && m.name !== m.id ? m.name : id];
	if (m.limit?.context) bits.push(`${k(m.limit.context)} context`);
	if (m.cost && (m.cost.input || m.cost.output)) bits.push(`$${m.cost.input}/$${m.cost.output} per M tokens`);
	return bits.join(" · ");
}

// ---- routing, keys, layout ----

function route() {
	const hash = location.hash.replace(/^#\/?/, "");
	const prev = ui.route;
	if (hash === "status") ui.route = { view: "status", id: null };
	else if (hash.startsWith("s/")) ui.route = { view: "chat", id: decodeURIComponent(hash.slice(2)) };
	else ui.route = { view: "chat", id: null };
	if (ui.route.view === "status" && prev.view !== "status") loadStatusPage();
	if (prev.id !== ui.route.id || prev.view !== ui.route.view) {
		const v = chat;
		if (v) {
			v.transcript.msgs.replaceChildren(); // a different session: start clean
			requestAnimationFrame(() => (v.scroll.scrollTop = v.scroll.scrollHeight));
		}
	}
	schedule();
}

function autosize() {
	const ta = $("prompt");
	ta.style.height = "auto";
	ta.style.height = `${Math.min(ta.scrollHeight, 240)}px`;
}

function closeDrawer() {
	document.body.classList.remove("drawer-open");
	setAttr($("menu"), "aria-expanded", "false");
}

function init() {
	const conn = $("conn");
	conn.label = h("span");
	conn.retryBtn = h("button", { type: "button", class: "small", text: "Retry now", hidden: true, onclick: () => client.reconnectNow() });
	conn.loginBtn = h("button", { type: "button", class: "small", text: "Log in", hidden: true, onclick: () => location.reload() });
	conn.append(conn.label, conn.retryBtn, conn.loginBtn);

	const ta = $("prompt");
	ta.addEventListener("keydown", (e) => {
		if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
			e.preventDefault();
			send();
		}
	});
	ta.addEventListener("input", autosize);
	$("composer").addEventListener("submit", (e) => {
		e.preventDefault();
		send();
	});
	$("abort").addEventListener("click", () => actions.abort(ui.route.id));
	document.addEventListener("keydown", (e) => {
		if (e.key !== "Escape" || e.defaultPrevented || document.querySelector("dialog[open]")) return;
		if (document.body.classList.contains("drawer-open")) return closeDrawer();
		const id = ui.route.view === "chat" ? ui.route.id : null;
		if (id && store.sessions.get(id)?.status.type !== "idle") {
			e.preventDefault();
			actions.abort(id);
		}
	});
	$("search").addEventListener("input", (e) => {
		ui.search = e.target.value;
		schedule();
	});
	$("menu").addEventListener("click", () => {
		const open = document.body.classList.toggle("drawer-open");
		setAttr($("menu"), "aria-expanded", open ? "true" : "false");
	});
	$("scrim").addEventListener("click", closeDrawer);

	// new session dialog
	const nd = $("new-dialog");
	$("new-session").addEventListener("click", () => {
		closeDrawer();
		$("new-model").value = $("model").value;
		$("new-agent").value = $("agent").value;
		nd.showModal();
		$("new-title").focus();
	});
	$("new-form").addEventListener("submit", async (e) => {
		e.preventDefault();
		if (e.submitter?.value === "cancel") return nd.close();
		try {
			const info = await createSession({ title: $("new-title").value.trim(), agent: $("new-agent").value, model: $("new-model").value.trim(), directory: $("new-dir").value.trim() });
			nd.close();
			$("new-form").reset();
			location.hash = `#/s/${info.id}`;
			$("prompt").focus();
		} catch (err) {
			setText($("new-error"), err.message);
		}
	});
	// rename dialog
	const rd = $("rename-dialog");
	$("rename-form").addEventListener("submit", async (e) => {
		e.preventDefault();
		if (e.submitter?.value === "cancel") return rd.close();
		const title = $("rename-title").value.trim();
		if (!title) return;
		try {
			const info = await client.call("session.update", { sessionID: rd._id, title });
			store.apply({ type: "session.updated", properties: { info }, seq: 0 });
			rd.close();
		} catch (err) {
			setText($("rename-error"), err.message);
		}
	});

	window.addEventListener("hashchange", route);
	document.addEventListener("visibilitychange", () => {
		if (document.visibilityState === "visible" && ui.conn.status === "waiting") client.reconnectNow();
	});
	route();
	client.subscribe({}); // every session: the list's statuses and the open tree's events
	client.connect();
	ta.focus();
}

init();
// for the console and the browser tests: the client and what the page knows
window.agentgate = { client, store };
