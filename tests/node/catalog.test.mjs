// The model catalog in OpenCode's shapes through the official SDK (v1 and v2):
// GET /config/providers, GET /provider, GET /provider/auth, GET /config — the providers
// and their connection state, the configured models with limits, capabilities and costs,
// a catalog model used by a prompt, and no API key ever written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createOpencodeClient as createV1 } from "@opencode-ai/sdk";
import { createOpencodeClient as createV2 } from "@opencode-ai/sdk/v2";
import { startServer, api } from "./lib.mjs";

const T = { timeout: 60_000 };
const SECRET = "sk-never-shown-0123456789";

const CONFIG = {
	retry: { base_ms: 10 },
	providers: {
		scripted: {
			pace_ms: 2,
			models: {
				fast: {
					name: "Fast scripted", release_date: "2025-01-02",
					limit: { context: 8000, output: 1000 },
					reasoning: false, tool_call: true, temperature: false,
					modalities: { input: ["text", "image"], output: ["text"] },
					cost: { input: 1.5, output: 6, cache_read: 0.25, cache_write: 2 },
				},
			},
		},
		openai: { api_key: SECRET, models: { "gpt-test": { limit: { context: 128000, output: 4096 } } } },
		anthropic: { models: ["claude-test"] },
	},
	command: {
		review: { template: "Review $1 carefully", description: "reviews a file", agent: "build", model: "scripted/fast" },
		plain: { template: "Say $ARGUMENTS", subtask: false },
	},
	agent: { reviewer: { mode: "subagent", tools: ["echo"], permission: { edit: "deny" } } },
	permission: { bash: { "*": "ask", "git *": "allow" }, timeout_ms: 5000 },
	mcp: { local1: { type: "local", command: ["true"], environment: { TOKEN: SECRET }, enabled: false } },
};

const clients = {
	v1: (url) => {
		const c = createV1({ baseUrl: url });
		return {
			providers: () => c.config.providers(), list: () => c.provider.list(),
			auth: () => c.provider.auth(), config: () => c.config.get(),
		};
	},
	v2: (url) => {
		const c = createV2({ baseUrl: url });
		return {
			providers: () => c.config.providers(), list: () => c.provider.list(),
			auth: () => c.provider.auth(), config: () => c.config.get(),
		};
	},
};

function ok(r, label) {
	assert.equal(r.error, undefined, `${label}: SDK error ${JSON.stringify(r.error)}`);
	assert.equal(r.response?.status, 200, `${label}: HTTP status`);
	return r.data;
}

/** OpenCode's Model (both SDKs' Provider.models values). */
function assertModel(m, providerID, id, label) {
	assert.equal(m.id, id, `${label}: id`);
	assert.equal(m.providerID, providerID, `${label}: providerID`);
	assert.equal(m.api?.id, id, `${label}: api.id`);
	for (const k of ["url", "npm"]) assert.equal(typeof m.api?.[k], "string", `${label}: api.${k}`);
	assert.equal(typeof m.name, "string", `${label}: name`);
	for (const k of ["temperature", "reasoning", "attachment", "toolcall"])
		assert.equal(typeof m.capabilities?.[k], "boolean", `${label}: capabilities.${k}`);
	for (const dir of ["input", "output"])
		for (const k of ["text", "audio", "image", "video", "pdf"])
			assert.equal(typeof m.capabilities?.[dir]?.[k], "boolean", `${label}: capabilities.${dir}.${k}`);
	for (const k of ["input", "output"]) assert.equal(typeof m.cost?.[k], "number", `${label}: cost.${k}`);
	for (const k of ["read", "write"]) assert.equal(typeof m.cost?.cache?.[k], "number", `${label}: cost.cache.${k}`);
	for (const k of ["context", "output"]) assert.equal(typeof m.limit?.[k], "number", `${label}: limit.${k}`);
	assert.ok(["alpha", "beta", "deprecated", "active"].includes(m.status), `${label}: status`);
	assert.equal(typeof m.options, "object", `${label}: options`);
	assert.equal(typeof m.headers, "object", `${label}: headers`);
	assert.equal(typeof m.release_date, "string", `${label}: release_date (v2)`);
}

