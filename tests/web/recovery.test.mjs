// The web UI when things go wrong: a provider that stops sending tokens, the server
// restarted under the page, and a server that needs a token.
import assert from "node:assert/strict";
import { after } from "node:test";
import { apiOk, closeBrowser, getMessages, openSessionId, openUI, sendPrompt, startServer, transcript, UI_CONFIG, uiTest, untilText } from "./lib.mjs";

after(() => closeBrowser());

uiTest("a stalled provider shows the stall live, then the failure with its duration", { timeout: 60000 }, async ({ page, t }) => {
	// 8 s without a token fails the stream; the page calls it stalled after 5 s
	const srv = await startServer({ config: { ...UI_CONFIG, stall_timeout_ms: 8000, retry: { base_ms: 10, max: 1, stall_max: 0 } } });
	t.after(() => srv.stop());
	await openUI(page, srv);
	await sendPrompt(page, "stall");
	const id = await openSessionId(page);
	await untilText(transcript(page), /I will stop/, { label: "the first tokens" });
	const item = page.locator(`#session-list .session-item:has(a[href="#/s/${id}"]) .badge`);
	await untilText(item, /^stalled$/, { label: "the list's stall badge", timeout: 8000 });
	await untilText(page.locator(".live-status"), /no token for [5-8] s/, { label: "the live stall line" });
	await untilText(page.locator(".chat-head .badge"), /^stalled$/);
	await untilText(transcript(page).locator(".msg-error"), /Stalled after 8\.0 s without a token: LLM stream stalled/, { label: "the failure in place", timeout: 10000 });
	await untilText(item, /^stalled$/, { label: "the list still says stalled" });
	await page.reload();
	await untilText(transcript(page).locator(".msg-error"), /Stalled after 8\.0 s/, { label: "the failure after a reload" });
	await untilText(item, /^stalled$/, { label: "the list says stalled after a reload" });
	const msgs = await getMessages(srv, id);
	assert.match(JSON.stringify(msgs.at(-1).info.error), /LLM stream stalled/);
});

uiTest("the server restarted under the page: the page reconnects, shows what happened and works on", { timeout: 60000 }, async ({ page, t }) => {
	let srv = await startServer({ config: UI_CONFIG });
	const { port, dir } = srv;
	t.after(() => srv.stop());
	await openUI(page, srv);
	await sendPrompt(page, "echo before the restart");
	const id = await openSessionId(page);
	await untilText(transcript(page), /Echoed: before the restart/);
	// a turn streaming when the server goes away
	await sendPrompt(page, "slow interrupted");
	await untilText(transcript(page), /Streaming interrupted: one two/);
	await srv.kill("SIGKILL");
	await untilText(page.locator("#conn"), /disconnected — reconnecting/, { label: "the page noticing" });
	srv = await startServer({ config: UI_CONFIG, dir, port });
	await untilText(page.locator("#conn"), /^connected/, { label: "reconnected", timeout: 20000 });
	// the cut turn ends visibly (interrupted), nothing shows as running
	await untilText(page.locator(".chat-head .badge"), /^(idle|error)$/, { label: "not busy after the restart" });
	await untilText(transcript(page).locator(".msg-error").last(), /interrupted/i, { label: "the cut turn marked" });
	assert.match(await transcript(page).textContent(), /Echoed: before the restart/, "the transcript is still there");
	await sendPrompt(page, "echo after the restart");
	await untilText(transcript(page), /Echoed: after the restart/, { label: "a new turn after the restart" });
	const msgs = await getMessages(srv, id);
	assert.equal(msgs.filter((m) => m.info.role === "user").length, 3);
	assert.deepEqual(await apiOk(srv, "GET", "/session/status"), {});
});

const TOKEN = "web-ui-test-token";

uiTest("a server that needs a token: the browser's login with the token as password opens the UI", { context: { httpCredentials: { username: "agentgate", password: TOKEN } } }, async ({ page, t }) => {
	const srv = await startServer({ config: UI_CONFIG, args: ["--token", TOKEN] });
	t.after(() => srv.stop());
	// without it: refused, asking for Basic
	const bare = await fetch(`${srv.url}/`);
	assert.equal(bare.status, 401);
	assert.match(bare.headers.get("www-authenticate") || "", /^Basic/);
	await openUI(page, srv);
	await sendPrompt(page, "echo behind a token");
	await untilText(transcript(page), /Echoed: behind a token/, { label: "a reply over the authenticated WebSocket" });
	// restarted with another token: the page says so and offers to log in again
	const { port, dir } = srv;
	await srv.stop({ keepDir: true });
	const again = await startServer({ config: UI_CONFIG, args: ["--token", "another-token"], dir, port });
	t.after(() => again.stop());
	await untilText(page.locator("#conn"), /the server needs a token/, { label: "the login notice", timeout: 20000 });
	await page.getByRole("button", { name: "Log in" }).waitFor();
});

uiTest("a wrong token is refused", { context: { httpCredentials: { username: "agentgate", password: "not-the-token" } } }, async ({ page, t }) => {
	const srv = await startServer({ config: UI_CONFIG, args: ["--token", TOKEN] });
	t.after(() => srv.stop());
	const r = await page.goto(`${srv.url}/`);
	assert.equal(r.status(), 401);
	assert.equal(await page.locator("#prompt").count(), 0, "no UI without the token");
});
