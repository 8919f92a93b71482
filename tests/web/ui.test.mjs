// The web UI in headless Chromium against a real agentgate serve with the scripted model:
// streaming, the live subagent tree, abort, the queue, reload mid-stream, two tabs,
// session management, phone width, accessible names, the status page.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before } from "node:test";
import {
	api,
	apiOk,
	BIN,
	closeBrowser,
	createSession,
	getMessages,
	openSessionId,
	openUI,
	promptAsync,
	sendPrompt,
	SHOTS,
	startServer,
	transcript,
	UI_CONFIG,
	uiTest,
	until,
	untilText,
} from "./lib.mjs";

let srv;
before(async () => {
	srv = await startServer({ config: UI_CONFIG });
});
after(async () => {
	await closeBrowser();
	if (srv) await srv.stop();
});

const statusBusy = async () => Object.keys(await apiOk(srv, "GET", "/session/status")).length > 0;

/** The reply text of an assistant's turn as the server stored it. */
async function storedReplies(id) {
	const msgs = await getMessages(srv, id);
	return msgs
		.filter((m) => m.info.role === "assistant")
		.map((m) =>
			m.parts
				.filter((p) => p.type === "text")
				.map((p) => p.text)
				.join(""),
		);
}

/** Waits until the session has no running or queued turn on the server. */
async function serverIdle(id, timeout = 20000) {
	const deadline = Date.now() + timeout;
	for (;;) {
		const st = await apiOk(srv, "GET", "/session/status");
		if (!Object.keys(st).some((k) => k === id || !id)) return;
		if (Date.now() > deadline) throw new Error(`session ${id} still busy after ${timeout} ms: ${JSON.stringify(st)}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

uiTest("a prompt typed into a fresh page starts a session and streams its reply; a second tab follows", async ({ page, newPage }) => {
	await openUI(page, srv);
	assert.equal(await page.evaluate(() => document.activeElement?.id), "prompt", "the prompt box has the focus on load");
	// no click: type and press Enter
	await page.keyboard.type("slow first");
	await page.keyboard.press("Enter");
	const id = await openSessionId(page);
	const log = transcript(page);
	const partial = await untilText(log, /Streaming first:/, { label: "the first tokens" });
	assert.doesNotMatch(partial, /END\./, "the reply shows while it streams, before it ends");
	// the reply grows in place
	await until(page, (n) => document.querySelector(".transcript").textContent.length > n + 20, partial.length, { label: "more tokens" });
	// a second tab on the same session sees the same stream, live
	const tab2 = await newPage();
	await openUI(tab2, srv, `#/s/${id}`);
	await untilText(transcript(tab2), /Streaming first:/, { label: "tab 2 transcript" });
	await untilText(log, /END\./, { label: "the end of the reply" });
	await untilText(transcript(tab2), /END\./, { label: "the end of the reply in tab 2" });
	const [stored] = await storedReplies(id);
	const shown = (await log.locator(".msg.assistant .part.text").first().textContent()).trim();
	assert.equal(shown, stored.trim(), "tab 1 shows exactly what the server stored");
	const shown2 = (await transcript(tab2).locator(".msg.assistant .part.text").first().textContent()).trim();
	assert.equal(shown2, stored.trim(), "tab 2 shows exactly what the server stored");
	// Shift+Enter is a newline, not a send
	const box = page.getByRole("textbox", { name: "Prompt" });
	await box.fill("line one");
	await box.press("Shift+Enter");
	await box.type("line two");
	assert.equal(await box.inputValue(), "line one\nline two");
	await box.fill("");
	// a rename in tab 2 shows in tab 1's list and header
	await tab2.getByRole("button", { name: /^Rename session/ }).first().click();
	await tab2.getByRole("dialog", { name: "Rename session" }).getByLabel("Title").fill("Renamed in tab two");
	await tab2.getByRole("button", { name: "Save" }).click();
	await untilText(page.locator(".chat-title"), /Renamed in tab two/, { label: "tab 1 header" });
	await untilText(page.locator("#session-list"), /Renamed in tab two/, { label: "tab 1 list" });
	// the list says idle once the turn is over
	await untilText(page.locator(`#session-list .session-item:has(a[href="#/s/${id}"]) .badge`), /^idle$/, { label: "list status" });
});

uiTest("Markdown is rendered and model HTML is sanitised", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "markdown");
	const log = transcript(page);
	await log.locator(".msg.assistant h1", { hasText: "Title" }).waitFor();
	await log.locator(".msg.assistant strong", { hasText: "bold" }).waitFor();
	await log.locator(".msg.assistant code", { hasText: "code" }).waitFor();
	assert.equal(await log.locator(".msg.assistant li").count(), 2);
	assert.equal(await log.locator(".msg.assistant script").count(), 0, "no script element survives");
	assert.equal(await log.locator(".msg.assistant img[onerror]").count(), 0, "no event handler survives");
	assert.equal(await page.evaluate(() => window.__xss), undefined, "nothing from the reply ran");
});

