// The run page's logs: while the run is active, each log is polled for the parts appended
// after the version the page holds, and the new text appended (as text, never as HTML).
(function () {
  "use strict";
  var source = document.getElementById("page-data");
  if (!source) return;
  var data = JSON.parse(source.textContent);
  if (!data.logs || !data.logs.length || !data.active) return;
  var blocks = document.querySelectorAll("div.log[data-log]");
  var logs = [];
  for (var i = 0; i < blocks.length; i++) {
    var name = blocks[i].getAttribute("data-log");
    for (var j = 0; j < data.logs.length; j++) {
      if (data.logs[j].name === name) {
        logs.push({ name: name, version: data.logs[j].version, pre: blocks[i].querySelector("pre.log-text") });
      }
    }
  }
  var timer = null;
  function poll() {
    logs.forEach(function (log) {
      var query = "run=" + encodeURIComponent(data.run) + "&name=" + encodeURIComponent(log.name) + "&after=" + log.version;
      fetch("/api/log?" + query, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (found) {
        if (found.text) log.pre.appendChild(document.createTextNode(found.text));
        log.version = found.version;
        if (!found.active && timer !== null) { clearInterval(timer); timer = null; }
      }).catch(function () {});
    });
  }
  timer = setInterval(poll, 1000);
})();
