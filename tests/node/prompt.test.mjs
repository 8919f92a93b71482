// Honest prompt options: every field of OpenCode's prompt body (SessionPromptData, v1
// and v2) is honoured or refused with a 400 naming it — noReply, tools, system, agent,
// model, messageID, format, variant, and text, file, agent and subtask parts — through
// the real server with the official SDK; attachments reach the scripted provider and the
// mock HTTP provider (tests/provider/mockllm) in OpenAI's and Anthropic's wire formats;
// session.create({directory}) as the v2 SDK sends it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createOpencodeClient as createV1 } from "@opencode-ai/sdk";
import { createOpencodeClient as createV2 } from "@opencode-ai/sdk/v2";
import { HERE, startServer, api, apiOk, sseSubscribe, wsConnect, withTimeout, pollUntil } from "./lib.mjs";

const T = { timeout: 120_000 };
const MOCK = path.resolve(HERE, process.env.MOCKLLM_BIN || "../../build/tests/mockllm");

// A 1x1 PNG, and a minimal PDF: real magic bytes, which the server checks.
const PNG = Buffer.from(
	"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
	"base64",
);
const PDF = Buffer.from("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n");
const dataUrl = (mime, buf) => `data:${mime};base64,${buf.toString("base64")}`;

/** mockllm on an ephemeral port; exits when the test process's pipe closes. */
async function startMock() {
	const proc = spawn(MOCK, ["--exit-on-stdin-eof"], { stdio: ["pipe", "pipe", "inherit"] });
	const port = await withTimeout(
		new Promise((resolve, reject) => {
			let out = "";
			proc.stdout.on("data", (d) => {
				out += d;
				const m = /PORT (\d+)/.exec(out);
				if (m) resolve(Number(m[1]));
			});
			proc.on("exit", (code) => reject(new Error(`mockllm exited (${code})`)));
		}),
		10000,
		"mockllm PORT",
	);
	const url = `http://127.0.0.1:${port}`;
	return {
		port,
		url,
		stats: async () => (await fetch(`${url}/_stats`)).json(),
		/** The last request body the mock got for model (its wire format). */
		last: async (model) => (await (await fetch(`${url}/_stats`)).json()).last_by_model[model]?.body,
		stop: () =>
			new Promise((resolve) => {
				if (proc.exitCode !== null) return resolve();
				proc.on("exit", resolve);
				proc.stdin.end();
				setTimeout(() => proc.kill("SIGKILL"), 3000).unref();
			}),
	};
}

const VISION = { modalities: { input: ["text", "image", "pdf"] } };

/** A server whose providers are the mock: openai/* and anthropic/* reach it. */
async function startWithMock(t, extra = {}) {
	const mock = await startMock();
	t.after(() => mock.stop());
	const ws = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-prompt-ws-"));
	t.after(() => fsp.rm(ws, { recursive: true, force: true }));
	const config = {
		workspace: ws,
		providers: {
			scripted: { pace_ms: 2 },
			openai: {
				base_url: `${mock.url}/v1`,
				api_key: "k",
				models: { normal: VISION, tools: VISION, "normal@text": { modalities: { input: ["text"] } } },
			},
			anthropic: { base_url: mock.url, api_key: "k", models: { normal: VISION } },
		},
		retry: { base_ms: 10, max: 0 },
		...extra,
	};
	const srv = await startServer({ config });
	t.after(() => srv.stop());
	return { srv, mock, ws };
}

/** Both SDK call styles for a prompt body: v1 ({path, body}) and v2 (flat). */
const SDK = {
	v1: (srv) => {
		const c = createV1({ baseUrl: srv.url });
		return {
			c,
			create: (body = {}) => c.session.create({ body }),
			prompt: (id, body) => c.session.prompt({ path: { id }, body }),
			promptAsync: (id, body) => c.session.promptAsync({ path: { id }, body }),
			messages: (id) => c.session.messages({ path: { id } }),
		};
	},
	v2: (srv) => {
		const c = createV2({ baseUrl: srv.url });
		return {
			c,
			create: (body = {}) => c.session.create(body),
			prompt: (id, body) => c.session.prompt({ sessionID: id, ...body }),
			promptAsync: (id, body) => c.session.promptAsync({ sessionID: id, ...body }),
			messages: (id) => c.session.messages({ sessionID: id }),
		};
	},
};

function ok(r, label, status = 200) {
	assert.equal(r.error, undefined, `${label}: SDK error ${JSON.stringify(r.error)}`);
	assert.equal(r.response?.status, status, `${label}: HTTP status`);
	return r.data;
}