uiTest("tool calls are cards with name, input, output, status and duration; reasoning is collapsed", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "echo card contents");
	await untilText(transcript(page), /Echoed: card contents/);
	const card = transcript(page).locator(".tool-card").first();
	assert.match(await card.locator("summary").getAttribute("aria-label"), /^Tool echo.*: completed$/);
	assert.match(await card.locator(".dur").textContent(), /^\d+(\.\d)? m?s$/);
	await card.locator("summary").click();
	await untilText(card.locator(".tool-io"), /Input[\s\S]*"text": "card contents"[\s\S]*Output[\s\S]*card contents/, { label: "input and output" });
	await sendPrompt(page, "think");
	await untilText(transcript(page), /Decided\./);
	const reasoning = transcript(page).locator("details.reasoning").last();
	assert.equal(await reasoning.getAttribute("open"), null, "reasoning starts collapsed");
	assert.ok(!(await reasoning.locator(".md").isVisible()), "its text is hidden");
	await reasoning.locator("summary").click();
	await untilText(reasoning.locator(".md"), /Weighing the options carefully/);
});

uiTest("a tool output cleared from the model's context says so on its card", async ({ page, shot }) => {
	// a server of its own without automatic compaction: these prompts are large, and a
	// summary would stop the clearing's walk
	const quiet = { regex: "^quiet (.+)$", steps: [{ text: "Calling echo.", tools: [{ name: "echo", input: { text: "{{1}}" } }] }, { text: "Done." }] };
	const scripted = { ...UI_CONFIG.providers.scripted, rules: [quiet, ...UI_CONFIG.providers.scripted.rules] };
	const csrv = await startServer({ config: { ...UI_CONFIG, providers: { scripted }, compaction: { auto: false } } });
	try {
		const s = await createSession(csrv, { title: "cleared outputs" });
		// four echo outputs of ~25 000 tokens: after the fourth, the first is past the newest
		// 40 000 tokens behind the last two prompts, and clearing it frees 25 000
		for (const tag of ["first", "second", "third", "fourth"])
			await apiOk(csrv, "POST", `/session/${s.id}/message`, { parts: [{ type: "text", text: `quiet ${tag} ${"lorem ".repeat(16000)}` }] });
		await openUI(page, csrv, `#/s/${s.id}`);
		const cards = transcript(page).locator(".tool-card");
		await until(page, () => document.querySelectorAll(".tool-card").length === 4, null, { label: "four tool cards" });
		await cards.nth(0).locator("summary").click();
		await untilText(cards.nth(0).locator(".tool-io"), /Output[\s\S]*first lorem[\s\S]*Cleared from the model's context/, { label: "the first card, cleared" });
		await cards.nth(3).locator("summary").click();
		await untilText(cards.nth(3).locator(".tool-io"), /Output[\s\S]*fourth lorem/, { label: "the fourth card" });
		assert.equal(await cards.nth(3).locator(".io-note.cleared").count(), 0, "the newest output is not cleared");
		await cards.nth(0).locator(".io-note").scrollIntoViewIfNeeded();
		await shot("-note");
	} finally {
		await csrv.stop();
	}
});

uiTest("edit's diff and bash's output show from their tool metadata", async ({ page }) => {
	// the workspace plugin's tools are not in this build: its events, as OpenCode's tools
	// shape them, are fed to the page's store the way the client would
	await openUI(page, srv);
	const s = await createSession(srv, { title: "tool metadata" });
	await page.goto(`${srv.url}/#/s/${s.id}`);
	await untilText(page.locator(".chat-title"), /tool metadata/);
	await until(page, (id) => window.agentgate.store.sessions.get(id)?.msgs?.map, s.id, { label: "the session loaded" });
	await page.evaluate((sid) => {
		const st = window.agentgate.store;
		const seq = 1e12; // after anything the snapshot holds
		const msg = { id: "msg_zzzzzzzzzzzz00000000000001", sessionID: sid, role: "assistant", time: { created: Date.now() } };
		const tool = (id, tool, state) => ({ id, sessionID: sid, messageID: msg.id, type: "tool", callID: `call_${id}`, tool, state });
		const parts = [
			tool("prt_zzzzzzzzzzzz00000000000001", "edit", {
				status: "completed",
				input: { filePath: "src/a.c", oldString: "int x = 1;", newString: "int x = 2;" },
				output: "Edited src/a.c",
				title: "src/a.c",
				metadata: { diff: "--- a/src/a.c\n+++ b/src/a.c\n@@ -1 +1 @@\n-int x = 1;\n+int x = 2;" },
				time: { start: 1000, end: 1450 },
			}),
			tool("prt_zzzzzzzzzzzz00000000000002", "bash", {
				status: "completed",
				input: { command: "make test", description: "run the tests" },
				output: "ok",
				title: "make test",
				metadata: { output: "cc -o t t.c\nall 3 tests passed", exit: 0, description: "run the tests" },
				time: { start: 2000, end: 4100 },
			}),
		];
		st.apply({ type: "message.updated", properties: { sessionID: sid, info: msg }, sessionID: sid, seq });
		parts.forEach((p, i) => st.apply({ type: "message.part.updated", properties: { sessionID: sid, part: p }, sessionID: sid, seq: seq + 1 + i }));
	}, s.id);
	const edit = transcript(page).locator('.tool-card:has(.tool-name:text-is("edit"))');
	await edit.locator("summary").click();
	await edit.locator(".diff-view .del", { hasText: "-int x = 1;" }).waitFor();
	await edit.locator(".diff-view .add", { hasText: "+int x = 2;" }).waitFor();
	assert.equal(await edit.locator(".dur").textContent(), "450 ms");
	const bash = transcript(page).locator('.tool-card:has(.tool-name:text-is("bash"))');
	await bash.locator("summary").click();
	await untilText(bash.locator(".tool-io"), /Output \(exit 0\)[\s\S]*cc -o t t\.c\s+all 3 tests passed/, { label: "bash's output" });
	assert.equal(await bash.locator(".dur").textContent(), "2.1 s");
	assert.match(await bash.locator(".tool-title").textContent(), /make test/);
});

uiTest("a subagent and its own subagent show as nested panels streaming before the parent finishes", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "tree");
	const parentId = await openSessionId(page);
	// one snapshot of the page: the grandchild's panel streams inside the child's, inside
	// the parent's task card, while the parent has not finished
	const seen = await until(
		page,
		() => {
			const log = document.querySelector(".transcript");
			const child = log.querySelector(".tool-card.task .child-panel");
			const grand = child && child.querySelector(".tool-card.task .child-panel");
			if (!grand) return null;
			const gt = grand.querySelector(".msg.assistant .part.text")?.textContent || "";
			if (!/Grandchild streaming/.test(gt)) return null;
			return {
				parentDone: /Parent finished/.test(log.textContent),
				childText: child.querySelector(".msg.assistant .part.text")?.textContent || "",
				childStatus: child.querySelector(".child-head .badge")?.textContent,
				grandStatus: grand.querySelector(".child-head .badge")?.textContent,
				grandText: gt,
				grandDone: /Grandchild streaming deep words\.\s*$/.test(gt) && (gt.match(/Grandchild/g) || []).length === 12,
			};
		},
		undefined,
		{ label: "the grandchild's panel streaming" },
	);
	assert.equal(seen.parentDone, false, "the parent had not finished");
	assert.match(seen.childText, /Child streaming its part now/);
	assert.equal(seen.childStatus, "busy");
	assert.equal(seen.grandStatus, "busy");
	assert.equal(seen.grandDone, false, "the grandchild's text was caught mid-stream");
	await page.screenshot({ path: `${SHOTS}/subagent-tree-mid-stream.png` }).catch(() => {});
	await untilText(transcript(page), /Parent finished: Child finished: Grandchild streaming/, { label: "the parent's final answer", timeout: 20000 });
	// panels show their last activity and end idle
	await untilText(page.locator(".child-panel .child-head .badge").first(), /^idle$/, { label: "child status" });
	assert.match(await page.locator(".child-panel .ago").first().textContent(), /last activity \d+ s ago/);
	// open the child full size: its own page, with the parent in the breadcrumbs
	const childTitle = await page.locator(".child-panel .child-title").first().textContent();
	await page.getByRole("button", { name: `Open subagent ${childTitle} full size` }).click();
	const childId = await openSessionId(page);
	assert.notEqual(childId, parentId);
	await untilText(transcript(page), /Child finished: Grandchild streaming/, { label: "the child's own transcript" });
	await page.getByRole("navigation", { name: "Parent sessions" }).getByRole("link").first().waitFor();
	assert.equal(await page.locator(".crumb").first().getAttribute("href"), `#/s/${parentId}`);
	assert.match(await page.locator(".child-panel .child-title").first().textContent(), /grandchild job/, "the grandchild is nested in the child's page");
});

