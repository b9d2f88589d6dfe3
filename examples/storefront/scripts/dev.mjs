// `npm start`: Tessera on its embedded defaults plus the storefront's dev server.
//
// Starts `python -m gateway serve` (the repository's .venv, as the README's quick
// start makes it; TESSERA_PYTHON overrides) with a publishable key for the app's
// events, waits until it is ready, then serves the app with Vite, which forwards
// /graphql and /v1/events to the gateway. Ctrl-C stops both.
//
// Environment:
//   STOREFRONT_PORT  the app's port (5173)
//   TESSERA_PORT     the gateway's port (8000)
//   TESSERA_URL      use a gateway (or a Varnish in front of one) that already
//                    runs there, and start none (also done when a gateway
//                    already answers on TESSERA_PORT, e.g. the quick start's)
//   TESSERA_PYTHON   the Python that has Tessera installed
//   VITE_TESSERA_PUBLISHABLE_KEY  the key the app sends (pk_storefront); it is
//                    added to the gateway's PUBLISHABLE_KEYS
// Anything else (STATE_DIR, ADMIN_KEYS, PERSISTED_QUERIES, ...) reaches the gateway.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const app = resolve(here, "..");
const repo = resolve(app, "../..");
const key = process.env.VITE_TESSERA_PUBLISHABLE_KEY || "pk_storefront";
process.env.VITE_TESSERA_PUBLISHABLE_KEY = key;

function python() {
  if (process.env.TESSERA_PYTHON) return process.env.TESSERA_PYTHON;
  const venv = join(repo, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

async function ready(url, child, seconds = 120) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}`);
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url}/readyz did not answer 200 within ${seconds} s`);
}

async function answers(url) {
  try {
    return (await fetch(`${url}/readyz`)).ok;
  } catch {
    return false;
  }
}

/** Whether the gateway takes the app's key: an empty batch is a 400 with a good key, 401 without. */
async function checkKey(url) {
  const response = await fetch(`${url}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: "[]",
  }).catch(() => undefined);
  if (response?.status === 401 || response?.status === 403) {
    console.warn(
      `The gateway at ${url} refuses the key ${key}: pages work, events are refused.\n` +
        `Restart it with PUBLISHABLE_KEYS=${key} (or stop it, and this command starts one).`,
    );
  }
}

let gateway;
let target = process.env.TESSERA_URL;
if (!target) {
  const port = process.env.TESSERA_PORT || "8000";
  const running = `http://127.0.0.1:${port}`;
  // A gateway already started by the README's quick start: use it rather than fail on its port.
  if (await answers(running)) target = running;
}
if (!target) {
  const port = process.env.TESSERA_PORT || "8000";
  target = `http://127.0.0.1:${port}`;
  const keys = [process.env.PUBLISHABLE_KEYS, key].filter(Boolean).join(",");
  gateway = spawn(python(), ["-m", "gateway", "serve", "--host", "127.0.0.1", "--port", port], {
    cwd: repo,
    env: { ...process.env, PUBLISHABLE_KEYS: keys },
    stdio: ["ignore", "inherit", "inherit"],
  });
  gateway.on("error", (error) => {
    console.error(`cannot start the gateway with ${python()}: ${error.message}`);
    process.exit(1);
  });
}

let server;
let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  await server?.close().catch(() => undefined);
  if (gateway && gateway.exitCode === null) {
    gateway.kill("SIGTERM");
    await new Promise((r) => gateway.once("exit", r));
  }
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
gateway?.on("exit", (code, signal) => {
  if (!stopping) {
    console.error(`the gateway stopped (${signal ?? code}); stopping the storefront`);
    void stop(1);
  }
});

try {
  await ready(target, gateway);
  if (!gateway) await checkKey(target);
  process.env.TESSERA_URL = target;
  const { createServer } = await import("vite");
  server = await createServer({ root: app, configFile: join(app, "vite.config.ts") });
  await server.listen();
  const url = server.resolvedUrls?.local[0] ?? `http://127.0.0.1:${server.config.server.port}/`;
  console.log(`Tessera:    ${target}/graphql`);
  console.log(`Storefront: ${url}`);
} catch (error) {
  console.error(String(error));
  await stop(1);
}