/** A 400 whose message contains each of the words. */
function refused(r, label, ...words) {
	assert.equal(r.response?.status, 400, `${label}: HTTP 400 (got ${r.response?.status}: ${JSON.stringify(r.error ?? r.data)})`);
	const msg = r.error?.data?.message ?? r.error?.message ?? JSON.stringify(r.error);
	for (const w of words) assert.ok(msg.includes(w), `${label}: the error names ${w}: ${msg}`);
	return msg;
}

/** The same through plain fetch (api()). */
function refusedHttp(r, label, ...words) {
	assert.equal(r.status, 400, `${label}: HTTP 400 (got ${r.status}: ${r.text.slice(0, 300)})`);
	for (const w of words) assert.ok(r.json.message.includes(w), `${label}: the error names ${w}: ${r.json.message}`);
	return r.json.message;
}

const text = (t) => ({ type: "text", text: t });
const textOf = (parts) => parts.filter((p) => p.type === "text").map((p) => p.text).join("\n");
const userMessages = (msgs) => msgs.filter((m) => m.info.role === "user");

// ---------------------------------------------------------------------------------
// noReply

for (const style of ["v1", "v2"]) {
	test(`SDK ${style} noReply: the user message is kept and announced, no turn runs, the answer is the user message; the next turn's model sees it`, T, async (t) => {
		const { srv, mock } = await startWithMock(t, { model: "openai/normal" });
		const c = SDK[style](srv);
		const s = ok(await c.create({ title: "noReply" }), "create");
		const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
		t.after(() => sse.close());

		const r = ok(await c.prompt(s.id, { noReply: true, parts: [text("remember: the code word is teal")] }), "prompt noReply");
		assert.equal(r.info.role, "user", "noReply answers with the user message, as OpenCode does");
		assert.equal(r.info.sessionID, s.id);
		assert.equal(r.info.turnID, undefined, "a noReply message has no turn");
		assert.equal(r.info.source, "http");
		assert.equal(textOf(r.parts), "remember: the code word is teal");
		await sse.waitFor((e) => e.type === "message.updated" && e.properties.info.id === r.info.id, { label: "message.updated of the noReply message" });
		await sse.waitFor((e) => e.type === "message.part.updated" && e.properties.part.messageID === r.info.id, { label: "its part published" });

		// promptAsync with noReply: 204 once durable, and nothing runs either
		ok(await c.promptAsync(s.id, { noReply: true, parts: [text("and the animal is an otter")] }), "promptAsync noReply", 204);
		const msgs = ok(await c.messages(s.id), "messages");
		assert.deepEqual(msgs.map((m) => m.info.role), ["user", "user"], "two user messages, no reply");
		assert.equal((await mock.stats()).total, 0, "the provider was never called");
		assert.ok(!sse.events.some((e) => e.type === "session.status" && e.properties.status.type === "busy"), "the session never went busy");

		// the next prompt's turn shows both notes to the model, before its own text
		const reply = ok(await c.prompt(s.id, { parts: [text("what is the code word?")] }), "prompt");
		assert.equal(reply.info.role, "assistant");
		const body = await mock.last("normal");
		const users = body.messages.filter((m) => m.role === "user").map((m) => m.content);
		assert.deepEqual(users, ["remember: the code word is teal", "and the animal is an otter", "what is the code word?"]);
		const after = ok(await c.messages(s.id), "messages after");
		assert.equal(after.filter((m) => m.info.role === "assistant").length, 1, "one reply: to the prompt that had a turn");
		assert.equal(after.at(-1).info.parentID, after.at(-2).info.id, "the reply answers the prompt, not a note");
	});
}

test("noReply over WebSocket: session.prompt answers {messageID} without a turn, with wait the user message; noReply with a dedupeKey or a subtask is refused", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const s = await apiOk(srv, "POST", "/session", {});
	const ws = await wsConnect(srv.wsUrl);
	t.after(() => ws.close());
	const ack = await ws.call("session.prompt", { sessionID: s.id, noReply: true, parts: [text("note one")] });
	assert.equal(ack.turnID, undefined);
	assert.match(ack.messageID, /^msg_/);
	const waited = await ws.call("session.prompt", { sessionID: s.id, noReply: true, wait: true, text: "note two" });
	assert.equal(waited.info.role, "user");
	assert.equal(textOf(waited.parts), "note two");
	const bad = await api(srv, "POST", `/session/${s.id}/message`, { noReply: true, dedupeKey: "k", parts: [text("x")] });
	refusedHttp(bad, "noReply + dedupeKey", "noReply", "dedupeKey");
	const bad2 = await api(srv, "POST", `/session/${s.id}/message`, { noReply: true, parts: [{ type: "subtask", prompt: "p", description: "d", agent: "general" }] });
	refusedHttp(bad2, "noReply + subtask", "noReply", "subtask");
	const msgs = await apiOk(srv, "GET", `/session/${s.id}/message`);
	assert.deepEqual(msgs.map((m) => textOf(m.parts)), ["note one", "note two"], "the refused ones left nothing");
});