uiTest("Esc aborts the whole tree", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "deep-hold");
	const id = await openSessionId(page);
	// the grandchild's sleep is running, three levels down
	await until(page, () => !!document.querySelector('.child-panel .child-panel .tool-card[data-status="running"]'), undefined, { label: "the grandchild's running tool" });
	assert.ok(await statusBusy());
	await page.getByRole("textbox", { name: "Prompt" }).press("Escape");
	await untilText(page.locator(".chat-head .badge"), /^idle$/, { label: "the parent idle" });
	await untilText(transcript(page).locator(".msg.assistant .msg-error").last(), /Aborted/, { label: "the parent's reply marked aborted" });
	await until(page, () => [...document.querySelectorAll(".child-panel .child-head .badge")].every((b) => b.textContent !== "busy") && document.querySelectorAll(".child-panel").length === 2, undefined, {
		label: "both subagent panels no longer busy",
	});
	assert.equal(await page.locator('.child-panel .tool-card[data-status="running"]').count(), 0, "no tool shows as running");
	// the server agrees: nothing in the tree is busy
	await serverIdle(null);
	const kids = await apiOk(srv, "GET", `/session/${id}/children`);
	assert.equal(kids.length, 1);
});

uiTest("prompts sent while busy are queued with their source, then run in order", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "sleep 2500");
	const id = await openSessionId(page);
	await untilText(page.locator(".chat-head .badge"), /busy/, { label: "busy" });
	// the prompt box stays usable while busy
	await sendPrompt(page, "echo queued-mine");
	const queue = page.getByRole("region", { name: "Queued prompts" });
	// the server has the page's prompt before the HTTP one is sent: which of the two
	// arrived first was a race the page's WebSocket could lose
	await untilText(queue, /echo queued-mine/, { label: "the page's prompt queued" });
	await promptAsync(srv, id, "echo queued-http");
	await untilText(queue, /echo queued-mine.*from you.*echo queued-http.*from an HTTP client/s, { label: "both queued prompts with their senders" });
	await untilText(page.locator(`#session-list .session-item:has(a[href="#/s/${id}"]) .badge`), /queued 2/, { label: "the list's queued count" });
	await untilText(page.locator(".chat-head .badge"), /queued 2/, { label: "the header's queued count" });
	// then they run, in order, and leave the queue
	await untilText(transcript(page), /Echoed: queued-mine[\s\S]*Echoed: queued-http/, { label: "both replies in order", timeout: 20000 });
	await queue.waitFor({ state: "hidden" });
	// the HTTP prompt is labelled in the transcript too
	await untilText(transcript(page).locator(".msg.user").last(), /From an HTTP client/, { label: "the HTTP prompt's sender" });
});

