// A NATS server with JetStream of a test's own (tests/natsserver.sh: its store in a
// temporary directory) on 127.0.0.1 and a free port; stopped (or killed) and started
// again at will on the same directory and port, removed at the end. For the tests of
// `serve --bus nats://` and of several gateways sharing one stream.
import { spawn, spawnSync } from "node:child_process";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { REPO, freePort, pollUntil, withTimeout } from "./lib.mjs";

/** 1 when nats-server is installed (the tests that need it skip otherwise, saying so). */
export const natsInstalled = () =>
	spawnSync("sh", ["-c", `command -v "${process.env.AGENTGATE_NATS_SERVER || "nats-server"}"`]).status === 0;

/** The server answers a connection with its INFO line. */
const answers = (port) =>
	new Promise((resolve) => {
		const s = net.connect({ host: "127.0.0.1", port });
		let buf = "";
		const done = (ok) => {
			s.destroy();
			resolve(ok);
		};
		s.on("data", (d) => {
			buf += d;
			if (buf.length >= 4) done(buf.startsWith("INFO"));
		});
		s.on("error", () => done(false));
		s.setTimeout(1000, () => done(false));
	});

export async function startNats() {
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-nats-"));
	const port = await freePort();
	let proc = null;
	let exited = null;
	const nats = {
		port,
		dir,
		url: `nats://127.0.0.1:${port}`,
		async start() {
			proc = spawn("sh", [path.join(REPO, "tests/natsserver.sh"), dir, String(port)], { stdio: "ignore" });
			exited = new Promise((resolve) => proc.on("exit", (code) => resolve(code)));
			let code = null;
			exited.then((c) => (code = c));
			await pollUntil(async () => {
				if (code !== null) throw new Error(`nats-server did not start (exit ${code}); see ${dir}/server.log`);
				return answers(port);
			}, { timeout: 30000, interval: 50, label: "nats-server accepts connections" });
		},
		/** SIGTERM: a clean shutdown; SIGKILL: none at all. */
		async stop(sig = "SIGTERM") {
			if (!proc) return;
			proc.kill(sig);
			await withTimeout(exited, 30000, "nats-server stops");
			proc = null;
		},
		async destroy() {
			await nats.stop();
			await fsp.rm(dir, { recursive: true, force: true });
		},
	};
	await nats.start();
	return nats;
}
