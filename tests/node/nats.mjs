// A NATS server with JetStream of a test's own (tests/natsserver.sh: its store in a
// temporary directory) on 127.0.0.1 and a free port; stopped (or killed) and started
// again at will on the same directory and port, removed at the end. For the tests of
// `serve --bus nats://` and of several gateways sharing one stream.
import { spawnSync } from "node:child_process";

/** 1 when nats-server is installed (the tests that need it skip otherwise, saying so). */
export const natsInstalled = () =>
	spawnSync("sh", ["-c", `command -v "${process.env.AGENTGATE_NATS_SERVER || "nats-server"}"`]).status === 0;

/** A nats-server of the test's own, started: {port, dir, url, running, start(), stop(sig),
 * destroy()} (cluster.mjs's, which also kills it if the test process exits first). */
export { startNats } from "./cluster.mjs";