uiTest("a queued prompt is cancelled from the page and never runs", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "sleep 2000");
	const id = await openSessionId(page);
	await untilText(page.locator(".chat-head .badge"), /busy/);
	await sendPrompt(page, "echo cancel-me");
	const cancel = page.getByRole("button", { name: "Cancel queued prompt: echo cancel-me" });
	await cancel.click();
	await page.getByRole("region", { name: "Queued prompts" }).waitFor({ state: "hidden" });
	await untilText(transcript(page), /Aborted: cancelled before it ran/, { label: "the cancelled prompt's reply" });
	await serverIdle(id);
	await untilText(transcript(page), /Slept 2000 ms/, { label: "the running turn still finished" });
	const replies = await storedReplies(id);
	assert.ok(!replies.some((r) => /cancel-me/.test(r)), `the cancelled prompt never ran: ${JSON.stringify(replies)}`);
});

uiTest("policy interrupt stops the running turn and runs the new prompt", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "sleep 20000");
	await openSessionId(page);
	await untilText(page.locator(".chat-head .badge"), /busy/);
	await sendPrompt(page, "echo jumped-in", { policy: "interrupt" });
	await untilText(transcript(page), /Echoed: jumped-in/, { label: "the interrupting prompt's reply" });
	assert.match(await transcript(page).textContent(), /Aborted/, "the interrupted turn says so");
	await page.getByLabel("When the session is busy").selectOption("queue");
});

