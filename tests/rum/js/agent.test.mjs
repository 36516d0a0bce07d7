// The browser agent's core under Node's test runner, with the browser globals faked.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";

const here = new URL("../../../src/soulwatch/rum/static/", import.meta.url);
const core = readFileSync(new URL("agent-core.js", here), "utf8");

function load() {
  const context = vm.createContext({ URL, Uint8Array, JSON });
  vm.runInContext(core, context);
  return context.soulwatchAgent;
}

function fakeBrowser({ beacon = true } = {}) {
  const listeners = {};
  const docListeners = {};
  const sent = [];
  const fetched = [];
  let timer = null;
  let clock = 0;
  const storage = new Map();
  const vitals = {};
  const win = {
    location: { pathname: "/clusters/7", href: "https://app.example/clusters/7", origin: "https://app.example" },
    sessionStorage: { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, v) },
    history: { pushState(state, title, url) { win.location.pathname = url; } },
    addEventListener: (name, fn) => { (listeners[name] ||= []).push(fn); },
  };
  const doc = {
    visibilityState: "visible",
    addEventListener: (name, fn) => { (docListeners[name] ||= []).push(fn); },
  };
  const originalFetch = (url, init) => {
    fetched.push({ url, init });
    const status = String(url).includes("/api/broken") ? 500 : 200;
    return Promise.resolve({ status });
  };
  const env = {
    win, doc,
    nav: beacon ? { sendBeacon: (url, body) => { sent.push({ url, body: JSON.parse(body) }); return true; } } : {},
    fetch: originalFetch,
    crypto: { getRandomValues: (a) => { a.fill(171); return a; } },
    vitals: Object.fromEntries(["onLCP", "onINP", "onCLS", "onFCP", "onTTFB"].map((n) => [n, (cb) => { vitals[n] = cb; }])),
    now: () => clock,
    setInterval: (fn) => { timer = fn; },
  };
  return {
    env, win, doc, sent, fetched, vitals,
    tick: () => timer(),
    advance: (ms) => { clock += ms; },
    fire: (name) => (listeners[name] || []).forEach((fn) => fn({})),
    hide: () => { doc.visibilityState = "hidden"; (docListeners.visibilitychange || []).forEach((fn) => fn()); },
  };
}

const events = (b) => b.sent.flatMap((s) => s.body.events);

test("a page load is a page view, sent with the site key and a per-tab session", () => {
  const b = fakeBrowser();
  load()({ site: "key-123456", endpoint: "https://sw.example/rum/v1/events" }, b.env);
  b.tick();
  assert.equal(b.sent.length, 1);
  assert.equal(b.sent[0].url, "https://sw.example/rum/v1/events");
  assert.equal(b.sent[0].body.site, "key-123456");
  assert.match(b.sent[0].body.session, /^(ab){16}$/);
  assert.deepEqual(events(b), [{ type: "pageview", page: "/clusters/7" }]);
});

test("the session id is kept for the tab (sessionStorage), not regenerated", () => {
  const b = fakeBrowser();
  const agent = load();
  const first = agent({ site: "k", endpoint: "/e" }, b.env).session;
  b.env.crypto.getRandomValues = (a) => { a.fill(1); return a; };
  assert.equal(agent({ site: "k", endpoint: "/e" }, b.env).session, first);
});

test("web vitals are queued and flushed when the page is hidden", () => {
  const b = fakeBrowser();
  load()({ site: "k", endpoint: "/e" }, b.env);
  b.vitals.onLCP({ name: "LCP", value: 2600 });
  b.vitals.onCLS({ name: "CLS", value: 0.12 });
  b.hide();
  assert.deepEqual(events(b).slice(1), [
    { type: "vital", name: "LCP", value: 2600, page: "/clusters/7" },
    { type: "vital", name: "CLS", value: 0.12, page: "/clusters/7" },
  ]);
});

test("uncaught errors, rejections and React crashes are counted by kind; a crash is sent at once", () => {
  const b = fakeBrowser();
  const agent = load()({ site: "k", endpoint: "/e" }, b.env);
  b.fire("error");
  b.fire("unhandledrejection");
  const err = new Error("boom");
  assert.equal(agent.reportError(err), err);
  const kinds = events(b).filter((e) => e.type === "error").map((e) => e.kind);
  assert.deepEqual(kinds, ["error", "unhandledrejection", "react"]);
  assert.ok(!JSON.stringify(b.sent).includes("boom"), "error messages never leave the page");
});

test("the page's own /api/* fetches are timed with their status; other fetches are not", async () => {
  const b = fakeBrowser();
  load()({ site: "k", endpoint: "/e" }, b.env);
  b.advance(5);
  const pending = b.win.fetch("/api/broken?x=1");
  b.advance(120);
  assert.equal((await pending).status, 500);
  await b.win.fetch("https://elsewhere.example/api/x");
  await b.win.fetch("/static/app.js");
  b.tick();
  const api = events(b).filter((e) => e.type === "api");
  assert.deepEqual(api, [{ type: "api", route: "/api/broken", status: 500, duration: 120, page: "/clusters/7" }]);
  assert.equal(b.fetched.length, 3, "every fetch still reaches the network");
});

test("a client-side navigation is a new page view", () => {
  const b = fakeBrowser();
  load()({ site: "k", endpoint: "/e" }, b.env);
  b.win.history.pushState({}, "", "/clusters/8");
  b.win.history.pushState({}, "", "/clusters/8");
  b.tick();
  assert.deepEqual(events(b).map((e) => e.page), ["/clusters/7", "/clusters/8"]);
});

test("without sendBeacon the batch goes by fetch with keepalive, as text/plain", () => {
  const b = fakeBrowser({ beacon: false });
  load()({ site: "k", endpoint: "/e" }, b.env);
  b.fire("pagehide");
  assert.equal(b.fetched.length, 1);
  assert.equal(b.fetched[0].init.keepalive, true);
  assert.equal(b.fetched[0].init.headers["Content-Type"], "text/plain");
  assert.equal(JSON.parse(b.fetched[0].init.body).events[0].type, "pageview");
});

test("batches are split at 50 events", () => {
  const b = fakeBrowser();
  load()({ site: "k", endpoint: "/e" }, b.env);
  for (let i = 0; i < 120; i++) b.fire("error");
  b.tick();
  assert.deepEqual(b.sent.map((s) => s.body.events.length), [50, 50, 21]);
});
