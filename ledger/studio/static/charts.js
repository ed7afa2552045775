// Metric charts (uPlot): a run's picked metrics, or one metric of several runs (compare page).
// x is the step (or the value's index when steps were not given) or the time; log scale and
// exponential smoothing apply to every series. While the run is active the page polls for
// new values.
(function () {
  "use strict";
  var holder = document.getElementById("chart");
  var dataNode = document.getElementById("page-data");
  if (!holder || !dataNode || typeof uPlot === "undefined") return;
  var page = JSON.parse(dataNode.textContent);
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  var status = document.getElementById("chart-status");
  var xAxis = document.getElementById("x-axis");
  var logScale = document.getElementById("log-scale");
  var smoothing = document.getElementById("smoothing");
  var series = [];  // [{label, steps, t0, times_us, values}]
  var plot = null;

  function smooth(values, weight) {
    if (!weight) return values;
    var out = new Array(values.length), last = null;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null) { out[i] = null; continue; }
      last = last === null ? v : last * weight + (1 - weight) * v;
      out[i] = last;
    }
    return out;
  }

  function xs(s) {
    var n = s.values.length, out = new Array(n), i;
    if (xAxis && xAxis.value === "time") {
      for (i = 0; i < n; i++) out[i] = s.t0 + s.times_us[i] / 1e6;
      return out;
    }
    var steps = s.steps;
    for (i = 0; i < n; i++) out[i] = !steps || steps[i] === null ? i : steps[i];
    return out;
  }

  function draw() {
    if (plot) { plot.destroy(); plot = null; }
    if (!series.length) { if (status) status.textContent = "no values"; return; }
    var started = performance.now();
    var weight = smoothing ? parseFloat(smoothing.value) : 0;
    var log = logScale && logScale.checked;
    var tables = series.map(function (s) {
      var x = xs(s), y = smooth(s.values, weight), order = [];
      for (var i = 0; i < x.length; i++) order.push(i);
      order.sort(function (a, b) { return x[a] - x[b]; });
      var sx = new Array(x.length), sy = new Array(x.length), sorted = true;
      for (var j = 1; j < x.length; j++) if (x[j] < x[j - 1]) { sorted = false; break; }
      for (var k = 0; k < x.length; k++) {
        var at = sorted ? k : order[k];
        sx[k] = x[at];
        var v = y[at];
        sy[k] = (log && v !== null && v <= 0) ? null : v;
      }
      return [sx, sy];
    });
    var data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    var opts = {
      width: Math.max(300, holder.clientWidth || 800), height: 320,
      scales: { x: { time: !!(xAxis && xAxis.value === "time") }, y: { distr: log ? 3 : 1 } },
      series: [{ label: xAxis && xAxis.value === "time" ? "time" : "step" }].concat(series.map(function (s, i) {
        return { label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: false } };
      })),
      legend: { show: true }
    };
    plot = new uPlot(opts, data, holder);
    var points = series.reduce(function (n, s) { return n + s.values.length; }, 0);
    holder.setAttribute("data-points", String(points));
    holder.setAttribute("data-render-ms", String(Math.round(performance.now() - started)));
    if (status) status.textContent = points + " points";
  }

  function picked() {
    var boxes = document.querySelectorAll(".pick-metric");
    var names = [];
    for (var i = 0; i < boxes.length; i++) if (boxes[i].checked) names.push(boxes[i].value);
    return names;
  }

  function load() {
    var requests;
    if (page.runs) {  // compare: one metric, several runs
      if (!page.metric) return Promise.resolve();
      requests = page.runs.map(function (run) {
        return fetch("/api/metrics?run=" + encodeURIComponent(run) + "&name=" + encodeURIComponent(page.metric))
          .then(function (r) { return r.json(); })
          .then(function (found) { var s = found[page.metric]; return s ? [{ label: page.labels[run], steps: s.steps, t0: s.t0, times_us: s.times_us, values: s.values }] : []; });
      });
    } else {
      var names = picked();
      if (!names.length) { series = []; draw(); return Promise.resolve(); }
      var query = names.map(function (n) { return "name=" + encodeURIComponent(n); }).join("&");
      requests = [fetch("/api/metrics?run=" + encodeURIComponent(page.run) + "&" + query)
        .then(function (r) { return r.json(); })
        .then(function (found) { return names.filter(function (n) { return found[n]; }).map(function (n) { return { label: n, steps: found[n].steps, t0: found[n].t0, times_us: found[n].times_us, values: found[n].values }; }); })];
    }
    return Promise.all(requests).then(function (parts) {
      series = [].concat.apply([], parts);
      draw();
    });
  }

  function live() {
    fetch("/api/run?run=" + encodeURIComponent(page.run)).then(function (r) { return r.json(); }).then(function (info) {
      var badge = document.getElementById("run-status");
      if (badge) { badge.textContent = info.status; badge.className = "status status-" + info.status; }
      var duration = document.getElementById("run-duration");
      if (duration) duration.textContent = info.duration;
      info.metrics.forEach(function (m) {
        var rows = document.querySelectorAll("#metric-summary tr[data-metric]");
        for (var i = 0; i < rows.length; i++) {
          if (rows[i].getAttribute("data-metric") !== m.name) continue;
          rows[i].querySelector(".m-count").textContent = m.count;
          rows[i].querySelector(".m-last").textContent = m.last;
          rows[i].querySelector(".m-min").textContent = m.min;
          rows[i].querySelector(".m-max").textContent = m.max;
          rows[i].querySelector(".m-step").textContent = m.last_step;
        }
      });
      return load().then(function () { if (info.active) setTimeout(live, 2000); });
    }).catch(function () { setTimeout(live, 5000); });
  }

  var controls = [xAxis, logScale, smoothing];
  controls.forEach(function (c) { if (c) c.addEventListener(c === smoothing ? "input" : "change", draw); });
  var boxes = document.querySelectorAll(".pick-metric");
  for (var i = 0; i < boxes.length; i++) boxes[i].addEventListener("change", load);
  load().then(function () { if (page.active) setTimeout(live, 2000); });
})();