uiTest("reloading mid-stream shows the whole transcript and continues live", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "slow reload");
	const id = await openSessionId(page);
	await untilText(transcript(page), /Streaming reload: one two three four/, { label: "part of the reply" });
	await page.reload();
	await untilText(page.locator("#conn"), /^connected/);
	const right = await untilText(transcript(page), /Streaming reload:/, { label: "the reply after the reload" });
	assert.doesNotMatch(right, /END\./, "the reply was still streaming after the reload");
	await untilText(transcript(page), /END\./, { label: "the reply's end, live" });
	const [stored] = await storedReplies(id);
	const shown = (await transcript(page).locator(".msg.assistant .part.text").first().textContent()).trim();
	assert.equal(shown, stored.trim(), "nothing lost, nothing doubled");
	assert.equal(await transcript(page).locator(".msg.user").count(), 1);
});

uiTest("a provider retry shows its attempt and countdown, then the error where it happened", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "flaky");
	const id = await openSessionId(page);
	await untilText(page.locator(".live-status"), /Retrying \(attempt 2\) in [1-3] s/, { label: "the retry countdown" });
	await untilText(page.locator(`#session-list .session-item:has(a[href="#/s/${id}"]) .badge`), /retrying \(attempt 2\)/, { label: "the list's retry status" });
	await untilText(transcript(page).locator(".msg-error"), /Error: scripted overload/, { label: "the final error", timeout: 10000 });
	await untilText(page.locator(`#session-list .session-item:has(a[href="#/s/${id}"]) .badge`), /^error$/, { label: "the list's error status" });
});

uiTest("background tasks are listed and their results arrive as prompts from a background task", async ({ page }) => {
	await openUI(page, srv);
	await sendPrompt(page, "bg-hold");
	await openSessionId(page);
	const bg = page.getByRole("region", { name: "Background tasks" });
	await untilText(bg, /background job.*(busy|idle)/s, { label: "the background task listed" });
	await untilText(transcript(page).locator(".msg.user").last(), /From a background task/, { label: "the result's prompt", timeout: 15000 });
	await untilText(bg, /background job\s*idle/, { label: "the background task done" });
});

uiTest("new session with agent, model and directory; search, rename and delete", async ({ page }) => {
	await openUI(page, srv);
	await page.getByRole("button", { name: "New session", exact: true }).click();
	const dlg = page.getByRole("dialog", { name: "New session" });
	await dlg.getByLabel("Title").fill("Made in the dialog");
	await until(page, () => document.querySelectorAll("#new-agent option").length > 1, undefined, { label: "agents from the server" });
	await dlg.getByLabel("Agent").selectOption("build");
	await dlg.getByLabel("Model").fill("scripted/demo");
	await dlg.getByLabel("Directory").fill("/tmp");
	await dlg.getByRole("button", { name: "Create" }).click();
	const id = await openSessionId(page);
	await untilText(page.locator(".chat-head"), /Made in the dialog[\s\S]*build[\s\S]*scripted\/demo[\s\S]*\/tmp/, { label: "the header" });
	const info = await apiOk(srv, "GET", `/session/${id}`);
	assert.equal(info.directory, "/tmp");
	assert.equal(info.title, "Made in the dialog");
	// search by title
	await page.getByLabel("Search sessions by title").fill("made in the");
	await until(page, () => document.querySelectorAll("#session-list .session-item").length === 1, undefined, { label: "one match" });
	await page.getByLabel("Search sessions by title").fill("");
	// rename
	await page.getByRole("button", { name: "Rename session Made in the dialog" }).first().click();
	await page.getByRole("dialog", { name: "Rename session" }).getByLabel("Title").fill("Renamed here");
	await page.getByRole("button", { name: "Save" }).click();
	await untilText(page.locator("#session-list"), /Renamed here/);
	assert.equal((await apiOk(srv, "GET", `/session/${id}`)).title, "Renamed here");
	// delete (the browser's confirm)
	page.once("dialog", (d) => d.accept());
	await page.getByRole("button", { name: "Delete session Renamed here" }).first().click();
	await until(page, (sid) => !document.querySelector(`#session-list a[href="#/s/${sid}"]`), id, { label: "gone from the list" });
	assert.equal((await api(srv, "GET", `/session/${id}`)).status, 404);
	// the list is newest first
	const a = await createSession(srv, { title: "older one" });
	await new Promise((r) => setTimeout(r, 5));
	const b = await createSession(srv, { title: "newer one" });
	await untilText(page.locator("#session-list"), /newer one/);
	const order = await page.locator("#session-list .session-link").evaluateAll((els) => els.map((e) => e.getAttribute("href")));
	assert.ok(order.indexOf(`#/s/${b.id}`) < order.indexOf(`#/s/${a.id}`), "newest first");
});

