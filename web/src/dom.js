// Small DOM helpers: element construction and keyed list updates (elements are reused
// by key and moved, never rebuilt, so focus, open <details> and scroll positions stay).

export function h(tag, attrs = {}, ...children) {
	const el = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === undefined || v === null || v === false) continue;
		if (k === "class") el.className = v;
		else if (k === "text") el.textContent = v;
		else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
		else if (k in el && typeof v !== "string") el[k] = v;
		else el.setAttribute(k, v === true ? "" : v);
	}
	for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
	return el;
}

/**
 * Makes parent's children the elements for items, in order: existing ones (by key) are
 * kept and updated, new ones made, the rest removed.
 */
export function syncList(parent, items, key, make, update) {
	const old = new Map();
	for (const el of parent.children) if (el._key !== undefined) old.set(el._key, el);
	let ref = parent.firstElementChild;
	for (const it of items) {
		const k = key(it);
		let el = old.get(k);
		if (el) old.delete(k);
		else {
			el = make(it);
			el._key = k;
		}
		update(el, it);
		if (el !== ref) parent.insertBefore(el, ref);
		else ref = el.nextElementSibling;
	}
	for (const el of old.values()) el.remove();
}

export function setText(el, text) {
	if (el.textContent !== text) el.textContent = text;
}

/** Sets an attribute only when it changes (no needless style recalculation). */
export function setAttr(el, name, value) {
	if (value === null || value === undefined || value === false) {
		if (el.hasAttribute(name)) el.removeAttribute(name);
	} else if (el.getAttribute(name) !== String(value)) el.setAttribute(name, String(value));
}

/** True when el is scrolled to (near) its end: new content should keep it there. */
export function atBottom(el) {
	return el.scrollHeight - el.scrollTop - el.clientHeight < 48;
}

export function ago(ms, now = Date.now()) {
	const s = Math.max(0, Math.round((now - ms) / 1000));
	if (s < 60) return `${s} s ago`;
	if (s < 3600) return `${Math.floor(s / 60)} min ago`;
	if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
	return new Date(ms).toLocaleDateString();
}

export function duration(ms) {
	if (ms < 1000) return `${ms} ms`;
	if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
	return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}