// ---------------------------------------------------------------------------------
// tools

for (const style of ["v1", "v2"]) {
	test(`SDK ${style} tools {"echo": false}: the scripted model's echo call is refused by name and echo never runs`, T, async (t) => {
		const srv = await startServer();
		t.after(() => srv.stop());
		const c = SDK[style](srv);
		const s = ok(await c.create({}), "create");
		const r = ok(await c.prompt(s.id, { tools: { echo: false }, parts: [text("echo secret-words")] }), "prompt");
		const msgs = ok(await c.messages(s.id), "messages");
		const tool = msgs.flatMap((m) => m.parts).find((p) => p.type === "tool");
		assert.equal(tool.tool, "echo");
		assert.equal(tool.state.status, "error", "the call was refused");
		assert.match(tool.state.error, /"echo" is turned off for this prompt/);
		assert.equal(tool.state.output, undefined, "echo never ran");
		assert.ok(!textOf(r.parts).includes("The echo tool returned: secret-words"), "the model never got echo's output");
		assert.deepEqual(msgs[0].info.tools, { echo: false }, "the user message keeps its tools (OpenCode's UserMessage.tools)");
		// the next prompt without tools runs echo again: the option was this turn's only
		ok(await c.prompt(s.id, { parts: [text("echo again")] }), "prompt 2");
		const after = ok(await c.messages(s.id), "messages 2");
		const tool2 = after.flatMap((m) => m.parts).filter((p) => p.type === "tool").at(-1);
		assert.equal(tool2.state.status, "completed");
		assert.equal(tool2.state.output, "again");
	});
}

test("tools: a turned-off tool is not offered to the model (the provider's request), a turned-on one is offered to an agent without it; unknown tools and non-booleans are refused", T, async (t) => {
	const { srv, mock } = await startWithMock(t, {
		model: "openai/tools",
		agent: { narrow: { mode: "primary", tools: ["sleep"] } },
	});
	const s = await apiOk(srv, "POST", "/session", {});
	const r = await apiOk(srv, "POST", `/session/${s.id}/message`, { tools: { echo: false }, parts: [text("go")] });
	assert.equal(r.info.finish, "stop");
	const first = (await mock.stats()).last_by_model.tools.body;
	const offered = (first.tools ?? []).map((x) => x.function.name);
	assert.ok(offered.includes("sleep") && !offered.includes("echo"), `echo not offered: ${offered}`);
	const msgs = await apiOk(srv, "GET", `/session/${s.id}/message`);
	const tool = msgs.flatMap((m) => m.parts).find((p) => p.type === "tool");
	assert.equal(tool.state.status, "error", "the mock called echo anyway: refused");
	assert.match(tool.state.error, /"echo" is turned off/);

	// agent narrow has only sleep; tools {echo: true} turns echo on for this turn
	const s2 = await apiOk(srv, "POST", "/session", { agent: "narrow" });
	await apiOk(srv, "POST", `/session/${s2.id}/message`, { tools: { echo: true }, parts: [text("go")] });
	const body = (await mock.stats()).last_by_model.tools.body;
	const steps = (await apiOk(srv, "GET", `/session/${s2.id}/message`)).flatMap((m) => m.parts).filter((p) => p.type === "tool");
	assert.equal(steps[0].state.status, "completed", "echo ran for the narrow agent");
	assert.ok(body.tools.map((x) => x.function.name).includes("echo"));

	// wildcards: {"*": false, "sleep": true}: only sleep
	const s3 = await apiOk(srv, "POST", "/session", {});
	await apiOk(srv, "POST", `/session/${s3.id}/message`, { tools: { "*": false, sleep: true }, parts: [text("go")] });
	const b3 = (await mock.stats()).last_by_model.tools.body;
	assert.deepEqual(b3.tools.map((x) => x.function.name), ["sleep"], "only sleep offered");
	assert.ok(!b3.messages.some((m) => m.role === "tool" && m.content === "from mock"), "echo did not run");

	refusedHttp(await api(srv, "POST", `/session/${s.id}/message`, { tools: { nosuch: false }, parts: [text("x")] }), "unknown tool", "tools.nosuch");
	refusedHttp(await api(srv, "POST", `/session/${s.id}/message`, { tools: { echo: "no" }, parts: [text("x")] }), "non-boolean", "tools.echo", "true or false");
	refusedHttp(await api(srv, "POST", `/session/${s.id}/message`, { tools: ["echo"], parts: [text("x")] }), "not an object", "tools");
});

// ---------------------------------------------------------------------------------
// system, agent, model, messageID, format, variant

