// crowsnest console: draws the charts whose data the server put in `data-chart` attributes
// (histograms and timecharts) with uPlot. No inline script, no eval: the CSP forbids both.
(function () {
  "use strict";
  var palette = ["#3b6fd4", "#d4663b", "#3ba86b", "#a83b9a", "#b8a02c", "#2ca8b8", "#777777", "#d43b5c"];

  function draw(el) {
    if (el.dataset.drawn || typeof uPlot === "undefined") return;
    var data;
    try {
      data = JSON.parse(el.dataset.chart);
    } catch (e) {
      el.textContent = "chart data unreadable";
      return;
    }
    el.dataset.drawn = "1";
    if (!data.x || data.x.length === 0) {
      el.textContent = "No events in this range.";
      return;
    }
    var series = [{}];
    var columns = [data.x];
    data.series.forEach(function (s, i) {
      var color = palette[i % palette.length];
      series.push({
        label: s.label,
        stroke: color,
        fill: data.series.length === 1 ? color + "55" : undefined,
        paths: data.series.length === 1 && uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.9, 40] }) : undefined,
        points: { show: false }
      });
      columns.push(s.values);
    });
    var width = Math.max(300, el.clientWidth || el.parentNode.clientWidth || 800);
    new uPlot({ width: width, height: 160, series: series, legend: { show: data.series.length > 1 }, cursor: { drag: { x: false, y: false } } }, columns, el);
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.target); });
})();
