// Builds the web UI: src/app.js and src/style.css → dist/app.js and dist/app.css (esbuild,
// marked and DOMPurify bundled in: the page needs nothing from outside the gateway), and
// stamps index.html's references with the bundles' hashes so browsers never mix an old
// bundle with a new page.
//
//   node build.mjs           rebuild dist/ and index.html
//   node build.mjs --check   rebuild in a temporary directory and fail (exit 1) when the
//                            committed dist/ or index.html differ from what the sources give
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes("--check");

async function build(outdir) {
	const common = {
		bundle: true,
		minify: true,
		legalComments: "eof",
		logLevel: "warning",
		absWorkingDir: HERE,
		outdir,
		charset: "utf8",
	};
	await esbuild.build({
		...common,
		entryPoints: { app: "src/app.js" },
		format: "iife",
		target: "es2022",
	});
	await esbuild.build({ ...common, entryPoints: { app: "src/style.css" }, target: ["chrome100", "firefox100", "safari15"] });
	const index = fs.readFileSync(path.join(HERE, "index.html"), "utf8");
	const stamp = (name) => createHash("sha256").update(fs.readFileSync(path.join(outdir, name))).digest("hex").slice(0, 12);
	const stamped = index
		.replace(/dist\/app\.js\?v=[0-9a-z]*/, `dist/app.js?v=${stamp("app.js")}`)
		.replace(/dist\/app\.css\?v=[0-9a-z]*/, `dist/app.css?v=${stamp("app.css")}`);
	return { index: stamped, files: ["app.js", "app.css"] };
}

if (!check) {
	const out = path.join(HERE, "dist");
	fs.mkdirSync(out, { recursive: true });
	const { index } = await build(out);
	fs.writeFileSync(path.join(HERE, "index.html"), index);
	for (const f of fs.readdirSync(out)) console.log(`dist/${f}  ${fs.statSync(path.join(out, f)).size} bytes`);
} else {
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "agentgate-web-"));
	try {
		const { index, files } = await build(tmp);
		const stale = [];
		for (const f of files) {
			const committed = path.join(HERE, "dist", f);
			if (!fs.existsSync(committed) || !fs.readFileSync(committed).equals(fs.readFileSync(path.join(tmp, f)))) stale.push(`dist/${f}`);
		}
		if (fs.readFileSync(path.join(HERE, "index.html"), "utf8") !== index) stale.push("index.html (the bundle hashes it references)");
		const extra = fs.readdirSync(path.join(HERE, "dist")).filter((f) => !files.includes(f));
		if (extra.length) stale.push(`dist/ has files the build does not make: ${extra.join(", ")}`);
		if (stale.length) {
			console.error(`web: the committed bundle is stale: ${stale.join(", ")}.\nRun: (cd web && npm ci && npm run build) and commit web/dist and web/index.html.`);
			process.exitCode = 1;
		} else console.log("web: dist/ and index.html match the sources");
	} finally {
		fs.rmSync(tmp, { recursive: true, force: true });
	}
}
