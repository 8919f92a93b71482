// A PostgreSQL server of a test's own (tests/pgserver.sh: a cluster in a temporary
// directory, run as an unprivileged user when the tests run as root) on 127.0.0.1 and a
// free port; stopped and started again at will, removed at the end. psql answers the
// tests' own questions about what the database holds.
import { spawn, spawnSync } from "node:child_process";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { REPO, freePort, pollUntil, withTimeout } from "./lib.mjs";

export async function startPostgres() {
	const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "agentgate-pg-"));
	const port = await freePort();
	let proc = null;
	let exited = null;
	const psql = (db, sql) =>
		spawnSync("psql", ["-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-p", String(port), "-U", "agentgate",
			"-d", db, "-c", sql], { encoding: "utf8", timeout: 30000 });
	const pg = {
		port,
		dir,
		async start() {
			proc = spawn("sh", [path.join(REPO, "tests/pgserver.sh"), dir, String(port)], { stdio: "ignore" });
			exited = new Promise((resolve) => proc.on("exit", (code) => resolve(code)));
			let code = null;
			exited.then((c) => (code = c));
			await pollUntil(() => {
				if (code !== null) throw new Error(`PostgreSQL did not start (exit ${code}); see ${dir}/server.log`);
				return spawnSync("pg_isready", ["-q", "-h", "127.0.0.1", "-p", String(port)]).status === 0;
			}, { timeout: 30000, interval: 50, label: "PostgreSQL accepts connections" });
		},
		/** A fast shutdown: sessions are ended at once. */
		async stop() {
			if (!proc) return;
			proc.kill("SIGINT");
			await withTimeout(exited, 30000, "PostgreSQL stops");
			proc = null;
		},
		/** A fresh database (ICU en-US collation, like the conformance suite's); its URL. */
		createdb(name) {
			const r = psql("postgres", `CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`);
			if (r.status !== 0) throw new Error(`CREATE DATABASE ${name}: ${r.stderr}`);
			return `postgres://agentgate@127.0.0.1:${port}/${name}`;
		},
		/** The first column of each row, as text. */
		query(db, sql) {
			const r = psql(db, sql);
			if (r.status !== 0) throw new Error(`${sql}: ${r.stderr}`);
			return r.stdout.split("\n").filter((l) => l !== "");
		},
		async destroy() {
			await pg.stop();
			await fsp.rm(dir, { recursive: true, force: true });
		},
	};
	await pg.start();
	return pg;
}
