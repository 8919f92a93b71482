// Helpers for the browser tests: headless Chromium (Debian's /usr/bin/chromium) through
// playwright-core, against a real `agentgate serve` started by tests/node/lib.mjs.
// Every wait is bounded; each test leaves a screenshot in build/screenshots (or
// $AGENTGATE_SCREENSHOTS) whether it passed or not.
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { chromium } from "playwright-core";
import { REPO } from "../node/lib.mjs";

export * from "../node/lib.mjs";

export const CHROMIUM = process.env.AGENTGATE_CHROMIUM || "/usr/bin/chromium";
export const SHOTS = process.env.AGENTGATE_SCREENSHOTS || path.join(REPO, "build", "screenshots");

/** The scripted model the UI tests drive: paced replies, subagent trees, waits, failures. */
export const RULES = [
	// a reply slow enough to watch it stream: ~100 tokens, 40 ms apart, ending in "END."
	{ regex: "^slow (.+)$", steps: [{ text: `Streaming {{1}}: ${"one two three four five six seven eight nine ten ".repeat(10)}END.`, pace_ms: 40 }] },
	// parent → child → grandchild, each streaming before it delegates
	{
		regex: "^tree$",
		steps: [
			{ text: "Parent delegates.", tools: [{ name: "task", input: { description: "child job", prompt: "child-work", subagent_type: "general" } }] },
			{ text: "Parent finished: {{tool_output}}" },
		],
	},
	{
		regex: "^child-work$",
		steps: [
			{ text: "Child streaming its part now. ", repeat: 4, pace_ms: 40, tools: [{ name: "task", input: { description: "grandchild job", prompt: "grandchild-work", subagent_type: "general" } }] },
			{ text: "Child finished: {{tool_output}}" },
		],
	},
	{ regex: "^grandchild-work$", steps: [{ text: "Grandchild streaming deep words. ", repeat: 12, pace_ms: 50 }] },
	// the same tree, but the grandchild sleeps: something to abort
	{
		regex: "^deep-hold$",
		steps: [
			{ text: "Parent delegates.", tools: [{ name: "task", input: { description: "holding child", prompt: "child-hold", subagent_type: "general" } }] },
			{ text: "Parent finished: {{tool_output}}" },
		],
	},
	{
		regex: "^child-hold$",
		steps: [
			{ text: "Child delegates.", tools: [{ name: "task", input: { description: "holding grandchild", prompt: "grandchild-hold", subagent_type: "general" } }] },
			{ text: "Child finished: {{tool_output}}" },
		],
	},
	{ regex: "^grandchild-hold$", steps: [{ text: "Grandchild holds.", tools: [{ name: "sleep", input: { ms: 60000 } }] }, { text: "Grandchild woke." }] },
	{ regex: "^bg-hold$", steps: [{ text: "Starting background work.", tools: [{ name: "task", input: { description: "background job", prompt: "sleep 1500", subagent_type: "general", background: true } }] }, { text: "Started: {{tool_output}}" }] },
	{ regex: "^sleep ([0-9]+)$", steps: [{ text: "Sleeping.", tools: [{ name: "sleep", input: { ms: "{{1}}" } }] }, { text: "Slept {{1}} ms." }] },
	{ regex: "^echo (.+)$", steps: [{ text: "Calling echo.", tools: [{ name: "echo", input: { text: "{{1}}" } }] }, { text: "Echoed: {{tool_output}}" }] },
	// a child whose tool asks for permission (the fx test plugin's "ask" mode asks for
	// `bash`, which the default rules leave to a human)
	{
		regex: "^perm-tree$",
		steps: [
			{ text: "Parent delegates.", tools: [{ name: "task", input: { description: "asking child", prompt: "fx-ask", subagent_type: "general" } }] },
			{ text: "Parent finished: {{tool_output}}" },
		],
	},
	{ regex: "^fx-ask$", steps: [{ text: "Child asks.", tools: [{ name: "fx", input: { mode: "ask make all" } }] }, { text: "fx said: {{tool_output}}" }] },
	{ regex: "^flaky$", steps: [{ text: "Trying.", error: { status: 503, message: "scripted overload", retry_after_ms: 2500 } }] },
	{ regex: "^stall$", steps: [{ text: "I will stop talking after this", stall_after: 3 }] },
	{ regex: "^think$", steps: [{ reasoning: "Weighing the options carefully.", text: "Decided." }] },
	{ regex: "^markdown$", steps: [{ text: "# Title\n\nSome **bold** and `code`.\n\n- one\n- two\n\n<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>" }] },
	{ steps: [{ text: "You said: {{prompt}}" }] },
];

export const UI_CONFIG = Object.freeze({
	providers: {
		scripted: {
			pace_ms: 2,
			rules: RULES,
			// the catalog the model picker offers (GET /config/providers)
			models: { fast: { name: "Fast scripted", limit: { context: 8000, output: 1000 }, cost: { input: 1.5, output: 6 } } },
		},
	},
	retry: { base_ms: 10, max: 1 },
});