for (const style of ["v1", "v2"]) {
	test(`SDK ${style} system: the extra system prompt reaches the provider's request (OpenAI and Anthropic) after the agent's, for that turn only; it is kept in the user message`, T, async (t) => {
		const { srv, mock } = await startWithMock(t, { agent: { build: { prompt: "AGENT PROMPT" } } });
		const c = SDK[style](srv);
		const s = ok(await c.create({}), "create");
		const bodies = {};
		for (const providerID of ["openai", "anthropic"]) {
			ok(await c.prompt(s.id, { model: { providerID, modelID: "normal" }, system: `SYS-${providerID}`, parts: [text("hi")] }), `prompt ${providerID}`);
			bodies[providerID] = (await mock.stats()).last.body;
		}
		const sysOpenAI = bodies.openai.messages[0];
		assert.equal(sysOpenAI.role, "system");
		assert.equal(sysOpenAI.content, "AGENT PROMPT\n\nSYS-openai");
		assert.equal(bodies.anthropic.system, "AGENT PROMPT\n\nSYS-anthropic");
		// a prompt without system: the agent's alone
		ok(await c.prompt(s.id, { model: { providerID: "anthropic", modelID: "normal" }, parts: [text("plain")] }), "prompt plain");
		assert.equal((await mock.stats()).last.body.system, "AGENT PROMPT");
		const users = userMessages(ok(await c.messages(s.id), "messages"));
		assert.equal(users[0].info.system, "SYS-openai", "UserMessage.system");
		assert.equal(users.at(-1).info.system, undefined);
	});
}

test("agent, model and messageID are honoured; an unknown agent or model, a used messageID, format json_schema, a variant and an unknown field are 400s naming them", T, async (t) => {
	const { srv, mock } = await startWithMock(t);
	const v2 = createV2({ baseUrl: srv.url });
	const v1 = createV1({ baseUrl: srv.url });
	const s = ok(await v2.session.create({}), "create");
	const mid = "msg_" + "0".repeat(12) + "ClientChosen01";
	const r = ok(
		await v1.session.prompt({ path: { id: s.id }, body: { agent: "general", model: { providerID: "anthropic", modelID: "normal" }, messageID: mid, parts: [text("hi")] } }),
		"v1 prompt",
	);
	assert.equal(r.info.providerID, "anthropic");
	assert.equal(r.info.modelID, "normal");
	assert.equal(r.info.agent, "general");
	assert.equal(r.info.parentID, mid, "the user message has the client's id");
	assert.equal((await mock.stats()).last.path, "/v1/messages");
	const msgs = ok(await v2.session.messages({ sessionID: s.id }), "messages");
	assert.equal(msgs[0].info.id, mid);
	assert.deepEqual(msgs[0].info.model, { providerID: "anthropic", modelID: "normal" });
	assert.equal(msgs[0].info.agent, "general");

	refused(await v2.session.prompt({ sessionID: s.id, messageID: mid, parts: [text("x")] }), "messageID reused", mid, "already used");
	// a part's id (the TUI sends its own): kept, and not taken twice
	const pid = "prt_" + "0".repeat(12) + "ClientPart0001";
	ok(await v2.session.prompt({ sessionID: s.id, noReply: true, parts: [{ id: pid, type: "text", text: "with my id" }] }), "part id");
	const kept = ok(await v2.session.messages({ sessionID: s.id }), "messages").flatMap((m) => m.parts).find((p) => p.id === pid);
	assert.equal(kept?.text, "with my id");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ id: pid, type: "text", text: "again" }] }), "part id reused", "parts[0].id", "already used");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ id: "p1", type: "text", text: "x" }] }), "part id malformed", "parts[0].id", "prt_");
	refused(await v2.session.prompt({ sessionID: s.id, agent: "nobody", parts: [text("x")] }), "unknown agent", "nobody");
	refused(await v2.session.prompt({ sessionID: s.id, model: { providerID: "scripted", modelID: "nope" }, parts: [text("x")] }), "unknown model", "scripted/nope");
	refused(await v2.session.prompt({ sessionID: s.id, format: { type: "json_schema", schema: {} }, parts: [text("x")] }), "format", "format", "json_schema");
	refused(await v2.session.prompt({ sessionID: s.id, variant: "high", parts: [text("x")] }), "variant", "variant", "high");
	ok(await v2.session.prompt({ sessionID: s.id, format: { type: "text" }, parts: [text("x")] }), "format text is what agentgate does");
	refusedHttp(await api(srv, "POST", `/session/${s.id}/message`, { parts: [text("x")], noreply: true }), "a typo", "noreply");
	refusedHttp(await api(srv, "POST", `/session/${s.id}/message`, { parts: [text("x")], system: 7 }), "system type", "system");
});

// ---------------------------------------------------------------------------------
// files

