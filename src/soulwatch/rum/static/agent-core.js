/* soulwatch browser agent: page views, web vitals, errors and the page's own
 * /api/* fetches, batched and sent to soulwatch's /rum/v1/events.
 * No cookies and no personal data: a random id per tab (sessionStorage), the
 * path of the page, numbers and an error's kind, never its message.
 * `env` carries the browser globals so Node's test runner can drive it. */
function soulwatchAgent(options, env) {
  "use strict";
  var win = env.win, doc = env.doc, nav = env.nav, send = env.fetch;
  var queue = [], maxBatch = 50, apiPrefix = options.apiPrefix || "/api/";
  var session = sessionId();
  var lastPage = null;

  function sessionId() {
    var key = "soulwatch.session", id = null;
    try { id = win.sessionStorage.getItem(key); } catch (e) { /* storage blocked */ }
    if (!id) {
      var bytes = new Uint8Array(16);
      env.crypto.getRandomValues(bytes);
      id = "";
      for (var i = 0; i < bytes.length; i++) id += (bytes[i] + 256).toString(16).slice(1);
      try { win.sessionStorage.setItem(key, id); } catch (e) { /* storage blocked */ }
    }
    return id;
  }

  function push(event) {
    event.page = event.page || win.location.pathname;
    queue.push(event);
    if (queue.length >= maxBatch) flush();
  }

  function flush() {
    while (queue.length) {
      var body = JSON.stringify({ site: options.site, session: session, events: queue.splice(0, maxBatch) });
      // A string body goes as text/plain: no CORS preflight, and a beacon survives the page's unload.
      var queued = false;
      try { queued = !!(nav.sendBeacon && nav.sendBeacon(options.endpoint, body)); } catch (e) { queued = false; }
      if (!queued && send) {
        try {
          send(options.endpoint, { method: "POST", body: body, keepalive: true, credentials: "omit",
            headers: { "Content-Type": "text/plain" } }).catch(function () {});
        } catch (e) { /* the network is gone; these events are lost */ }
      }
    }
  }

  function pageView() {
    var path = win.location.pathname;
    if (path !== lastPage) { lastPage = path; push({ type: "pageview", page: path }); }
  }

  function vital(metric) { push({ type: "vital", name: metric.name, value: metric.value }); }

  function reportError(error, kind) {
    push({ type: "error", kind: kind || "react" });
    flush();
    return error;
  }

  function trackFetch() {
    win.fetch = function (input, init) {
      var url = typeof input === "string" ? input : (input && input.url) || String(input);
      var path = null;
      try {
        var u = new URL(url, win.location.href);
        if (u.origin === win.location.origin) path = u.pathname;
      } catch (e) { path = null; }
      var call = send.apply(win, arguments);
      if (path === null || path.indexOf(apiPrefix) !== 0) return call;
      var start = env.now();
      var done = function (status) { push({ type: "api", route: path, status: status, duration: env.now() - start }); };
      return call.then(function (r) { done(r.status); return r; }, function (e) { done(0); throw e; });
    };
  }

  pageView();
  if (env.vitals) {
    env.vitals.onLCP(vital); env.vitals.onINP(vital); env.vitals.onCLS(vital);
    env.vitals.onFCP(vital); env.vitals.onTTFB(vital);
  }
  win.addEventListener("error", function () { push({ type: "error", kind: "error" }); });
  win.addEventListener("unhandledrejection", function () { push({ type: "error", kind: "unhandledrejection" }); });
  if (send && options.trackApi !== false) trackFetch();
  if (win.history && win.history.pushState) {
    var pushState = win.history.pushState;
    win.history.pushState = function () { var r = pushState.apply(this, arguments); pageView(); return r; };
    win.addEventListener("popstate", pageView);
  }
  // Registered after web-vitals' own listeners, so the values it reports on hide go in this flush.
  doc.addEventListener("visibilitychange", function () { if (doc.visibilityState === "hidden") flush(); });
  win.addEventListener("pagehide", flush);
  env.setInterval(flush, options.flushInterval || 5000);
  return { reportError: reportError, flush: flush, session: session };
}

function soulwatchBrowserEnv(vitals) {
  return { win: window, doc: document, nav: navigator, fetch: window.fetch, crypto: window.crypto,
    vitals: vitals, now: function () { return performance.now(); },
    setInterval: function (f, ms) { return setInterval(f, ms); } };
}
