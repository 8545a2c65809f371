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

// Query bar suggestions: field names of the range's newest events, then values of the field
// typed (`field:`), from /search/suggest. A combobox: arrows move, Enter or Tab takes one,
// Escape closes; the caret's word is replaced. Without JavaScript the bar is a plain input.
(function () {
  "use strict";
  function setup() {
    var input = document.getElementById("q");
    var list = document.getElementById("q-suggest");
    if (!input || !list || !window.fetch) return;
    var form = input.form;
    var items = [], active = -1, token = "", timer = null, controller = null;

    function close() {
      list.hidden = true;
      list.textContent = "";
      items = [];
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }
    function highlight(i) {
      active = i;
      Array.prototype.forEach.call(list.children, function (li, j) {
        li.setAttribute("aria-selected", j === i ? "true" : "false");
      });
      if (i >= 0) input.setAttribute("aria-activedescendant", "q-suggest-" + i);
      else input.removeAttribute("aria-activedescendant");
    }
    function take(i) {
      var item = items[i];
      if (!item) return;
      var caret = input.selectionStart || input.value.length;
      var before = input.value.slice(0, caret - token.length);
      var after = input.value.slice(caret);
      input.value = before + item.text + after;
      var at = (before + item.text).length;
      input.setSelectionRange(at, at);
      close();
      input.focus();
      if (item.text.slice(-1) === ":") ask();
    }
    function show(answer) {
      list.textContent = "";
      items = answer.items || [];
      token = answer.token || "";
      if (items.length === 0) { close(); return; }
      items.forEach(function (item, i) {
        var li = document.createElement("li");
        li.id = "q-suggest-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        var main = document.createElement("span");
        main.textContent = item.text;
        var hint = document.createElement("span");
        hint.className = "hint";
        hint.textContent = " " + item.hint;
        li.appendChild(main);
        li.appendChild(hint);
        li.addEventListener("mousedown", function (e) { e.preventDefault(); take(i); });
        list.appendChild(li);
      });
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight(-1);
    }
    function ask() {
      if (controller) controller.abort();
      controller = typeof AbortController === "function" ? new AbortController() : null;
      var caret = input.selectionStart || input.value.length;
      var params = new URLSearchParams();
      params.set("q", input.value.slice(0, caret));
      ["range", "start", "end"].forEach(function (name) {
        var field = form && form.elements[name];
        if (field && field.value) params.set(name, field.value);
      });
      fetch("/search/suggest?" + params.toString(), { credentials: "same-origin", signal: controller ? controller.signal : undefined })
        .then(function (r) { return r.ok ? r.json() : { items: [] }; })
        .then(show)
        .catch(function () {});
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 200);
    });
    input.addEventListener("keydown", function (e) {
      if (list.hidden) {
        if (e.key === "ArrowDown" && e.altKey) { ask(); e.preventDefault(); }
        return;
      }
      if (e.key === "ArrowDown") { highlight(Math.min(active + 1, items.length - 1)); e.preventDefault(); }
      else if (e.key === "ArrowUp") { highlight(Math.max(active - 1, -1)); e.preventDefault(); }
      else if ((e.key === "Enter" || e.key === "Tab") && active >= 0) { take(active); e.preventDefault(); }
      else if (e.key === "Escape") { close(); e.preventDefault(); }
    });
    input.addEventListener("blur", function () { setTimeout(close, 100); });
  }
  document.addEventListener("DOMContentLoaded", setup);
})();