function assertProvider(p, label) {
	assert.equal(typeof p.id, "string", `${label}: id`);
	assert.equal(typeof p.name, "string", `${label}: name`);
	assert.ok(["env", "config", "custom", "api"].includes(p.source), `${label}: source ${p.source}`);
	assert.ok(Array.isArray(p.env), `${label}: env`);
	assert.equal(typeof p.options, "object", `${label}: options`);
	assert.equal(p.key, undefined, `${label}: no key`);
	for (const [id, m] of Object.entries(p.models)) assertModel(m, p.id, id, `${label} model ${id}`);
}

for (const style of ["v1", "v2"]) {
	test(`SDK ${style}: config.providers lists the connected providers and their catalog`, T, async (t) => {
		const srv = await startServer({ config: CONFIG, env: { OPENAI_API_KEY: "", ANTHROPIC_API_KEY: "" } });
		t.after(() => srv.stop());
		const c = clients[style](srv.url);
		const r = ok(await c.providers(), "config.providers");
		assert.deepEqual(r.providers.map((p) => p.id), ["scripted", "openai"], "scripted always; openai has a key; anthropic has neither key nor URL");
		r.providers.forEach((p) => assertProvider(p, `provider ${p.id}`));
		const [scripted, openai] = r.providers;
		assert.equal(scripted.source, "custom");
		assert.equal(openai.source, "config", "the key came from the config");
		assert.deepEqual(openai.env, ["OPENAI_API_KEY"]);
		assert.deepEqual(Object.keys(scripted.models).sort(), ["demo", "fast"]);
		const fast = scripted.models.fast;
		assert.equal(fast.name, "Fast scripted");
		assert.equal(fast.release_date, "2025-01-02");
		assert.deepEqual(fast.limit, { context: 8000, output: 1000 });
		assert.deepEqual(fast.cost, { input: 1.5, output: 6, cache: { read: 0.25, write: 2 } });
		assert.equal(fast.capabilities.attachment, true, "an image input makes it take attachments");
		assert.equal(fast.capabilities.input.image, true);
		assert.equal(fast.capabilities.input.pdf, false);
		assert.equal(fast.capabilities.temperature, false);
		assert.equal(fast.capabilities.reasoning, false);
		assert.equal(fast.capabilities.toolcall, true);
		const demo = scripted.models.demo;
		assert.ok(demo.limit.context > 0 && demo.limit.output > 0, "the embedded model has limits");
		assert.deepEqual(openai.models["gpt-test"].limit, { context: 128000, output: 4096 });
		assert.equal(openai.models["gpt-test"].api.url, "https://api.openai.com/v1");
		assert.deepEqual(r.default, { scripted: "demo", openai: "gpt-test" }, "the configured default, else the first model");
	});

	test(`SDK ${style}: provider.list has every provider, connected, and the v1 members`, T, async (t) => {
		const srv = await startServer({
			config: CONFIG,
			args: ["--anthropic-base-url", "http://127.0.0.1:9/"],
			env: { OPENAI_API_KEY: "", ANTHROPIC_API_KEY: "" },
		});
		t.after(() => srv.stop());
		const c = clients[style](srv.url);
		const r = ok(await c.list(), "provider.list");
		assert.deepEqual(r.all.map((p) => p.id), ["scripted", "openai", "anthropic"]);
		assert.deepEqual(r.connected, ["scripted", "openai", "anthropic"], "a base URL connects a provider without a key");
		r.all.forEach((p) => assertProvider(p, `provider ${p.id}`));
		const claude = r.all[2].models["claude-test"];
		assert.equal(claude.api.url, "http://127.0.0.1:9/");
		assert.deepEqual(claude.limit, { context: 0, output: 0 }, "listed by id only: limits unknown");
		// the v1 SDK's type for this route is models.dev's: those members are there too
		const fast = r.all[0].models.fast;
		assert.equal(fast.attachment, true);
		assert.equal(fast.tool_call, true);
		assert.equal(fast.temperature, false);
		assert.equal(fast.cost.cache_read, 0.25);
		assert.deepEqual(fast.modalities, { input: ["text", "image"], output: ["text"] });
		assert.equal(r.all[1].npm, "@ai-sdk/openai-compatible");
		assert.deepEqual(r.default, { scripted: "demo", openai: "gpt-test", anthropic: "claude-test" });
		assert.deepEqual(ok(await c.auth(), "provider.auth"), {}, "no sign-in methods: keys come from the gateway's environment and config");
	});

	test(`SDK ${style}: config.get is OpenCode's Config built from agentgate's`, T, async (t) => {
		const srv = await startServer({ config: CONFIG, args: ["--model", "scripted/fast"] });
		t.after(() => srv.stop());
		const c = clients[style](srv.url);
		const cfg = ok(await c.config(), "config.get");
		assert.equal(cfg.model, "scripted/fast", "the model in use (--model over the config)");
		assert.deepEqual(Object.keys(cfg.agent).sort(), ["build", "general", "reviewer"]);
		assert.equal(cfg.agent.reviewer.mode, "subagent");
		assert.deepEqual(cfg.agent.reviewer.tools, { "*": false, echo: true }, "only echo");
		assert.deepEqual(cfg.agent.reviewer.permission, { edit: "deny" });
		assert.equal(cfg.agent.build.mode, "primary");
		assert.equal(typeof cfg.agent.build.prompt, "string");
		assert.deepEqual(Object.keys(cfg.provider).sort(), ["anthropic", "openai", "scripted"]);
		const fast = cfg.provider.scripted.models.fast;
		assert.deepEqual(fast.limit, { context: 8000, output: 1000 });
		assert.deepEqual(fast.cost, { input: 1.5, output: 6, cache_read: 0.25, cache_write: 2 });
		assert.deepEqual(fast.modalities.input, ["text", "image"]);
		assert.equal(fast.attachment, true);
		assert.deepEqual(cfg.command, {
			review: { template: "Review $1 carefully", description: "reviews a file", agent: "build", model: "scripted/fast" },
			plain: { template: "Say $ARGUMENTS", subtask: false },
		});
		assert.deepEqual(cfg.permission, { bash: { "*": "ask", "git *": "allow" } }, "the rules, without agentgate's timeout_ms");
		assert.deepEqual(cfg.mcp, { local1: { type: "local", command: ["true"], enabled: false } }, "no environment");
		assert.equal(cfg.share, "disabled", "sessions are never shared");
	});
}