let browser = null;

/** One Chromium for the whole file (launching it costs a second on two cores). */
export async function getBrowser() {
	if (browser) return browser;
	if (!fs.existsSync(CHROMIUM))
		throw new Error(`${CHROMIUM} is missing: contrib/deps.sh --test installs Debian's chromium (or set AGENTGATE_CHROMIUM)`);
	browser = await chromium.launch({
		executablePath: CHROMIUM,
		headless: true,
		// as root in a container: no sandbox; no GPU; /dev/shm may be tiny
		args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check"],
	});
	return browser;
}

export async function closeBrowser() {
	if (browser) await browser.close().catch(() => {});
	browser = null;
}

function slug(s) {
	return s
		.toLowerCase()
		.replace(/[^a-z0-9]+/g, "-")
		.replace(/^-|-$/g, "")
		.slice(0, 80);
}

/**
 * A test with a fresh browser context and page; the page's errors fail it, and a
 * screenshot of every page it opened is saved at the end, pass or fail.
 * fn({page, context, newPage, shot}).
 */
export function uiTest(name, opts, fn) {
	if (typeof opts === "function") {
		fn = opts;
		opts = {};
	}
	return test(name, { timeout: opts.timeout ?? 60000, skip: opts.skip }, async (t) => {
		const b = await getBrowser();
		const context = await b.newContext({ viewport: opts.viewport || { width: 1280, height: 860 }, ...(opts.context || {}) });
		context.setDefaultTimeout(15000);
		const pages = [];
		const errors = [];
		const warnings = []; // the page's toasts and client errors: printed when a test fails
		const newPage = async () => {
			const p = await context.newPage();
			p.on("pageerror", (e) => errors.push(`${e.message}\n${e.stack || ""}`));
			p.on("console", (m) => {
				if (m.type() === "error" && !/Failed to load resource|WebSocket connection/.test(m.text())) errors.push(`console: ${m.text()}`);
				if (m.type() === "warning") warnings.push(m.text());
			});
			pages.push(p);
			return p;
		};
		const page = await newPage();
		const shot = async (suffix = "") => {
			fs.mkdirSync(SHOTS, { recursive: true });
			for (let i = 0; i < pages.length; i++) {
				const p = pages[i];
				if (p.isClosed()) continue;
				const file = path.join(SHOTS, `${slug(name)}${suffix}${i ? `-tab${i + 1}` : ""}.png`);
				await p.screenshot({ path: file, fullPage: false }).catch(() => {});
			}
		};
		try {
			await fn({ page, context, newPage, shot, t });
			if (errors.length && !opts.allowPageErrors) throw new Error(`errors in the page:\n${errors.join("\n")}`);
		} catch (e) {
			if (warnings.length) e.message += `\npage warnings:\n${warnings.join("\n")}`;
			throw e;
		} finally {
			await shot();
			await context.close().catch(() => {});
		}
	});
}

/** Waits until fn() (run in the page, with arg) returns something truthy; returns it. */
export async function until(page, fn, arg, { timeout = 15000, label = "condition" } = {}) {
	try {
		const h = await page.waitForFunction(fn, arg, { timeout, polling: 50 });
		return await h.jsonValue();
	} catch (e) {
		throw new Error(`timed out after ${timeout} ms waiting for: ${label} (${e.message.split("\n")[0]})`);
	}
}

/** Waits until the locator's text matches re; returns the text. */
export async function untilText(locator, re, { timeout = 15000, label } = {}) {
	const deadline = Date.now() + timeout;
	let last = "";
	for (;;) {
		const text = await locator
			.first()
			.textContent({ timeout: Math.max(100, deadline - Date.now()) })
			.catch(() => null);
		if (text !== null) last = text;
		if (re.test(last)) return last;
		if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${label || locator} to match ${re}; text: ${JSON.stringify(last.slice(0, 500))}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

/** Opens the UI and waits for its WebSocket to be connected. */
export async function openUI(page, srv, hash = "") {
	await page.goto(`${srv.url}/${hash}`);
	await untilText(page.locator("#conn"), /^connected/, { label: "the connection indicator" });
}

/** Types a prompt into the focused composer and presses Enter. */
export async function sendPrompt(page, text, { policy } = {}) {
	if (policy) await page.getByLabel("When the session is busy").selectOption(policy);
	const box = page.getByRole("textbox", { name: "Prompt" });
	await box.fill(text);
	await box.press("Enter");
}

/** The session id the page shows (from its URL), waited for. */
export async function openSessionId(page) {
	return until(page, () => (location.hash.match(/^#\/s\/(.+)$/) || [])[1], undefined, { label: "a session in the URL" });
}

export const transcript = (page) => page.getByRole("log", { name: "Conversation" });