/** The user content of the last request body in each wire format. */
function lastUserOpenAI(body) {
	return body.messages.filter((m) => m.role === "user").at(-1).content;
}
function lastUserAnthropic(body) {
	return body.messages.filter((m) => m.role === "user").at(-1).content;
}

test("file parts: an image, a PDF and text files (data: URLs base64 and %-encoded, a local path, a file:// URL) are stored as FileParts and reach OpenAI and Anthropic in their wire formats", T, async (t) => {
	const { srv, mock, ws } = await startWithMock(t);
	await fsp.writeFile(path.join(ws, "notes.md"), "# Notes\nline two\nline three\n");
	await fsp.mkdir(path.join(ws, "src"));
	await fsp.writeFile(path.join(ws, "src", "main.c"), "int main(void) { return 0; }\n");
	const v2 = createV2({ baseUrl: srv.url });
	const s = ok(await v2.session.create({}), "create");
	const sse = await sseSubscribe(srv, `?sessionID=${s.id}`);
	t.after(() => sse.close());
	const parts = [
		text("look at these"),
		{ type: "file", mime: "image/png", filename: "dot.png", url: dataUrl("image/png", PNG) },
		{ type: "file", mime: "application/pdf", filename: "doc.pdf", url: dataUrl("application/pdf", PDF) },
		{ type: "file", mime: "text/plain", filename: "pct.txt", url: "data:text/plain,caf%C3%A9%20au%20lait" },
		{ type: "file", mime: "text/markdown", url: "notes.md" },
		{ type: "file", mime: "text/x-c", filename: "main.c", url: `file://${ws}/src/main.c`, source: { type: "file", path: "src/main.c", text: { value: "@src/main.c", start: 0, end: 11 } } },
	];
	const bodies = {};
	for (const providerID of ["openai", "anthropic"]) {
		ok(await v2.session.prompt({ sessionID: s.id, model: { providerID, modelID: "normal" }, parts }), `prompt ${providerID}`);
		bodies[providerID] = (await mock.stats()).last.body;
	}
	// OpenAI: text, image_url, file (PDF), inlined text
	const oa = lastUserOpenAI(bodies.openai);
	assert.ok(Array.isArray(oa), "a content array");
	assert.deepEqual(oa[0], { type: "text", text: "look at these" });
	assert.deepEqual(oa[1], { type: "image_url", image_url: { url: dataUrl("image/png", PNG) } });
	assert.deepEqual(oa[2], { type: "file", file: { filename: "doc.pdf", file_data: dataUrl("application/pdf", PDF) } });
	assert.equal(oa[3].type, "text");
	assert.match(oa[3].text, /^<file name="pct.txt" type="text\/plain">\ncafé au lait\n<\/file>$/);
	assert.match(oa[4].text, /<file name="notes.md" type="text\/markdown">\n# Notes\nline two\nline three\n<\/file>/);
	assert.match(oa[5].text, /<file name="main.c" type="text\/x-c">\nint main\(void\)/);
	// Anthropic: text block, image and document blocks with base64 sources, text blocks
	const an = lastUserAnthropic(bodies.anthropic);
	assert.deepEqual(an[0], { type: "text", text: "look at these" });
	assert.deepEqual(an[1], { type: "image", source: { type: "base64", media_type: "image/png", data: PNG.toString("base64") } });
	assert.deepEqual(an[2], { type: "document", source: { type: "base64", media_type: "application/pdf", data: PDF.toString("base64") }, title: "doc.pdf" });
	assert.match(an[3].text, /café au lait/);
	assert.match(an[5].text, /int main/);

	// stored as OpenCode FileParts, listed, published
	const msgs = ok(await v2.session.messages({ sessionID: s.id }), "messages");
	const files = msgs[0].parts.filter((p) => p.type === "file");
	assert.equal(files.length, 5);
	for (const f of files) {
		assert.match(f.id, /^prt_/);
		assert.equal(f.sessionID, s.id);
		assert.equal(f.messageID, msgs[0].info.id);
		assert.match(f.url, /^data:[a-z]+\/[a-z0-9.+-]+;base64,/);
	}
	assert.deepEqual(files.map((f) => [f.mime, f.filename]), [
		["image/png", "dot.png"],
		["application/pdf", "doc.pdf"],
		["text/plain", "pct.txt"],
		["text/markdown", "notes.md"],
		["text/x-c", "main.c"],
	]);
	assert.equal(Buffer.from(files[3].url.split(",")[1], "base64").toString(), "# Notes\nline two\nline three\n", "the local file's content, read at the prompt");
	assert.deepEqual(files[4].source, parts[5].source, "the client's source is kept");
	const ev = await sse.waitFor((e) => e.type === "message.part.updated" && e.properties.part.type === "file", { label: "a file part published" });
	assert.equal(ev.properties.part.url, dataUrl("image/png", PNG));
});

test("file parts: a file-only prompt is accepted; the scripted model describes what it got ({{files}}); a line range of a file:// URL is honoured", T, async (t) => {
	const ws = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-prompt-ws-"));
	t.after(() => fsp.rm(ws, { recursive: true, force: true }));
	await fsp.writeFile(path.join(ws, "five.txt"), "one\ntwo\nthree\nfour\nfive\n");
	const srv = await startServer({ config: { workspace: ws, providers: { scripted: { pace_ms: 1 } } } });
	t.after(() => srv.stop());
	for (const style of ["v1", "v2"]) {
		const c = SDK[style](srv);
		const s = ok(await c.create({}), "create");
		const r = ok(await c.prompt(s.id, { parts: [{ type: "file", mime: "image/png", filename: "dot.png", url: dataUrl("image/png", PNG) }] }), `${style} file-only prompt`);
		assert.equal(textOf(r.parts), `I received dot.png (image/png, ${PNG.length} bytes).`);
	}
	const s = await apiOk(srv, "POST", "/session", {});
	const r = await apiOk(srv, "POST", `/session/${s.id}/message`, { parts: [{ type: "file", mime: "text/plain", url: `file://${ws}/five.txt?start=2&end=3` }] });
	assert.equal(textOf(r.parts), "I received five.txt (text/plain, 10 bytes).", "lines 2-3: \"two\\nthree\\n\"");
	const msgs = await apiOk(srv, "GET", `/session/${s.id}/message`);
	assert.equal(Buffer.from(msgs[0].parts[0].url.split(",")[1], "base64").toString(), "two\nthree\n");
});

test("file parts refused with the reason: a model without image or PDF input, an unknown part type, a URL to fetch, a type no model takes, bytes that are not what the mime says", T, async (t) => {
	const { srv, mock } = await startWithMock(t, { agent: { named: { mode: "primary", model: "openai/normal@named" } } });
	const v2 = createV2({ baseUrl: srv.url });
	const s = ok(await v2.session.create({}), "create");
	const img = { type: "file", mime: "image/png", filename: "dot.png", url: dataUrl("image/png", PNG) };
	const pdf = { type: "file", mime: "application/pdf", filename: "doc.pdf", url: dataUrl("application/pdf", PDF) };
	const textOnly = { providerID: "openai", modelID: "normal@text" };
	refused(await v2.session.prompt({ sessionID: s.id, model: textOnly, parts: [text("see"), img] }), "image to a text model", "parts[1]", "openai/normal@text", "images");
	refused(await v2.session.prompt({ sessionID: s.id, model: textOnly, parts: [pdf] }), "PDF to a text model", "parts[0]", "PDFs");
	// a text file goes to any model, inlined
	ok(await v2.session.prompt({ sessionID: s.id, model: textOnly, parts: [{ type: "file", mime: "text/plain", url: "data:text/plain,plain%20words" }] }), "text to a text model");
	assert.match(JSON.stringify(lastUserOpenAI((await mock.stats()).last.body)), /plain words/);
	// a model the catalog only names (an agent's): capabilities unknown, the provider decides
	ok(await v2.session.prompt({ sessionID: s.id, agent: "named", parts: [img] }), "image to a named-only model");
	assert.equal(lastUserOpenAI((await mock.stats()).last_by_model["normal@named"].body)[0].type, "image_url");

	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "mystery", foo: 1 }] }), "unknown part type", "parts[0]", "mystery");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "file", mime: "image/png", url: "https://example.com/x.png" }] }), "http URL", "parts[0].url", "https", "not fetched");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "file", mime: "audio/mpeg", url: "data:audio/mpeg;base64,AAAA" }] }), "audio", "audio/mpeg", "images");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "file", mime: "image/png", url: "data:image/png;base64,aGVsbG8=" }] }), "not a png", "image/png", "bytes");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "file", mime: "text/plain", url: dataUrl("text/plain", Buffer.from([0xff, 0xfe, 0, 1])) }] }), "binary as text", "UTF-8");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "file", url: "data:,x" }] }), "no mime", "parts[0].mime");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "text", text: "x", colour: "red" }] }), "unknown field of a part", "parts[0].colour");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [] }), "no parts", "no text, file, agent or subtask");
	const after = ok(await v2.session.messages({ sessionID: s.id }), "messages");
	assert.equal(userMessages(after).length, 2, "only the two accepted prompts were kept");
});

