// fallback-pin: the gateway half of failover-watcher's loop.
//
// Actuator: on each run's *primary* attempt (the candidate is the agent's configured
// primary), read failover-watcher's pin file; while the agent's record says
// in_fallback, serve the attempt from current_serving instead. Every other attempt is
// left alone, so the gateway's own fallback chain still runs when the pinned model
// fails. Nothing is overridden when the pin file is missing, unreadable, invalid,
// stale (heartbeat_at older than maxAgeSeconds), silent about the agent, or names a
// model outside the chain the gateway's own config gives that agent.
//
// Sensor: one "run outcome" line per run, naming the model that really served (or
// failed) each attempt. Under an override the gateway's decision lines name the
// configured candidate, not the model called; this line is the truth.
//
// Contract (versioned, documented in the project's README, samples in tests/vectors):
//   [fallback-pin] state {"v":1,"steering":true|false,"kind":...,"why":...,"pin_file":...}
//   [fallback-pin] run outcome {"v":1,"agent":...,"run":...,"session":...,"primary":...,
//     "pinned":...,"trial":...,"model":...,"outcome":"ok"|"error","status":...,"error":...,
//     "attempts":[{"model":...,"primary":bool,"overridden":bool,"ok":bool,
//                  "status":...,"error":...,"tries":n}, ...]}
//
// Half-open trial: when the agent's record carries "trial":{"model":<its primary>,
// "id":...,"until":<ISO>} the watcher asks for one real turn on the primary. The next
// run of that agent whose trial id this process has not used yet (and before until)
// is not overridden: its primary attempt goes to the configured primary, with the
// gateway's own chain behind it, and its run outcome line says "trial":<id>. Each id
// runs once per gateway process.
//
// Plain ESM, no dependencies, no build step. It never throws into the gateway and
// never blocks a run: every handler is synchronous work on a small file, wrapped.

import fs from "node:fs";

const ID = "fallback-pin";
const TAG = "[fallback-pin]";
const CONTRACT = 1;
const DEFAULT_PIN_FILE = "/var/lib/failover-watcher/fallback-state.json";
const DEFAULT_MAX_AGE_S = 180;
const MAX_RUNS = 512; // runs tracked at once; the oldest is dropped beyond this
const MAX_ATTEMPTS = 16;
const MAX_TEXT = 300; // error text kept per attempt
const MAX_TRIALS = 256; // trial ids remembered as used; the oldest is forgotten beyond this

function clip(text) {
  if (text === undefined || text === null) return null;
  const s = String(text).replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s || null;
}

