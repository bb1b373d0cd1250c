// Status page: reload the live part whenever the server-sent events stream says it changed.
(function () {
  "use strict";
  var target = document.getElementById("status-live");
  var badge = document.getElementById("live");
  if (!target || !window.EventSource) { return; }
  var source = new EventSource("/api/v1/events");
  function mark(state, text) { badge.dataset.state = state; badge.textContent = "(live: " + text + ")"; }
  source.addEventListener("open", function () { mark("open", "on"); });
  source.addEventListener("error", function () { mark("error", "reconnecting"); });
  source.addEventListener("status", function (event) {
    var version = JSON.parse(event.data).version;
    fetch("/status/live", { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : Promise.reject(r.status);
    }).then(function (html) {
      target.innerHTML = html;  // rendered by the server with autoescaping
      target.dataset.version = String(version);
      mark("open", "on, updated");
    }).catch(function () { mark("error", "update failed"); });
  });
}());