test("file parts, hostile: malformed data: URLs, paths with .. and symbolic links out of the directory, a FIFO, a file over limits.max_file_bytes — each a 400 naming it, the server up", T, async (t) => {
	const { srv, ws } = await startWithMock(t, { limits: { max_file_bytes: 4096 } });
	const outside = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-outside-"));
	t.after(() => fsp.rm(outside, { recursive: true, force: true }));
	await fsp.writeFile(path.join(outside, "secret.txt"), "top secret\n");
	await fsp.symlink(path.join(outside, "secret.txt"), path.join(ws, "link.txt"));
	await fsp.symlink(outside, path.join(ws, "linkdir"));
	await fsp.mkdir(path.join(ws, "in"));
	await fsp.writeFile(path.join(ws, "in", "ok.txt"), "fine\n");
	await fsp.symlink("../in/ok.txt", path.join(ws, "in", "inner-link.txt"));
	await fsp.writeFile(path.join(ws, "big.txt"), "x".repeat(5000));
	assert.equal(spawnSync("mkfifo", [path.join(ws, "pipe")]).status, 0);
	const s = await apiOk(srv, "POST", "/session", {});
	const send = (url, mime = "text/plain") => api(srv, "POST", `/session/${s.id}/message`, { parts: [{ type: "file", mime, url }] });

	const cases = [
		["data:text/plain;base64,@@@@", "base64"],
		["data:text/plain;base64,QUJD=A==", "base64"],
		["data:text/plain;base64,A", "base64"],
		["data:text/plain", "','"],
		["data:text/plain,%zz", "%"],
		["data:text/plain,%4", "%"],
		[`data:text/plain;base64,${Buffer.alloc(5000, 65).toString("base64")}`, "over"],
		["../" + path.basename(outside) + "/secret.txt", "outside"],
		[path.join(outside, "secret.txt"), "outside"],
		[`file://${ws}/../${path.basename(outside)}/secret.txt`, "outside"],
		["in/../../" + path.basename(outside) + "/secret.txt", "outside"],
		["link.txt", "leads out"],
		["linkdir/secret.txt", "leads out"],
		[`file://${ws}/link.txt`, "leads out"],
		["pipe", "not a regular file"],
		["nothere.txt", "No such file"],
		["big.txt", "limits.max_file_bytes"],
		["file://otherhost/etc/passwd", "host"],
		["file:///etc/passwd%00.txt", "%00"],
		["", "url"],
	];
	for (const [url, word] of cases) {
		const r = await send(url);
		const msg = refusedHttp(r, `url ${url.slice(0, 60)}`, word);
		assert.ok(!msg.includes("top secret"), "nothing of the file leaks");
	}
	// a data: URL past the request body's limit never reaches the parser
	const huge = await api(srv, "POST", `/session/${s.id}/message`, { parts: [{ type: "file", mime: "text/plain", url: dataUrl("text/plain", Buffer.alloc(1 << 20, 67)) }] });
	assert.equal(huge.status, 413, huge.text);
	// two files within the limit each but over it together
	const half = dataUrl("text/plain", Buffer.alloc(3000, 66));
	refusedHttp(await api(srv, "POST", `/session/${s.id}/message`, { parts: [{ type: "file", mime: "text/plain", url: half }, { type: "file", mime: "text/plain", url: half }] }), "together", "parts[1]", "limits.max_file_bytes");
	// what is inside, through a link that stays inside, is fine
	const okr = await send("in/inner-link.txt");
	assert.equal(okr.status, 200, okr.text);
	const dir = await send("in", "application/x-directory");
	assert.equal(dir.status, 200, dir.text);
	const msgs = await apiOk(srv, "GET", `/session/${s.id}/message`);
	const listing = msgs.filter((m) => m.info.role === "user").at(-1).parts[0];
	assert.equal(listing.mime, "application/x-directory");
	assert.equal(Buffer.from(listing.url.split(",")[1], "base64").toString(), "inner-link.txt\nok.txt\n");
	assert.equal((await api(srv, "GET", "/global/health")).status, 200);
	assert.equal(userMessages(msgs).length, 2, "only the two accepted prompts were kept");
});

