"""Files written once beside the pages: plotly.js, the stylesheet and the page script.

Everything is local (the site works from ``file://`` with no network). The page
script reads each page's figures from a ``<script type="application/json">``
block (data, never code), draws them with plotly.js and wires the filter box.
"""

from __future__ import annotations

from pathlib import Path

PLOTLY_JS = "plotly.min.js"
REPORT_JS = "report.js"
REPORT_CSS = "report.css"

CSS = """\
:root { --fg:#1d1d1f; --muted:#5f6368; --line:#dde1e6; --bg:#f6f7f9; --card:#fff; --accent:#1f5fbf;
        --bad:#b3261e; --warn:#8a5a00; --good:#1e7b34; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--fg); background:var(--bg); }
header.top { position:sticky; top:0; z-index:10; background:#16213a; color:#fff; padding:8px 20px;
             display:flex; flex-wrap:wrap; gap:6px 18px; align-items:center; }
header.top .brand { font-weight:700; letter-spacing:.02em; margin-right:6px; }
header.top nav { display:flex; flex-wrap:wrap; gap:4px 14px; flex:1; }
header.top a { color:#cfe0ff; text-decoration:none; }
header.top a:hover { text-decoration:underline; }
header.top a.active { color:#fff; font-weight:600; border-bottom:2px solid #7fb0ff; }
#filter { min-width:260px; padding:5px 9px; border-radius:6px; border:1px solid #8090b0; font:inherit; }
main { max-width:1400px; margin:0 auto; padding:16px 22px 60px; }
h1 { font-size:24px; margin:10px 0 4px; }
h2 { font-size:19px; margin:28px 0 8px; padding-bottom:4px; border-bottom:1px solid var(--line); }
h3 { font-size:15px; margin:18px 0 6px; }
p.lead, .muted { color:var(--muted); }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(560px,1fr)); gap:14px; }
figure.card { margin:0; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:6px 8px 8px; }
figure.card.wide { grid-column:1/-1; }
figure.card figcaption { color:var(--muted); font-size:12.5px; padding:2px 6px; }
.plot { width:100%; min-height:300px; }
table { border-collapse:collapse; background:var(--card); margin:6px 0 14px; width:100%; font-size:13px; }
th, td { border:1px solid var(--line); padding:4px 8px; text-align:left; vertical-align:top; }
th { background:#eef1f5; font-weight:600; position:sticky; top:44px; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.reason { max-width:560px; overflow-wrap:anywhere; }
table.efficiency td.eff, table.efficiency td.mfu { font-weight:600; }
td[title], th[title] { cursor:help; }
.status { font-weight:600; white-space:nowrap; }
.status-ok { color:var(--good); } .status-skipped { color:var(--warn); }
.status-oom, .status-timeout, .status-crashed, .status-diverged, .status-error { color:var(--bad); }
.pill { display:inline-block; padding:0 7px; border-radius:9px; background:#e8eefc; color:#1f3d7a; font-size:12px;
        margin:1px 2px; white-space:nowrap; }
.pill.bad { background:#fde7e5; color:var(--bad); } .pill.warn { background:#fff1d6; color:var(--warn); }
ul.links { columns:2 320px; padding-left:18px; }
details pre { max-height:420px; overflow:auto; background:#fbfbfc; border:1px solid var(--line); padding:8px;
              font-size:12px; white-space:pre-wrap; overflow-wrap:anywhere; }
.note { background:#fff8e5; border:1px solid #f0d48a; padding:6px 10px; border-radius:6px; margin:8px 0; }
.empty { color:var(--muted); font-style:italic; }
[hidden] { display:none !important; }
"""

JS = """\
(function () {
  "use strict";
  var config = { responsive: true, displaylogo: false,
                 toImageButtonOptions: { format: "png", scale: 2 } };

  function readFigures() {
    var node = document.getElementById("xpubench-figures");
    return node ? JSON.parse(node.textContent) : [];
  }

  function renderFigures() {
    var figs = readFigures();
    var root = document.documentElement;
    root.setAttribute("data-plots-expected", String(figs.length));
    if (!figs.length) { root.setAttribute("data-plots-rendered", "0"); return; }
    if (typeof Plotly === "undefined") {
      var warn = document.createElement("p");
      warn.className = "note";
      warn.textContent = "plotly.min.js did not load: charts cannot be drawn. Keep it beside this page.";
      document.querySelector("main").prepend(warn);
      console.error("xpubench report: plotly.min.js missing");
      return;
    }
    var jobs = figs.map(function (f) {
      var div = document.getElementById(f.id);
      return div ? Plotly.newPlot(div, f.data, f.layout, config) : Promise.resolve(null);
    });
    Promise.all(jobs).then(function () {
      root.setAttribute("data-plots-rendered", String(document.querySelectorAll(".js-plotly-plot").length));
    }, function (err) {
      console.error("xpubench report: a chart failed to draw: " + err);
    });
  }

  function setupFilter() {
    var box = document.getElementById("filter");
    if (!box) return;
    var items = Array.prototype.slice.call(document.querySelectorAll("[data-filter]"));
    var texts = items.map(function (el) {
      return ((el.getAttribute("data-filter") || "") + " " + el.textContent).toLowerCase();
    });
    function apply() {
      // An item is shown when it matches, or when an enclosing or enclosed item matches
      // (a machine's section stays visible around the one chart that matches, and a
      // matching section shows everything in it).
      var terms = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
      var shown = items.map(function () { return terms.length === 0; });
      items.forEach(function (el, i) {
        if (!terms.every(function (t) { return texts[i].indexOf(t) !== -1; })) return;
        items.forEach(function (other, j) {
          if (other === el || el.contains(other) || other.contains(el)) shown[j] = true;
        });
      });
      items.forEach(function (el, i) { el.hidden = !shown[i]; });
      if (window.location.hash.indexOf("#q=") === 0 || box.value) {
        history.replaceState(null, "", box.value ? "#q=" + encodeURIComponent(box.value) : "#");
      }
    }
    box.addEventListener("input", apply);
    if (window.location.hash.indexOf("#q=") === 0) {
      box.value = decodeURIComponent(window.location.hash.slice(3));
      apply();
    }
  }

  function start() { setupFilter(); renderFigures(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
"""


def plotly_js_source() -> bytes:
    """plotly.js as shipped inside the plotly Python package (no network)."""
    try:
        from importlib.resources import files

        return (files("plotly") / "package_data" / PLOTLY_JS).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        from plotly.offline import get_plotlyjs

        return get_plotlyjs().encode("utf-8")


def write_assets(out_dir: Path) -> None:
    """Write plotly.js (only when changed), the stylesheet and the page script."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / PLOTLY_JS
    src = plotly_js_source()
    if not target.exists() or target.stat().st_size != len(src) or target.read_bytes() != src:
        target.write_bytes(src)
    (out_dir / REPORT_CSS).write_text(CSS, encoding="utf-8")
    (out_dir / REPORT_JS).write_text(JS, encoding="utf-8")
