// The transcript of a session: messages, their parts (Markdown text, collapsed reasoning,
// tool cards) and, inside each `task` call's card, a live panel of the child session
// rendered by the same code one level deeper.
import { ago, atBottom, duration, h, setAttr, setText, syncList } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { errorText, isAbort, isStall } from "./state.js";

const SHOWN = new Set(["text", "reasoning", "tool", "file", "patch", "agent", "subtask"]);

/**
 * Fills el (a container made by makeTranscript) with session sid's messages.
 * ctx: {store, now, actions, depth}.
 */
export function makeTranscript(label) {
	const el = h("div", { class: "transcript-inner" });
	el.msgs = h("div", { class: "msgs" });
	el.empty = h("p", { class: "empty", text: "Loading…" });
	el.tail = h("div", { class: "tail" }); // asks without a tool call, live status
	el.append(el.empty, el.msgs, el.tail);
	if (label) setAttr(el, "aria-label", label);
	return el;
}

export function updateTranscript(el, sid, ctx) {
	const { store } = ctx;
	const msgs = store.messages(sid);
	if (!msgs) {
		store.ensureMessages(sid);
		setText(el.empty, "Loading…");
		el.empty.hidden = false;
		return;
	}
	el.empty.hidden = msgs.length > 0 || store.queue(sid).length > 0;
	setText(el.empty, ctx.depth ? "Starting…" : "No messages yet. Type a prompt below.");
	syncList(
		el.msgs,
		msgs,
		(m) => m.info.id,
		(m) => makeMessage(m),
		(node, m) => updateMessage(node, m, sid, ctx),
	);
	// permission asks that name no tool call of this session's transcript
	const calls = new Set();
	for (const m of msgs) for (const p of m.parts.values()) if (p.type === "tool") calls.add(p.callID);
	const loose = [...store.perms.values()].filter((a) => a.sessionID === sid && !calls.has(a.tool?.callID));
	syncList(el.tail, loose, (a) => a.id, (a) => makePerm(a, ctx), (n, a) => updatePerm(n, a, ctx));
}

function makeMessage(m) {
	const role = m.info.role;
	const el = h("article", { class: `msg ${role}`, "data-message-id": m.info.id });
	if (role === "user") {
		el.who = h("div", { class: "who" });
		el.body = h("div", { class: "md user-text" });
		el.append(el.who, el.body);
	} else {
		el.parts = h("div", { class: "parts" });
		el.err = h("div", { class: "msg-error", hidden: true });
		el.append(el.parts, el.err);
	}
	return el;
}

function updateMessage(el, m, sid, ctx) {
	if (m.info.role === "user") {
		if (el._v === m.v) return;
		el._v = m.v;
		const text = [...m.parts.values()].filter((p) => p.type === "text").map((p) => p.text || "").join("\n\n");
		setText(el.body, text);
		const t = m.info.turnID && ctx.store.sessions.get(sid)?.turns.get(m.info.turnID);
		const src = ctx.sourceLabel(t || { id: m.info.turnID, userMsg: m.info.id, source: m.info.source }, ctx.store.sessions.get(sid)?.info);
		setText(el.who, src === "you" ? "You" : `From ${src}`);
		return;
	}
	const parts = [...m.parts.values()]
		.filter((p) => SHOWN.has(p.type) && !(p.type === "text" && !p.text && !p.time?.end && m.info.finish))
		.sort((a, b) => (a.id < b.id ? -1 : 1));
	syncList(el.parts, parts, (p) => p.id, (p) => makePart(p), (n, p) => updatePart(n, p, sid, ctx));
	const err = m.info.error;
	el.err.hidden = !err;
	if (err && el._err !== err) {
		el._err = err;
		el.err.className = `msg-error ${isAbort(err) ? "aborted" : isStall(err) ? "stalled" : "failed"}`;
		setAttr(el.err, "role", isAbort(err) ? null : "alert");
		setText(el.err, errorLine(err));
	}
}