test("a catalog model answers a prompt, and no route writes an API key", T, async (t) => {
	const srv = await startServer({ config: CONFIG, env: { OPENAI_API_KEY: "" } });
	t.after(() => srv.stop());
	const c = createV2({ baseUrl: srv.url });
	const s = ok(await c.session.create({}), "session.create");
	const reply = ok(
		await c.session.prompt({ sessionID: s.id, model: { providerID: "scripted", modelID: "fast" }, parts: [{ type: "text", text: "hello" }] }),
		"session.prompt",
	);
	assert.equal(reply.info.providerID, "scripted");
	assert.equal(reply.info.modelID, "fast", "the prompt ran on the catalog's model");
	for (const p of ["/config", "/config/providers", "/provider", "/provider/auth"]) {
		const r = await api(srv, "GET", p);
		assert.equal(r.status, 200, p);
		assert.ok(!r.text.includes(SECRET), `${p} does not show the key`);
	}
});

test("with OPENAI_API_KEY in the environment openai is connected from env", T, async (t) => {
	const cfg = { ...CONFIG, providers: { ...CONFIG.providers, openai: { models: ["gpt-env"] } } };
	const srv = await startServer({ config: cfg, env: { OPENAI_API_KEY: SECRET, ANTHROPIC_API_KEY: "" } });
	t.after(() => srv.stop());
	const r = ok(await createV1({ baseUrl: srv.url }).config.providers(), "config.providers");
	const openai = r.providers.find((p) => p.id === "openai");
	assert.equal(openai?.source, "env");
	assert.ok(!JSON.stringify(r).includes(SECRET));
	const list = ok(await createV1({ baseUrl: srv.url }).provider.list(), "provider.list");
	assert.deepEqual(list.connected, ["scripted", "openai"]);
});