uiTest("the model picker offers the catalog, and the prompt runs on the model picked", async ({ page }) => {
	await openUI(page, srv);
	// the catalog's models, labelled with what the catalog says of them
	const option = page.locator('#models option[value="scripted/fast"]');
	await until(page, () => !!document.querySelector('#models option[value="scripted/fast"]'), undefined, { label: "the catalog in the picker" });
	assert.equal(await option.getAttribute("label"), "Fast scripted · 8k context · $1.5/$6 per M tokens");
	const offered = await page.locator("#models option").evaluateAll((els) => els.map((e) => e.value));
	assert.ok(offered.includes("scripted/demo"), `the embedded model too: ${offered}`);
	// pick it (the datalist fills the box with the option's value) and send
	await page.getByRole("combobox", { name: "Model" }).fill(await option.getAttribute("value"));
	await sendPrompt(page, "picked model");
	const id = await openSessionId(page);
	await untilText(transcript(page), /You said: picked model/, { label: "the reply" });
	await untilText(page.locator(".chat-head"), /scripted\/fast/, { label: "the header names the model" });
	await serverIdle(id);
	const msgs = await getMessages(srv, id);
	const reply = msgs.find((m) => m.info.role === "assistant");
	assert.equal(`${reply.info.providerID}/${reply.info.modelID}`, "scripted/fast", "the server ran the prompt on the picked model");
});

uiTest("usable at phone width", { viewport: { width: 390, height: 800 } }, async ({ page }) => {
	await openUI(page, srv);
	const menu = page.getByRole("button", { name: "Sessions" });
	assert.ok(await menu.isVisible(), "the sessions menu button shows");
	assert.ok(!(await page.locator("#sidebar").isVisible()) || (await page.locator("#sidebar").boundingBox()).x < -100, "the list is tucked away");
	await sendPrompt(page, "echo small screen");
	await untilText(transcript(page), /Echoed: small screen/);
	const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
	assert.ok(overflow <= 0, `no sideways scrolling (${overflow} px too wide)`);
	await menu.click();
	await page.getByRole("button", { name: "New session", exact: true }).waitFor({ state: "visible" });
	await until(page, () => {
		const r = document.getElementById("sidebar").getBoundingClientRect();
		return r.x >= 0 && r.right <= window.innerWidth;
	}, undefined, { label: "the drawer on screen" });
	await page.keyboard.press("Escape");
	await until(page, () => !document.body.classList.contains("drawer-open") && document.getElementById("sidebar").getBoundingClientRect().right <= 0, undefined, { label: "drawer closed" });
});