function statusOf(text) {
  if (!text) return null;
  const m =
    /^\s*[[(]?([45]\d\d)\b/.exec(text) ||
    /\bHTTP(?:\/\d(?:\.\d)?)?[ :]\s*([1-5]\d\d)\b/i.exec(text) ||
    /\bstatus(?:[ _]code)?\b"?\s*[:=]?\s*"?([1-5]\d\d)\b/i.exec(text);
  return m ? Number(m[1]) : null;
}

function refOf(provider, model) {
  return provider && model ? `${provider}/${model}` : null;
}

// The agent's chain as the gateway resolves it (src/agents/agent-scope.ts): a string
// model has no fallbacks; an object has its own fallbacks or none; an agent without a
// model runs on agents.defaults.model. Returns [primary, ...fallbacks] or null.
export function chainOf(cfg, agentId) {
  const agents = cfg && typeof cfg === "object" ? cfg.agents : undefined;
  if (!agents || typeof agents !== "object") return null;
  let entry = agents.entries && typeof agents.entries === "object" ? agents.entries[agentId] : undefined;
  if (entry === undefined && Array.isArray(agents.list)) {
    entry = agents.list.find((e) => e && e.id === agentId);
  }
  const spec = entry && typeof entry === "object" && entry.model !== undefined
    ? entry.model
    : agents.defaults && typeof agents.defaults === "object" ? agents.defaults.model : undefined;
  let primary;
  let fallbacks = [];
  if (typeof spec === "string") {
    primary = spec;
  } else if (spec && typeof spec === "object") {
    primary = spec.primary;
    if (Array.isArray(spec.fallbacks)) fallbacks = spec.fallbacks;
  }
  if (typeof primary !== "string" || !primary.includes("/")) return null;
  const chain = [];
  for (const ref of [primary, ...fallbacks]) {
    if (typeof ref === "string" && ref.includes("/") && !chain.includes(ref)) chain.push(ref);
  }
  return chain;
}

// Reads and checks the pin file; cached on (inode, size, mtime) so a run costs one stat.
export class PinReader {
  constructor(path, maxAgeS) {
    this.path = path;
    this.maxAgeMs = maxAgeS * 1000;
    this.key = null;
    this.result = null;
  }

  read() {
    let st;
    try {
      st = fs.statSync(this.path);
    } catch (err) {
      this.key = null;
      const code = err && err.code;
      return code === "ENOENT"
        ? { kind: "missing", why: "pin file not found" }
        : { kind: "unreadable", why: `cannot stat the pin file (${code || "error"})` };
    }
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (key !== this.key) {
      this.key = key;
      this.result = this.parse();
    }
    return this.result;
  }

  parse() {
    let doc;
    try {
      doc = JSON.parse(fs.readFileSync(this.path, "utf8"));
    } catch (err) {
      return err && err.code
        ? { kind: "unreadable", why: `cannot read the pin file (${err.code})` }
        : { kind: "invalid", why: "pin file is not valid JSON" };
    }
    if (!doc || typeof doc !== "object" || doc.schema_version !== 1) {
      return { kind: "invalid", why: "pin file has no schema_version 1" };
    }
    if (!doc.agents || typeof doc.agents !== "object" || Array.isArray(doc.agents)) {
      return { kind: "invalid", why: "pin file has no agents object" };
    }
    const heartbeat = typeof doc.heartbeat_at === "string" ? Date.parse(doc.heartbeat_at) : NaN;
    if (Number.isNaN(heartbeat)) {
      return { kind: "invalid", why: "pin file has no readable heartbeat_at" };
    }
    return { kind: "fresh", why: "pin file fresh", agents: doc.agents, heartbeat };
  }

  // What the pin says right now: steering, or standing down and why.
  status(nowMs) {
    const r = this.read();
    if (r.kind !== "fresh") return { steering: false, kind: r.kind, why: r.why };
    const ageMs = nowMs - r.heartbeat;
    if (this.maxAgeMs > 0 && ageMs > this.maxAgeMs) {
      return {
        steering: false,
        kind: "stale",
        why: `pin file stale: heartbeat ${Math.round(ageMs / 1000)} s old, max ${this.maxAgeMs / 1000} s (is failover-watcher running?)`,
      };
    }
    return { steering: true, kind: "fresh", why: r.why, agents: r.agents };
  }
}

// The gateway may register a plugin more than once in one process (a startup registry
// and the active one) and route hooks and agent events through different instances.
// So the run table and what was last logged are kept once per process.
const SHARED = Symbol.for("failover-watcher.fallback-pin");

function shared() {
  const s = globalThis[SHARED];
  if (s && s.runs instanceof Map) {
    if (!(s.usedTrials instanceof Set)) s.usedTrials = new Set();
    return s;
  }
  globalThis[SHARED] = {
    runs: new Map(), agentProblems: new Map(), lastKind: new Map(), usedTrials: new Set(),
  };
  return globalThis[SHARED];
}

function lastAssistant(messages) {
  if (!Array.isArray(messages)) return undefined;
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    const m = messages[i];
    if (m && typeof m === "object" && m.role === "assistant") return m;
  }
  return undefined;
}

export function createPlugin(api, { now = Date.now } = {}) {
  const config = (api && api.pluginConfig) || {};
  const pinFile = typeof config.pinFile === "string" && config.pinFile ? config.pinFile : DEFAULT_PIN_FILE;
  const maxAgeS = typeof config.maxAgeSeconds === "number" && config.maxAgeSeconds >= 0
    ? config.maxAgeSeconds
    : DEFAULT_MAX_AGE_S;
  const reader = new PinReader(pinFile, maxAgeS);
  const logger = (api && api.logger) || {};
  const { runs, agentProblems, lastKind, usedTrials } = shared();

  function say(level, text) {
    try {
      const fn = logger[level] || logger.info;
      if (typeof fn === "function") fn.call(logger, `${TAG} ${text}`);
    } catch {
      // a logger that throws must not take a run down with it
    }
  }

  function noteState(st) {
    if (lastKind.get(pinFile) === st.kind) return;
    lastKind.set(pinFile, st.kind);
    const line = { v: CONTRACT, steering: st.steering, kind: st.kind, why: st.why, pin_file: pinFile };
    say(st.steering ? "info" : "warn", `state ${JSON.stringify(line)}`);
  }

  function noteAgent(agent, problem) {
    if ((agentProblems.get(agent) || null) === problem) return;
    if (problem === null) agentProblems.delete(agent);
    else agentProblems.set(agent, problem);
    if (problem !== null) say("warn", `agent ${JSON.stringify(agent)}: ${problem}; not overriding`);
  }

  function liveConfig() {
    try {
      const current = api.runtime && api.runtime.config && api.runtime.config.current;
      if (typeof current === "function") return current.call(api.runtime.config);
    } catch {
      // fall through to the registration-time snapshot
    }
    return api.config;
  }

  function runFor(runId, ctx) {
    let run = runs.get(runId);
    if (!run) {
      run = {
        agent: ctx.agentId || null,
        session: ctx.sessionKey || ctx.sessionId || null,
        primary: null,
        pinned: null,
        trial: null,
        primaryPending: false,
        attempts: [],
      };
      runs.set(runId, run);
      if (runs.size > MAX_RUNS) runs.delete(runs.keys().next().value);
    }
    if (!run.agent && ctx.agentId) run.agent = ctx.agentId;
    if (!run.session && (ctx.sessionKey || ctx.sessionId)) run.session = ctx.sessionKey || ctx.sessionId;
    return run;
  }

  function addAttempt(run, attempt) {
    const last = run.attempts[run.attempts.length - 1];
    if (last && last.model === attempt.model && last.primary === attempt.primary) {
      // a same-model retry: one attempt, tried again
      Object.assign(last, { ok: attempt.ok, status: attempt.status, error: attempt.error });
      last.tries += 1;
      return;
    }
    if (run.attempts.length < MAX_ATTEMPTS) run.attempts.push(attempt);
  }

  function takeTrial(trial, candidate, run) {
    if (!trial || typeof trial !== "object" || trial.model !== candidate) return false;
    if (typeof trial.id !== "string" || !trial.id || usedTrials.has(trial.id)) return false;
    const until = typeof trial.until === "string" ? Date.parse(trial.until) : NaN;
    if (Number.isNaN(until) || until <= now()) return false;
    usedTrials.add(trial.id);
    if (usedTrials.size > MAX_TRIALS) usedTrials.delete(usedTrials.values().next().value);
    run.trial = trial.id;
    return true;
  }

  function beforeModelResolve(_event, ctx) {
    try {
      if (!ctx || !ctx.agentId || !ctx.runId) return undefined;
      const candidate = refOf(ctx.modelProviderId, ctx.modelId);
      const chain = chainOf(liveConfig(), ctx.agentId);
      if (!chain || candidate !== chain[0]) return undefined; // only the primary attempt
      const run = runFor(ctx.runId, ctx);
      run.primary = chain[0];
      run.primaryPending = true;
      const st = reader.status(now());
      noteState(st);
      if (!st.steering) return undefined;
      const rec = st.agents[ctx.agentId];
      if (!rec || typeof rec !== "object") {
        noteAgent(ctx.agentId, "not in the pin file");
        return undefined;
      }
      const target = rec.current_serving;
      if (rec.in_fallback !== true || target === candidate) {
        noteAgent(ctx.agentId, null);
        return undefined;
      }
      if (typeof target !== "string" || !chain.includes(target)) {
        noteAgent(ctx.agentId, `the pin names ${JSON.stringify(target)}, which is not in its configured chain`);
        return undefined;
      }
      noteAgent(ctx.agentId, null);
      if (run.trial !== null || takeTrial(rec.trial, candidate, run)) {
        return undefined; // the trial turn: the configured primary serves this attempt
      }
      run.pinned = target;
      const slash = target.indexOf("/");
      return { providerOverride: target.slice(0, slash), modelOverride: target.slice(slash + 1) };
    } catch (err) {
      say("warn", `before_model_resolve: ${clip(err && err.message)}; not overriding`);
      return undefined;
    }
  }

  function agentEnd(event, ctx) {
    try {
      const runId = (ctx && ctx.runId) || (event && event.runId);
      if (!runId || !ctx) return;
      const run = runFor(runId, ctx);
      const model = refOf(ctx.modelProviderId, ctx.modelId);
      let ok = !(event && event.success === false);
      let error = event && event.error;
      const last = lastAssistant(event && event.messages);
      if (ok && last && (last.stopReason === "error" || last.stopReason === "aborted")) {
        ok = false;
        error = last.errorMessage || last.stopReason;
      }
      const expected = run.pinned || run.primary;
      const primary = run.primaryPending && model === expected;
      if (primary) run.primaryPending = false;
      const text = ok ? null : clip(error || "failed");
      addAttempt(run, {
        model,
        primary,
        overridden: primary && run.pinned !== null,
        ok,
        status: ok ? null : statusOf(text),
        error: text,
        tries: 1,
      });
    } catch (err) {
      say("warn", `agent_end: ${clip(err && err.message)}`);
    }
  }

  function fallbackStep(run, data) {
    // The primary attempt died before a prompt (no agent_end): the gateway's step
    // names the configured candidate; the model really asked for is the pin's.
    if (!run.primaryPending || data.fallbackStepFromModel !== run.primary) return;
    run.primaryPending = false;
    const text = clip(data.fallbackStepFromFailureDetail || data.fallbackStepFromFailureReason || "failed");
    addAttempt(run, {
      model: run.pinned || run.primary,
      primary: true,
      overridden: run.pinned !== null,
      ok: false,
      status: statusOf(text),
      error: text,
      tries: 1,
    });
  }

  function finish(runId, event, data) {
    const run = runs.get(runId);
    runs.delete(runId);
    if (!run || !run.agent) return;
    const last = run.attempts[run.attempts.length - 1];
    const ok = data.phase === "end" && last !== undefined && last.ok;
    const error = ok ? null : clip(data.error || (last && last.error) || "failed");
    const line = {
      v: CONTRACT,
      agent: run.agent,
      run: runId,
      session: run.session || event.sessionKey || null,
      primary: run.primary,
      pinned: run.pinned,
      trial: run.trial,
      model: last ? last.model : run.pinned || run.primary,
      outcome: ok ? "ok" : "error",
      status: ok ? null : (last && !last.ok && last.status) || statusOf(error),
      error,
      attempts: run.attempts,
    };
    say("info", `run outcome ${JSON.stringify(line)}`);
  }

  function lifecycle(event) {
    try {
      if (!event || event.stream !== "lifecycle" || !event.runId) return;
      const data = event.data || {};
      if (data.phase === "fallback_step") {
        const run = runs.get(event.runId);
        if (run) fallbackStep(run, data);
      } else if (data.phase === "end" || data.phase === "error") {
        finish(event.runId, event, data);
      }
    } catch (err) {
      say("warn", `lifecycle: ${clip(err && err.message)}`);
    }
  }

  return { beforeModelResolve, agentEnd, lifecycle, reader, runs, noteState, pinFile };
}

export default {
  id: ID,
  name: "failover-watcher pin",
  description: "Serve each agent from failover-watcher's pin file; report what really served each run.",
  register(api) {
    const plugin = createPlugin(api);
    const entry = api.config && api.config.plugins && api.config.plugins.entries
      ? api.config.plugins.entries[ID]
      : undefined;
    if (!(entry && entry.hooks && entry.hooks.allowConversationAccess === true)) {
      plugin.noteState({
        steering: false,
        kind: "blocked",
        why: `plugins.entries.${ID}.hooks.allowConversationAccess is not true: the gateway blocks before_model_resolve and agent_end`,
      });
    } else {
      plugin.noteState(plugin.reader.status(Date.now()));
    }
    api.on("before_model_resolve", plugin.beforeModelResolve, { timeoutMs: 2000 });
    api.on("agent_end", plugin.agentEnd);
    const events = api.agent && api.agent.events;
    if (events && typeof events.registerAgentEventSubscription === "function") {
      events.registerAgentEventSubscription({ id: `${ID}-outcome`, streams: ["lifecycle"], handle: plugin.lifecycle });
    } else if (api.runtime && api.runtime.events && typeof api.runtime.events.onAgentEvent === "function") {
      api.runtime.events.onAgentEvent(plugin.lifecycle);
    }
  },
};