// ---------------------------------------------------------------------------------
// agent and subtask parts

test("agent parts are kept as AgentParts with OpenCode's instruction to the model; subtask parts run the task tool before the model answers", T, async (t) => {
	const { srv, mock } = await startWithMock(t, { model: "openai/normal" });
	const v2 = createV2({ baseUrl: srv.url });
	const s = ok(await v2.session.create({}), "create");
	ok(await v2.session.prompt({ sessionID: s.id, parts: [text("summarise the repo"), { type: "agent", name: "general", source: { value: "@general", start: 0, end: 8 } }] }), "agent part");
	const body = (await mock.stats()).last.body;
	assert.equal(body.messages.at(-1).content, "summarise the repo\n\n Use the above message and context to generate a prompt and call the task tool with subagent: general");
	let msgs = ok(await v2.session.messages({ sessionID: s.id }), "messages");
	const ap = msgs[0].parts.find((p) => p.type === "agent");
	assert.deepEqual({ name: ap.name, source: ap.source }, { name: "general", source: { value: "@general", start: 0, end: 8 } });
	assert.equal(msgs[0].parts.find((p) => p.synthetic)?.type, "text");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "agent", name: "ghost" }] }), "unknown agent part", "parts[0].name", "ghost");

	// a subtask: the task tool runs (a child session on the scripted model), then the model answers
	const r = ok(
		await v2.session.prompt({ sessionID: s.id, parts: [{ type: "subtask", prompt: "echo from-the-child", description: "child work", agent: "general" }] }),
		"subtask part",
	);
	assert.equal(r.info.role, "assistant");
	msgs = ok(await v2.session.messages({ sessionID: s.id }), "messages");
	const task = msgs.flatMap((m) => m.parts).filter((p) => p.type === "tool" && p.tool === "task").at(-1);
	assert.equal(task.state.status, "completed", JSON.stringify(task.state));
	assert.deepEqual(task.state.input, { description: "child work", prompt: "echo from-the-child", subagent_type: "general" });
	const kids = ok(await v2.session.children({ sessionID: s.id }), "children");
	assert.equal(kids.length, 1);
	const followUp = (await mock.stats()).last.body.messages;
	assert.ok(followUp.some((m) => m.role === "tool" && m.content === task.state.output), "the model got the task's result");
	assert.ok(followUp.some((m) => m.role === "user" && m.content === "The following tool was executed by the user"));

	refused(await v2.session.prompt({ sessionID: s.id, tools: { task: false }, parts: [{ type: "subtask", prompt: "p", description: "d", agent: "general" }] }), "task turned off", "task");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "subtask", prompt: "p", description: "d", agent: "general", model: { providerID: "openai", modelID: "normal" } }] }), "subtask model", "parts[0].model");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "subtask", prompt: "p", description: "d", agent: "nobody" }] }), "subtask agent", "parts[0].agent", "nobody");
	refused(await v2.session.prompt({ sessionID: s.id, parts: [{ type: "subtask", description: "d", agent: "general" }] }), "subtask prompt", "parts[0].prompt");
});

