// pipewise dashboard: draws the charts from the JSON beside each canvas
// (every chart has a table with the same figures), and sizes the
// probability bars. Pages work without it.
(function () {
  "use strict";
  function fmtMoney(x) {
    var a = Math.abs(x), s = x < 0 ? "-" : "";
    if (a >= 1e9) return s + (a / 1e9).toFixed(2) + "B";
    if (a >= 1e6) return s + (a / 1e6).toFixed(1) + "M";
    if (a >= 1e5) return s + (a / 1e3).toFixed(0) + "k";
    if (a >= 1e3) return s + (a / 1e3).toFixed(1) + "k";
    return s + Math.round(a).toLocaleString("en");
  }
  var ink = "#1b1f24", brand = "#1f4e79", band = "rgba(31,78,121,0.18)";
  function data(canvas) {
    var el = document.getElementById(canvas.getAttribute("data-source"));
    return el ? JSON.parse(el.textContent) : [];
  }
  var money = { ticks: { callback: function (v) { return fmtMoney(v); } } };
  var charts = {
    fan: function (rows) {
      var labels = rows.map(function (r) { return r.period; });
      return {
        type: "line",
        data: { labels: labels, datasets: [
          { label: "P90", data: rows.map(function (r) { return r.p90; }), borderColor: "rgba(31,78,121,0.5)", backgroundColor: band, fill: "+1", pointRadius: 0 },
          { label: "P10", data: rows.map(function (r) { return r.p10; }), borderColor: "rgba(31,78,121,0.5)", backgroundColor: band, fill: false, pointRadius: 0 },
          { label: "P50 (most likely)", data: rows.map(function (r) { return r.p50; }), borderColor: brand, borderWidth: 3, fill: false },
          { label: "Reps' commit", data: rows.map(function (r) { return r.commit; }), borderColor: "#a3261b", borderDash: [6, 4], fill: false },
          { label: "Stage-weighted", data: rows.map(function (r) { return r.stage_weighted; }), borderColor: "#7a4b00", borderDash: [2, 3], fill: false },
          { label: "Run-rate", data: rows.map(function (r) { return r.run_rate; }), borderColor: "#17663a", borderDash: [10, 3], fill: false }
        ] },
        options: { maintainAspectRatio: false, scales: { y: money }, plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + fmtMoney(c.parsed.y); } } } } }
      };
    },
    accuracy: function (rows) {
      var labels = rows.map(function (r) { return r.period + " · " + r.as_of; });
      return {
        type: "line",
        data: { labels: labels, datasets: [
          { label: "P90", data: rows.map(function (r) { return r.p90; }), borderColor: "rgba(31,78,121,0.4)", backgroundColor: band, fill: "+1", pointRadius: 0 },
          { label: "P10", data: rows.map(function (r) { return r.p10; }), borderColor: "rgba(31,78,121,0.4)", fill: false, pointRadius: 0 },
          { label: "P50", data: rows.map(function (r) { return r.p50; }), borderColor: brand, fill: false, pointRadius: 2 },
          { label: "Actual", data: rows.map(function (r) { return r.actual; }), borderColor: "#a3261b", backgroundColor: "#a3261b", showLine: false, pointRadius: 4, pointStyle: "rectRot" }
        ] },
        options: { maintainAspectRatio: false, scales: { y: money, x: { ticks: { maxRotation: 60, autoSkip: true } } } }
      };
    },
    percentiles: function (rows) {
      rows = rows.filter(function (r) { return r.percentile !== null; });
      return {
        type: "bar",
        data: { labels: rows.map(function (r) { return r.label; }), datasets: [
          { label: "Better than this share of peers (%)", data: rows.map(function (r) { return r.percentile; }),
            backgroundColor: rows.map(function (r) { return r.percentile >= 50 ? "#17663a" : "#a3261b"; }) }
        ] },
        options: { indexAxis: "y", maintainAspectRatio: false, scales: { x: { min: 0, max: 100, title: { display: true, text: "better than this share of peers (%): green at or above the median peer, red below" } }, y: { ticks: { autoSkip: false } } }, plugins: { legend: { display: false } } }
      };
    },
    skills: function (rows) {
      return {
        type: "bar",
        data: { labels: rows.map(function (r) { return r.label; }), datasets: [
          { label: "This rep", data: rows.map(function (r) { return r.estimate; }), backgroundColor: brand },
          { label: "Top quartile", data: rows.map(function (r) { return r.top_quartile; }), backgroundColor: "#9bb7d4" },
          { label: "Top performers", data: rows.map(function (r) { return r.top_performers; }), backgroundColor: "#17663a" }
        ] },
        options: { maintainAspectRatio: false }
      };
    },
    bias: function (rows) {
      return {
        type: "bar",
        data: { labels: rows.map(function (r) { return r.rep; }), datasets: [
          { label: "95% interval of the stage gap", data: rows.map(function (r) { return [r.ci_low, r.ci_high]; }),
            backgroundColor: rows.map(function (r) { return r.mean_gap > 0 ? "rgba(163,38,27,0.55)" : "rgba(11,74,143,0.55)"; }) },
          { type: "scatter", label: "Mean gap (stages)", data: rows.map(function (r, i) { return { x: r.mean_gap, y: r.rep }; }), backgroundColor: ink, pointRadius: 4 }
        ] },
        options: { indexAxis: "y", maintainAspectRatio: false, scales: { x: { title: { display: true, text: "stages ahead (+) or behind (−) the evidence" } }, y: { ticks: { autoSkip: false } } } }
      };
    }
  };
  function draw() {
    document.querySelectorAll(".prob .bar[data-w]").forEach(function (b) {
      b.style.width = (3 * Number(b.getAttribute("data-w")) / 100) + "rem";
    });
    if (typeof window.Chart === "undefined") return;
    window.Chart.defaults.color = ink;
    window.Chart.defaults.font.family = "system-ui, sans-serif";
    document.querySelectorAll("canvas[data-chart]").forEach(function (c) {
      var make = charts[c.getAttribute("data-chart")];
      if (!make) return;
      var rows = data(c);
      if (!rows.length) { c.parentNode.hidden = true; return; }
      new window.Chart(c, make(rows));
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