uiTest("every control has an accessible name", async ({ page, context }) => {
	await openUI(page, srv);
	await sendPrompt(page, "tree");
	await untilText(transcript(page), /Parent finished/, { timeout: 20000 });
	await sendPrompt(page, "sleep 1500");
	await sendPrompt(page, "echo waiting");
	await page.getByRole("region", { name: "Queued prompts" }).waitFor();
	const cdp = await context.newCDPSession(page);
	const { nodes } = await cdp.send("Accessibility.getFullAXTree");
	const roles = new Set(["button", "textbox", "searchbox", "combobox", "link", "checkbox", "listbox"]);
	const unnamed = nodes.filter((n) => !n.ignored && roles.has(n.role?.value) && !(n.name?.value || "").trim()).map((n) => `${n.role.value} #${n.backendDOMNodeId}`);
	assert.deepEqual(unnamed, [], "controls without an accessible name");
	const named = nodes.filter((n) => !n.ignored && roles.has(n.role?.value)).length;
	assert.ok(named > 10, `the tree has the page's controls (${named})`);
});

uiTest("the status page lists the loaded plugins and the MCP servers from the server", async ({ page, t }) => {
	// two first-party plugins from this build, loaded on the command line (and no
	// default ones: the config's empty list decides)
	const dir = path.join(path.dirname(BIN), "plugins");
	const sos = ["guard", "continuation"].map((n) => path.join(dir, `${n}.so`)).filter((f) => fs.existsSync(f));
	const config = { ...UI_CONFIG, plugins: [] };
	const psrv = sos.length ? await startServer({ config, args: sos.flatMap((f) => ["--plugin", f]) }) : srv;
	if (psrv !== srv) t.after(() => psrv.stop());
	await openUI(page, psrv, "#/status");
	await page.getByRole("heading", { name: "Server status" }).waitFor();
	await page.getByRole("heading", { name: "Plugins" }).waitFor();
	await page.getByRole("heading", { name: "MCP servers" }).waitFor();
	await untilText(page.locator(".health"), /Healthy · version/);
	const plugins = await apiOk(psrv, "GET", "/plugin");
	assert.equal(plugins.length, sos.length);
	for (const p of plugins) {
		const row = page.getByRole("row").filter({ has: page.getByRole("cell", { name: new RegExp(`^${p.id} — `) }) });
		await row.waitFor();
		const text = await row.textContent();
		for (const hook of p.hooks) assert.ok(text.includes(hook), `${p.id}'s hook ${hook} listed`);
		for (const tool of p.tools) assert.ok(text.includes(tool), `${p.id}'s tool ${tool} listed`);
	}
	if (!plugins.length) await page.getByText("No plugins loaded.").waitFor();
	const mcp = await apiOk(psrv, "GET", "/mcp");
	if (!mcp.length) await page.getByText("No MCP servers.").waitFor();
	await page.getByRole("cell", { name: "build", exact: true }).waitFor();
	assert.ok(await page.getByRole("button", { name: /^Abort/ }).isDisabled(), "nothing to abort on the status page");
});

