/* <script src=".../rum/v1/agent.js" data-site="KEY" defer>: starts the agent from the tag. */
(function (script) {
  if (!script || !script.getAttribute("data-site")) return;
  var endpoint = script.getAttribute("data-endpoint") || new URL("/rum/v1/events", script.src).href;
  window.soulwatch = soulwatchAgent({ site: script.getAttribute("data-site"), endpoint: endpoint },
    soulwatchBrowserEnv(webVitals));
})(document.currentScript);