export function errorLine(err) {
	const msg = errorText(err);
	if (isAbort(err)) return msg && msg !== "aborted" && msg !== err.name ? `Aborted: ${msg}` : "Aborted";
	if (isStall(err)) {
		const ms = /for (\d+) ms/.exec(msg);
		return `Stalled${ms ? ` after ${duration(+ms[1])} without a token` : ""}: ${msg}`;
	}
	return `Error${err.name && err.name !== "APIError" ? ` (${err.name})` : ""}: ${msg}`;
}

function makePart(p) {
	if (p.type === "text") return h("div", { class: "part text md" });
	if (p.type === "reasoning") {
		const el = h("details", { class: "part reasoning" });
		el.body = h("div", { class: "md" });
		el.append(h("summary", { text: "Reasoning" }), el.body);
		return el;
	}
	if (p.type === "tool") return makeTool(p);
	return h("div", { class: `part other ${p.type}` });
}

function updatePart(el, p, sid, ctx) {
	if (p.type === "tool") return updateTool(el, p, sid, ctx);
	if (el._v === p.v) return;
	el._v = p.v;
	if (p.type === "text") el.innerHTML = renderMarkdown(p.text);
	else if (p.type === "reasoning") el.body.innerHTML = renderMarkdown(p.text);
	else setText(el, `[${p.type}]`);
}

// ---- tool cards ----

function makeTool(p) {
	const task = p.tool === "task";
	const el = h("details", { class: `part tool-card${task ? " task" : ""}`, open: task });
	el.nameEl = h("span", { class: "tool-name" });
	el.titleEl = h("span", { class: "tool-title" });
	el.badge = h("span", { class: "badge" });
	el.dur = h("span", { class: "dur" });
	el.summary = h("summary", {}, el.nameEl, el.titleEl, el.badge, el.dur);
	el.perm = h("div", { class: "perm-slot" });
	el.child = h("div", { class: "child-slot" });
	el.io = h("div", { class: "tool-io" });
	el.append(el.summary, el.perm, el.child, el.io);
	return el;
}

function updateTool(el, p, sid, ctx) {
	const st = p.state || {};
	const status = st.status || "pending";
	const running = status === "pending" || status === "running";
	const task = p.tool === "task";
	if (el._v !== p.v) {
		el._v = p.v;
		setText(el.nameEl, p.tool);
		const input = st.input || {};
		const title = st.title || input.description || input.command || input.filePath || input.path || input.pattern || "";
		setText(el.titleEl, title);
		setText(el.badge, status);
		el.badge.className = `badge tool-${status}`;
		setAttr(el, "data-status", status);
		setAttr(el.summary, "aria-label", `Tool ${p.tool}${title ? ` (${title})` : ""}: ${status}`);
		fillIO(el.io, p, task);
	}
	const t = st.time || {};
	setText(el.dur, t.start ? duration((t.end || (running ? ctx.now : t.start)) - t.start) : "");
	// asks waiting on this very call
	const asks = [...ctx.store.perms.values()].filter((a) => a.sessionID === sid && a.tool?.callID === p.callID);
	syncList(el.perm, asks, (a) => a.id, (a) => makePerm(a, ctx), (n, a) => updatePerm(n, a, ctx));
	if (asks.length && !el.open) el.open = true;
	if (task) {
		const child = ctx.store.childOfCall(sid, p);
		syncList(el.child, child ? [child] : [], (id) => id, (id) => makePanel(id), (n, id) => updatePanel(n, id, ctx));
	}
}

function fillIO(io, p, task) {
	const st = p.state || {};
	const meta = st.metadata || {};
	io.replaceChildren();
	const sect = (label, body, cls = "") => h("section", { class: `io ${cls}` }, h("h4", { text: label }), body);
	if (!task)
		io.append(sect("Input", h("pre", { class: "code", text: JSON.stringify(st.input || {}, null, 2) })));
	if (typeof meta.diff === "string" && meta.diff) io.append(sect("Diff", diffView(meta.diff), "diff"));
	if (typeof meta.output === "string" && meta.output && p.tool === "bash")
		io.append(sect(`Output${meta.exit !== undefined ? ` (exit ${meta.exit})` : ""}`, h("pre", { class: "code", text: meta.output }), "bash"));
	else if (st.status === "completed" && st.output)
		io.append(sect(task ? "Result" : "Output", h("pre", { class: "code", text: st.output })));
	// an old output the server cleared from what the model is sent (compaction.prune)
	if (st.status === "completed" && st.time?.compacted)
		io.append(h("p", { class: "io-note cleared", text: "Cleared from the model's context: it now sees \"[Old tool result content cleared]\"." }));
	if (st.status === "error") io.append(sect("Error", h("pre", { class: "code error-text", text: st.error || "error" })));
}

