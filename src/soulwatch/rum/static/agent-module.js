/* import { init, reportError } from ".../rum/v1/agent.mjs"; init({ site: "KEY" }) */
var soulwatchInstance = null;
export function init(options) {
  var endpoint = options.endpoint || new URL("/rum/v1/events", import.meta.url).href;
  soulwatchInstance = soulwatchAgent(Object.assign({}, options, { endpoint: endpoint }), soulwatchBrowserEnv(webVitals));
  return soulwatchInstance;
}
export function reportError(error) {
  return soulwatchInstance ? soulwatchInstance.reportError(error) : error;
}
