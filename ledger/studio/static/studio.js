// The runs table: durations of running runs tick, and their status is polled until they end.
(function () {
  "use strict";
  function fmt(seconds) {
    if (seconds < 60) return seconds.toFixed(1) + "s";
    var whole = Math.floor(seconds), h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + "h " + two(m) + "m " + two(s) + "s" : m + "m " + two(s) + "s";
  }
  var table = document.getElementById("runs");
  if (!table) return;
  function tick() {
    var cells = table.querySelectorAll("td.duration[data-started]");
    var now = Date.now() / 1000;
    for (var i = 0; i < cells.length; i++) {
      cells[i].textContent = fmt(Math.max(0, now - parseFloat(cells[i].getAttribute("data-started"))));
    }
  }
  function poll() {
    var rows = table.querySelectorAll("tr.run");
    var ids = [];
    for (var i = 0; i < rows.length; i++) {
      var badge = rows[i].querySelector(".status");
      if (badge && badge.getAttribute("data-active") === "1") ids.push(rows[i].getAttribute("data-run"));
    }
    if (!ids.length) return;
    var query = ids.map(function (id) { return "run=" + encodeURIComponent(id); }).join("&");
    fetch("/api/status?" + query, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (found) {
      for (var i = 0; i < rows.length; i++) {
        var info = found[rows[i].getAttribute("data-run")];
        if (!info) continue;
        var badge = rows[i].querySelector(".status");
        badge.textContent = info.status;
        badge.className = "status status-" + info.status;
        badge.setAttribute("data-active", info.active ? "1" : "0");
        var cell = rows[i].querySelector("td.duration");
        if (!info.active && cell) { cell.removeAttribute("data-started"); cell.textContent = info.duration; }
      }
    }).catch(function () {});
  }
  setInterval(tick, 1000);
  setInterval(poll, 3000);
})();