function diffView(diff) {
	const pre = h("pre", { class: "code diff-view" });
	for (const line of diff.split("\n")) {
		const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : line.startsWith("@@") ? "hunk" : "";
		pre.append(h("span", { class: cls, text: line + "\n" }));
	}
	return pre;
}

// ---- the child session panel ----

function makePanel(id) {
	const el = h("section", { class: "child-panel", "data-session-id": id });
	el.titleEl = h("span", { class: "child-title" });
	el.badge = h("span", { class: "badge" });
	el.agoEl = h("span", { class: "ago" });
	el.stall = h("span", { class: "badge stall", hidden: true });
	el.openBtn = h("button", { type: "button", class: "small", text: "Open" });
	el.openBtn.addEventListener("click", (e) => {
		e.preventDefault();
		el._open?.();
	});
	el.head = h("header", { class: "child-head" }, el.titleEl, el.badge, el.stall, el.agoEl, el.openBtn);
	el.body = h("div", { class: "child-body" });
	el.transcript = makeTranscript();
	el.body.append(el.transcript);
	el.append(el.head, el.body);
	return el;
}

function updatePanel(el, id, ctx) {
	const s = ctx.store.sessions.get(id);
	const title = ctx.store.title(id);
	el._open = () => ctx.actions.open(id);
	setText(el.titleEl, title);
	setAttr(el, "aria-label", `Subagent: ${title}`);
	setAttr(el.openBtn, "aria-label", `Open subagent ${title} full size`);
	const st = ctx.store.statusOf(id, ctx.now);
	setText(el.badge, st.label);
	el.badge.className = `badge status-${st.kind}`;
	setAttr(el, "data-status", st.kind);
	const silent = ctx.store.silentFor(id, ctx.now);
	el.stall.hidden = !silent;
	if (silent) setText(el.stall, `stalled ${Math.floor(silent / 1000)} s`);
	setText(el.agoEl, s?.activity ? `last activity ${ago(s.activity, ctx.now)}` : "");
	const stick = atBottom(el.body);
	updateTranscript(el.transcript, id, { ...ctx, depth: (ctx.depth || 0) + 1 });
	if (stick) el.body.scrollTop = el.body.scrollHeight;
}

// ---- permission asks ----

export function makePerm(a, ctx) {
	const el = h("div", { class: "perm-ask", role: "group" });
	el.what = h("p", { class: "perm-what" });
	el.msg = h("input", { type: "text", class: "perm-msg", placeholder: "Message (optional, sent with Reject)" });
	const btn = (reply, text) =>
		h("button", {
			type: "button",
			class: reply === "reject" ? "danger small" : "small",
			text,
			onclick: (e) => {
				e.preventDefault();
				ctx.actions.replyPermission(a.id, reply, el.msg.value.trim());
			},
		});
	el.buttons = [btn("once", "Allow once"), btn("always", "Always allow"), btn("reject", "Reject")];
	el.append(el.what, h("div", { class: "perm-actions" }, el.msg, ...el.buttons));
	return el;
}

export function updatePerm(el, a, ctx) {
	const where = ctx.store.sessions.get(a.sessionID)?.info;
	const what = permText(a);
	const place = where && where.parentID ? ` (in subagent “${where.title || a.sessionID}”)` : "";
	setText(el.what, `Permission asked: ${what}${place}`);
	setAttr(el, "aria-label", `Permission request: ${what}`);
	setAttr(el.msg, "aria-label", `Message for the reply to: ${what}`);
	for (const b of el.buttons) setAttr(b, "aria-label", `${b.textContent}: ${what}`);
}

export function permText(a) {
	const pats = Array.isArray(a.patterns) && a.patterns.length ? ` ${a.patterns.join(", ")}` : "";
	return a.title || a.message || `${a.permission || a.type || "permission"}${pats}`;
}