uiTest("a permission ask from a grandchild shows in place and in the banner; the reply names the choice and the message", async ({ page }) => {
	// the asks are fed to the page's store as the server sends them (OpenCode's
	// permission.asked shape) and permission.reply is caught in the page: the shapes, a
	// grandchild's ask, "always" and a reply from another tab; the test below does the
	// round trip with the server's permission system
	await openUI(page, srv);
	await sendPrompt(page, "deep-hold");
	await until(page, () => !!document.querySelector('.child-panel .child-panel .tool-card[data-status="running"]'), undefined, { label: "the grandchild's running tool" });
	const where = await page.evaluate(() => {
		const st = window.agentgate.store;
		for (const s of st.sessions.values())
			if (s.info?.depth === 2 && s.msgs?.map)
				for (const m of s.msgs.map.values())
					for (const p of m.parts.values()) if (p.type === "tool" && p.tool === "sleep") return { sessionID: s.id, messageID: m.info.id, callID: p.callID };
		return null;
	});
	assert.ok(where, "found the grandchild's sleep call");
	await page.evaluate((w) => {
		window.__replies = [];
		const c = window.agentgate.client;
		const call = c.call.bind(c);
		c.call = (m, p, o) => (m === "permission.reply" ? (window.__replies.push(p), Promise.resolve(true)) : call(m, p, o));
		const ask = (id) => ({
			type: "permission.asked",
			sessionID: w.sessionID,
			seq: 1e12,
			properties: { id, sessionID: w.sessionID, permission: "sleep", patterns: ["60000"], metadata: {}, always: ["*"], title: "Sleep for a minute", tool: { messageID: w.messageID, callID: w.callID } },
		});
		window.__ask = ask;
		window.agentgate.store.apply(ask("per_one"));
	}, where);
	const inPlace = page.locator('.child-panel .child-panel .tool-card[data-status="running"] .perm-ask');
	await untilText(inPlace, /Permission asked: Sleep for a minute \(in subagent “holding grandchild”\)/, { label: "the ask in place" });
	const banner = page.getByRole("region", { name: "Permission requests" });
	await untilText(banner, /Sleep for a minute/, { label: "the banner" });
	await untilText(page.locator(".chat-head .badge"), /waiting for permission/, { label: "the root waits for permission" });
	await untilText(page.locator("#session-list .session-item .badge").first(), /waiting for permission/);
	await banner.getByLabel("Message for the reply to: Sleep for a minute").fill("not now");
	await banner.getByRole("button", { name: "Reject: Sleep for a minute" }).click();
	await banner.waitFor({ state: "hidden" });
	assert.deepEqual(await page.evaluate(() => window.__replies), [{ requestID: "per_one", reply: "reject", message: "not now" }]);
	await page.evaluate(() => window.agentgate.store.apply(window.__ask("per_two")));
	await inPlace.getByRole("button", { name: "Always allow: Sleep for a minute" }).click();
	await banner.waitFor({ state: "hidden" });
	assert.deepEqual((await page.evaluate(() => window.__replies))[1], { requestID: "per_two", reply: "always" });
	// a permission.replied event (another tab answered) clears it too
	await page.evaluate(() => window.agentgate.store.apply(window.__ask("per_three")));
	await banner.waitFor();
	await page.evaluate((sid) => window.agentgate.store.apply({ type: "permission.replied", sessionID: sid, seq: 1e12 + 1, properties: { sessionID: sid, requestID: "per_three", reply: "once" } }), where.sessionID);
	await banner.waitFor({ state: "hidden" });
	await page.getByRole("textbox", { name: "Prompt" }).press("Escape");
	await untilText(page.locator(".chat-head .badge"), /^idle$/);
});

// The round trip with the server's permission system: the fx test plugin's tool asks for
// `bash` in a child; the page answers in place (once), then from the banner (reject with
// a message the model reads).
uiTest("a permission asked in a child is answered from the page", { timeout: 60000 }, async ({ page, t }) => {
	const fx = path.join(path.dirname(BIN), "tests", "plugins", "fx.so");
	if (!fs.existsSync(fx)) {
		t.skip(`${fx} is not built (the fixture plugin whose tool asks)`);
		return;
	}
	const psrv = await startServer({ config: UI_CONFIG, args: ["--plugin", fx] });
	t.after(() => psrv.stop());
	await openUI(page, psrv);
	await sendPrompt(page, "perm-tree");
	const id = await openSessionId(page);
	// in place, in the child's tool card, and in the banner
	const inPlace = page.locator('.child-panel .tool-card[data-status="running"] .perm-ask');
	await untilText(inPlace, /Permission asked: bash make all \(in subagent “asking child”\)/, { label: "the ask in place" });
	const banner = page.getByRole("region", { name: "Permission requests" });
	await untilText(banner, /bash make all/, { label: "the banner" });
	await untilText(page.locator(".chat-head .badge"), /waiting for permission/);
	await untilText(page.locator(`#session-list .session-item:has(a[href="#/s/${id}"]) .badge`), /waiting for permission/);
	assert.equal((await apiOk(psrv, "GET", "/permission")).length, 1);
	await inPlace.getByRole("button", { name: "Allow once: bash make all" }).click();
	await banner.waitFor({ state: "hidden" });
	await untilText(transcript(page), /Parent finished: fx said: allowed \(allowed once by a reply\)/, { label: "the tree went on", timeout: 15000 });
	// again, rejected from the banner with a message the model reads
	await sendPrompt(page, "perm-tree");
	await untilText(banner, /bash make all/, { label: "the second ask" });
	await banner.getByLabel("Message for the reply to: bash make all").fill("use make clean");
	await banner.getByRole("button", { name: "Reject: bash make all" }).click();
	await banner.waitFor({ state: "hidden" });
	await untilText(transcript(page), /Parent finished: fx said: Error: The user rejected permission to use this specific tool call with the following feedback: use make clean/, {
		label: "the rejection's message reached the model",
		timeout: 15000,
	});
	assert.deepEqual(await apiOk(psrv, "GET", "/permission"), []);
});