// ---------------------------------------------------------------------------------
// session.create({directory})

test("session.create({directory}): the v2 SDK's query parameter and a client's x-opencode-directory header are honoured; a directory that does not exist is a 400 naming it", T, async (t) => {
	const srv = await startServer();
	t.after(() => srv.stop());
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-dir-"));
	const other = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-dir b-"));
	t.after(() => fsp.rm(dir, { recursive: true, force: true }));
	t.after(() => fsp.rm(other, { recursive: true, force: true }));
	const v2 = createV2({ baseUrl: srv.url });
	const a = ok(await v2.session.create({ directory: dir }), "v2 create({directory})");
	assert.equal(a.directory, dir);
	const v1 = createV1({ baseUrl: srv.url });
	const b = ok(await v1.session.create({ query: { directory: dir } }), "v1 create({query:{directory}})");
	assert.equal(b.directory, dir);
	// a client made for a directory sends it as a %-encoded header on every POST
	const scoped = createV2({ baseUrl: srv.url, directory: other });
	const c = ok(await scoped.session.create({}), "scoped create");
	assert.equal(c.directory, other);
	const d = ok(await scoped.session.create({ directory: dir }), "the query over the header");
	assert.equal(d.directory, dir);
	const scoped1 = createV1({ baseUrl: srv.url, directory: other });
	assert.equal(ok(await scoped1.session.create({}), "v1 scoped create").directory, other);
	// the header names a directory of the client's machine: one not here is passed over
	const remote = createV2({ baseUrl: srv.url, directory: "/no/such/dir/on/this/machine" });
	const e = ok(await remote.session.create({}), "a remote client's directory");
	assert.notEqual(e.directory, "/no/such/dir/on/this/machine");
	assert.equal(e.directory, (await apiOk(srv, "POST", "/session", {})).directory, "the gateway's workspace");
	const missing = path.join(dir, "no", "such");
	refused(await v2.session.create({ directory: missing }), "missing directory", missing, "does not exist");
	await fsp.writeFile(path.join(dir, "plain"), "x");
	refused(await v2.session.create({ directory: path.join(dir, "plain") }), "a file", "is not a directory");
	refused(await v2.session.create({ directory: "relative/dir" }), "relative", "absolute");
	// the directory is where its files are read from
	await fsp.writeFile(path.join(dir, "here.txt"), "in the session's directory\n");
	const r = await api(srv, "POST", `/session/${a.id}/message`, { parts: [{ type: "file", mime: "text/plain", url: "here.txt" }] });
	assert.equal(r.status, 200, r.text);
	const r2 = await api(srv, "POST", `/session/${c.id}/message`, { parts: [{ type: "file", mime: "text/plain", url: "here.txt" }] });
	refusedHttp(r2, "another session's directory", "here.txt", "No such file");
});
