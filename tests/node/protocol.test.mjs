// Small protocol defects: each bad request gets the right status and a JSON error
// {name, message, data:{message}} naming the problem, instead of a silent close, an
// HTML page or a wrong answer; and the token need not be on the command line.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { startServer, api, rawHttp, runBin, createSession, deferred, withTimeout, pollUntil } from "./lib.mjs";

const T = { timeout: 60_000 };

function assertError(r, status, name, re, label) {
	assert.equal(r.status, status, `${label}: status (body ${r.text})`);
	assert.equal(r.json?.name, name, `${label}: name`);
	assert.match(r.json?.message ?? "", re, `${label}: message`);
	assert.equal(r.json?.data?.message, r.json?.message, `${label}: data.message`);
}

/** Sends raw bytes; resolves with the parsed response head and body once the server closes or answers. */
function rawBytes(srv, text, timeout = 5000) {
	return new Promise((resolve, reject) => {
		const s = net.connect(srv.port, "127.0.0.1");
		let buf = "";
		const done = deferred();
		s.on("data", (d) => {
			buf += d;
			const i = buf.indexOf("\r\n\r\n");
			const len = /content-length: *(\d+)/i.exec(buf.slice(0, i))?.[1];
			if (i >= 0 && len !== undefined && buf.length >= i + 4 + Number(len)) done.resolve();
		});
		s.on("end", () => done.resolve());
		s.on("error", () => done.resolve());
		s.write(text);
		withTimeout(done.promise, timeout, `answer to ${JSON.stringify(text.slice(0, 40))}`)
			.then(() => {
				s.destroy();
				const [head, ...rest] = buf.split("\r\n\r\n");
				const status = Number(/^HTTP\/1\.\d (\d+)/.exec(head)?.[1] ?? 0);
				const text = rest.join("\r\n\r\n");
				let json;
				try {
					json = JSON.parse(text);
				} catch {}
				resolve({ status, head, text, json });
			}, reject);
	});
}

test("an empty id segment (what /session/%00 decodes to) is a 400 naming it, never the session list", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	await createSession(srv);
	for (const p of ["/session/%00", "/session/", "/session/%00/message"]) {
		const r = await rawHttp(srv, { path: p });
		assertError(r, 400, "BadRequest", /id|NUL/, p);
	}
	assert.equal((await rawHttp(srv, { path: "/session" })).json.length, 1, "the list itself still works");
});

test("an unknown method gets a JSON 501 naming it; a known one a route lacks gets 405", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const r = await rawBytes(srv, `BREW /session HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`);
	assertError(r, 501, "NotImplemented", /BREW/, "BREW");
	const put = await rawHttp(srv, { method: "PUT", path: "/session", headers: { "content-type": "application/json" }, body: "{}" });
	assertError(put, 405, "MethodNotAllowed", /PUT/, "PUT /session");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200);
});

test("a request line over the path limit gets 414 as JSON; a head up to 16 KiB is read", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const long = await rawHttp(srv, { path: "/session/" + "x".repeat(3000) });
	assertError(long, 414, "URITooLong", /path/, "3000-byte path");
	const bigHeaders = await rawHttp(srv, { path: "/session", headers: { "x-filler": "y".repeat(12000) } });
	assert.equal(bigHeaders.status, 200, "a 12 KB header is within the head limit");
});

test("a failing DELETE names the problem", T, async (t) => {
	const control = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-faults-")), "faults");
	fs.writeFileSync(control, "");
	const srv = await startServer({ env: { AGENTGATE_STORE_FAULTS: control } });
	t.after(() => srv.stop());
	const s = await createSession(srv);
	fs.writeFileSync(control, "full");
	const r = await api(srv, "DELETE", `/session/${s.id}`);
	fs.writeFileSync(control, "");
	assert.ok(r.status >= 500, `status ${r.status}`);
	assert.ok(r.json?.message, `a message: ${r.text}`);
	assert.match(r.json.message, /deletion|full/);
	// let the store catch up before the server stops (stopping with a failed batch still
	// held is the store's business, not this test's)
	await pollUntil(async () => (await api(srv, "DELETE", `/session/${s.id}`)).status === 200, { label: "the store writes again" });
});

test("--token-file reads the token from a file (not visible in /proc/PID/cmdline)", T, async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-token-"));
	const file = path.join(dir, "token");
	fs.writeFileSync(file, "fil3d-s3cret\n");
	const srv = await startServer({ args: ["--token-file", file], token: "fil3d-s3cret" });
	t.after(() => srv.stop());
	assert.equal((await api(srv, "GET", "/session")).status, 200, "the file's token (newline stripped) works");
	const anon = await fetch(srv.url + "/session");
	assert.equal(anon.status, 401, "and is required");
	const cmdline = fs.readFileSync(`/proc/${srv.proc.pid}/cmdline`, "utf8");
	assert.ok(!cmdline.includes("fil3d-s3cret"), "the token is not on the command line");
	const missing = await runBin(["serve", "--port", "0", "--token-file", path.join(dir, "nope")]);
	assert.equal(missing.code, 2);
	assert.match(missing.stderr, /--token-file .*nope/);
	fs.writeFileSync(path.join(dir, "empty"), "\n");
	const empty = await runBin(["serve", "--port", "0", "--token-file", path.join(dir, "empty")]);
	assert.equal(empty.code, 2);
	assert.match(empty.stderr, /empty/);
});
