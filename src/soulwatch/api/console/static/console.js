// soulwatch console: live refresh, charts, query completion, silence preview.
// Pages read without it; it only makes them update and draws the charts.
(function () {
  "use strict";

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  var PALETTE = ["#2459c4", "#d1495b", "#2a9d8f", "#e9a23b", "#7b2cbf", "#6c757d", "#00798c", "#c44900"];

  function drawCharts(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("figure.chart").forEach(function (fig) {
      var node = fig.querySelector("script.chart-data");
      if (!node || fig.dataset.drawn) return;
      var spec = JSON.parse(node.textContent);
      var series = [{}];
      var columns = [spec.times];
      spec.series.forEach(function (s, i) {
        series.push({ label: s[0], stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false });
        columns.push(s[1]);
      });
      if (spec.threshold !== null && spec.threshold !== undefined) {
        series.push({ label: "threshold", stroke: cssVar("--bad") || "#b3261e", dash: [6, 4], width: 1 });
        columns.push(spec.times.map(function () { return spec.threshold; }));
      }
      var width = Math.max(240, fig.clientWidth - 12);
      var opts = {
        width: width,
        height: parseInt(fig.dataset.height || "220", 10),
        series: series,
        axes: [{ stroke: cssVar("--muted") }, { stroke: cssVar("--muted") }],
        legend: { show: spec.series.length <= 12 },
        cursor: { drag: { x: false, y: false } },
        // Times in UTC, as every page writes them.
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      };
      fig.dataset.drawn = "1";
      var plot = new uPlot(opts, columns, fig);
      fig.uplot = plot;
    });
  }

  function resizeCharts() {
    document.querySelectorAll("figure.chart").forEach(function (fig) {
      if (fig.uplot) fig.uplot.setSize({ width: Math.max(240, fig.clientWidth - 12), height: fig.uplot.height });
    });
  }

  // Live refresh: fetch this URL's <main> again and swap it in, unless the
  // person is typing in a form on it.
  var inFlight = false;
  function refresh() {
    var active = document.activeElement;
    if (inFlight || (active && active.closest && active.closest("main form"))) return;
    inFlight = true;
    fetch(location.href, { headers: { "X-Console-Fragment": "main" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        inFlight = false;
        if (html === null) return;
        var main = document.getElementById("main");
        main.innerHTML = html;
        drawCharts(main);
        wire(main);
        var stamp = document.getElementById("updated");
        if (stamp) stamp.textContent = new Date().toISOString().replace("T", " ").slice(0, 19) + " UTC";
        document.dispatchEvent(new CustomEvent("console:refreshed"));
      })
      .catch(function () { inFlight = false; /* the next event or tick tries again */ });
  }

  // The server pushes "alerts" (a state changed) and "tick" (every refresh
  // period) over Server-Sent Events; while the stream is down, or when the
  // browser or the server refuses it, the page polls instead.
  function startLive() {
    var seconds = parseFloat(document.body.dataset.refresh || "0");
    if (!seconds || seconds < 0.5) return;
    var timer = null;
    function polling(on) {
      if (on && timer === null) timer = setInterval(refresh, seconds * 1000);
      if (!on && timer !== null) { clearInterval(timer); timer = null; }
    }
    var url = document.body.dataset.events;
    if (!url || typeof EventSource === "undefined") { polling(true); return; }
    polling(true);  // until the stream is open
    var source = new EventSource(url + "?tick=" + Math.max(1, Math.round(seconds)));
    document.body.dataset.live = "connecting";
    source.addEventListener("open", function () { polling(false); document.body.dataset.live = "open"; });
    source.addEventListener("alerts", refresh);
    source.addEventListener("tick", refresh);
    source.addEventListener("error", function () {
      document.body.dataset.live = source.readyState === EventSource.CLOSED ? "polling" : "connecting";
      polling(true);
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function debounce(fn, ms) {
    var t = null;
    return function () {
      var args = arguments;
      clearTimeout(t);
      t = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  function wirePreview(root) {
    var input = root.querySelector("input[data-preview]");
    var box = root.querySelector("#preview");
    if (!input || !box || input.dataset.wired) return;
    input.dataset.wired = "1";
    input.addEventListener("input", debounce(function () {
      fetch(input.dataset.preview + "?matchers=" + encodeURIComponent(input.value), { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) { box.innerHTML = html; });
    }, 200));
  }

  function wireCompletion(root) {
    var area = root.querySelector("textarea[data-complete]");
    if (!area || area.dataset.wired) return;
    area.dataset.wired = "1";
    var list = area.parentNode.querySelector(".suggestions");
    var items = [];
    var selected = -1;

    function close() { list.hidden = true; items = []; selected = -1; }
    function render() {
      list.innerHTML = "";
      items.forEach(function (text, i) {
        var li = document.createElement("li");
        li.textContent = text;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", i === selected ? "true" : "false");
        li.addEventListener("mousedown", function (e) { e.preventDefault(); accept(i); });
        list.appendChild(li);
      });
      list.hidden = items.length === 0;
    }
    function accept(i) {
      var before = area.value.slice(0, area.selectionStart);
      var after = area.value.slice(area.selectionStart);
      var word = before.match(/[\w:]*$/)[0];
      var text = items[i];
      area.value = before.slice(0, before.length - word.length) + text + after;
      var pos = before.length - word.length + text.length;
      area.setSelectionRange(pos, pos);
      close();
      area.focus();
    }
    var ask = debounce(function () {
      var before = area.value.slice(0, area.selectionStart);
      if (!/[\w:"{,]$/.test(before)) { close(); return; }
      fetch(area.dataset.complete + "?before=" + encodeURIComponent(before), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (body) { items = body.suggestions || []; selected = items.length ? 0 : -1; render(); })
        .catch(close);
    }, 120);
    area.addEventListener("input", ask);
    area.addEventListener("blur", function () { setTimeout(close, 100); });
    area.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); area.form.submit(); return; }
      if (list.hidden) return;
      if (e.key === "ArrowDown") { selected = (selected + 1) % items.length; render(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { selected = (selected - 1 + items.length) % items.length; render(); e.preventDefault(); }
      else if (e.key === "Tab" || e.key === "Enter") { if (selected >= 0) { accept(selected); e.preventDefault(); } }
      else if (e.key === "Escape") { close(); }
    });
  }

  function wire(root) {
    wirePreview(root);
    wireCompletion(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    wire(document);
    startLive();
    window.addEventListener("resize", debounce(resizeCharts, 150));
  });
})();
