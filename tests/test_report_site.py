"""The report site in a real browser: headless Debian chromium driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe`` (commands on fd 3, events on
fd 4, NUL-separated JSON), so no extra Python package is needed. Every page is
loaded from ``file://``; the test collects console errors, uncaught exceptions,
failed loads, network requests and JavaScript dialogs, and counts the plotly
charts that actually rendered an SVG.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests import report_data as D
from xpubench.fmt import fmt_pct
from xpubench.report import build_site
from xpubench.report.history import history_page
from xpubench.report.machines import machines_page
from xpubench.report.model import Model
from xpubench.report.records import esc
from xpubench.report.roofline_page import roofline_page
from xpubench.report.suite_page import efficiency_section, suite_page
from xpubench.results.reader import load_runs

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe"]


class CDPError(RuntimeError):
    pass


class Browser:
    """Minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile_dir: str):
        cmd_r, cmd_w = os.pipe()  # we write commands, chromium reads them on fd 3
        evt_r, evt_w = os.pipe()  # chromium writes replies and events on fd 4

        def child_fds() -> None:  # runs in the child between fork and exec
            r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(evt_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     preexec_fn=child_fds, close_fds=False)
        os.close(cmd_r)
        os.close(evt_w)
        self._out = cmd_w
        self._in = evt_r
        self._next_id = 0
        self._cond = threading.Condition()
        self._replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.session: str | None = None
        self._handled = 0

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._in, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            with self._cond:
                for raw in messages:
                    msg = json.loads(raw)
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                self._cond.notify_all()

    def send(self, method: str, params: dict | None = None, *, session: bool = True, timeout: float = 30) -> dict:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise CDPError(f"{method}: no reply ({'chromium exited' if self.proc.poll() is not None else 'timeout'})")
                self._cond.wait(left)
            reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open_tab(self, width: int = 1280, height: int = 900) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise CDPError(f"evaluate failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def load(self, url: str, timeout: float = 60) -> "PageVisit":
        """Navigate, wait for load and for every chart to render; return what happened.

        JavaScript dialogs (an injected ``alert``) are recorded and dismissed so they
        cannot block the page.
        """
        with self._cond:
            mark = len(self.events)
        self._handled = 0
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        loaded, rendered = False, None
        while time.monotonic() < deadline:
            self._dismiss_dialogs(mark)
            with self._cond:
                loaded = loaded or any(e.get("method") == "Page.loadEventFired" for e in self.events[mark:])
            if loaded:
                rendered = self.evaluate("document.documentElement.getAttribute('data-plots-rendered')")
                if rendered is not None:
                    break
            time.sleep(0.05)
        if not loaded:
            raise CDPError(f"{url}: no load event within {timeout}s")
        time.sleep(0.2)  # let late console messages arrive
        self._dismiss_dialogs(mark)
        with self._cond:
            events = list(self.events[mark:])
        return PageVisit(url, events, rendered)

    def _dismiss_dialogs(self, mark: int) -> None:
        with self._cond:
            dialogs = [e for e in self.events[mark:] if e.get("method") == "Page.javascriptDialogOpening"]
        for _ in dialogs[self._handled:]:
            self._handled += 1
            try:
                self.send("Page.handleJavaScriptDialog", {"accept": True}, timeout=5)
            except CDPError:
                pass

    def screenshot(self, path: Path, max_height: int = 7000) -> None:
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False, timeout=5)
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._out, self._in):
            try:
                os.close(fd)
            except OSError:
                pass
        self.stderr.close()


class PageVisit:
    def __init__(self, url: str, events: list[dict], rendered: str | None):
        self.url = url
        self.events = events
        self.rendered = rendered

    def errors(self) -> list[str]:
        out = []
        for ev in self.events:
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(f"exception: {d.get('text')} {d.get('exception', {}).get('description', '')}")
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                out.append(f"load failed: {p.get('errorText')}")
        return out

    def dialogs(self) -> list[str]:
        return [ev["params"].get("message", "") for ev in self.events if ev.get("method") == "Page.javascriptDialogOpening"]

    def request_urls(self) -> list[str]:
        return [ev["params"]["request"]["url"] for ev in self.events if ev.get("method") == "Network.requestWillBeSent"]


# --------------------------------------------------------------------------- fixtures
# Charts each page must render for the data of report_data.site_runs() plus one pytest-benchmark file
# (worked out by hand from the builders; see the comments).
EXPECTED_PLOTS = {
    "index.html": 0,
    # laptop: throughput, speedup, precision (bf16), memory, energy (estimate) = 5;
    # gpu-node: throughput, speedup, precision (bf16, tf32), memory, energy = 5
    "suite-normalization.html": 10,
    # laptop: throughput x2 units, speedup, MFU, memory, energy x2 = 7; gpu-node: same + precision = 8
    "suite-training.html": 15,
    # hostile machine: throughput, speedup, memory (energy unavailable, no reduced precision) = 3
    "suite-dropout.html": 3,
    # pytest-benchmark file: throughput, speedup vs python:cpu:fp32 = 2
    "suite-pytest.html": 2,
    # one per machine and precision with FLOPs and bytes: hostile fp32 (no ceilings), gpu-node fp32, tf32,
    # bf16, laptop fp32, bf16 = 6 (the pytest-benchmark run records no FLOPs)
    "roofline.html": 6,
    # one per suite and unit: dropout, normalization, pytest, training (samples, tokens) = 5
    "machines.html": 5,
    # one per suite/case/mode: dropout 1, normalization 2, pytest 2, training 2 = 7
    "history.html": 7,
}


# What each rendered chart drew: its layout and traces as plotly holds them, and the SVG it made.
FIGURES_JS = """Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (gd) {
  var fig = gd.closest('figure');
  return {id: gd.id, kind: fig ? fig.getAttribute('data-kind') : null,
          caption: fig && fig.querySelector('figcaption') ? fig.querySelector('figcaption').textContent : '',
          title: gd.layout.title.text, xtype: gd.layout.xaxis.type, ytype: gd.layout.yaxis.type,
          xtitle: gd.layout.xaxis.title.text, ytitle: gd.layout.yaxis.title.text,
          annotations: (gd.layout.annotations || []).map(function (a) { return a.text; }),
          traces: gd.data.map(function (t) {
            return {type: t.type, mode: t.mode || null, name: t.name, x: t.x, y: t.y,
                    dash: t.line ? t.line.dash || null : null}; }),
          lines: gd.querySelectorAll('.scatterlayer path.js-line').length,
          points: gd.querySelectorAll('.scatterlayer path.point').length,
          bars: Array.from(gd.querySelectorAll('.barlayer .point path')).filter(function (b) {
            var r = b.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length,
          ticks: Array.from(gd.querySelectorAll('.xtick text, .ytick text')).map(function (t) {
            return t.textContent; })};
})"""
# Every row of the efficiency tables: its machine section, cell texts, and the efficiency cell's tooltip.
EFFICIENCY_JS = """Array.from(document.querySelectorAll('table.efficiency')).map(function (t) {
  return {machine: t.closest('section').querySelector('h2').textContent,
          headers: Array.from(t.querySelectorAll('th')).map(function (h) { return h.textContent; }),
          rows: Array.from(t.querySelectorAll('tbody tr')).map(function (r) {
            return {cells: Array.from(r.cells).map(function (c) { return c.textContent; }),
                    eff_title: r.querySelector('td.eff').title, ceil_title: r.querySelector('td.ceil').title}; })};
})"""


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    for doc in D.site_runs():
        D.write_run(root, doc)
    pyb = D.pytest_benchmark_doc({"test_sort": D.REAL_SAMPLES["numpy_sort_20k"],
                                  "test_layernorm": D.REAL_SAMPLES["torch_layernorm_64x512_cpu"]})
    (root / "ci-runner").mkdir()
    (root / "ci-runner" / "0001_pytest.json").write_text(json.dumps(pyb))
    return build_site([root], tmp_path_factory.mktemp("site") / "report", title="xpubench test report")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed")
    b = Browser(CHROMIUM, str(tmp_path_factory.mktemp("chromium-profile")))
    try:
        b.open_tab()
        yield b
    finally:
        b.close()


def hover(browser: Browser, fig_id: str, curve: int, point: int) -> str:
    """Hover a point the way a mouse would (plotly's Fx.hover) and return the label's text."""
    return browser.evaluate(
        f"(function () {{ var gd = document.getElementById({json.dumps(fig_id)});"
        f" Plotly.Fx.hover(gd, [{{curveNumber: {curve}, pointNumber: {point}}}]);"
        " var h = gd.querySelector('.hoverlayer'); return h ? h.textContent : null; })()")


@pytest.fixture(scope="session")
def visits(site: Path, browser: Browser) -> dict[str, PageVisit]:
    out = {}
    for name in EXPECTED_PLOTS:
        visit = browser.load((site.parent / name).as_uri())
        visit.plot_count = browser.evaluate(
            "Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".filter(function (d) { return d.querySelector('svg.main-svg'); }).length")
        visit.script_count = browser.evaluate("document.scripts.length")
        visit.text = browser.evaluate("document.body.innerText")
        visit.svg_text = browser.evaluate(
            "Array.from(document.querySelectorAll('svg text')).map(function (t) { return t.textContent; })")
        visit.active_elements = browser.evaluate(
            "document.querySelectorAll('img, iframe, object, embed, [onerror], [onload], [onclick], "
            "[onmouseover]').length")
        visit.hovers = {}
        visit.figures = browser.evaluate(FIGURES_JS)
        visit.efficiency = browser.evaluate(EFFICIENCY_JS)
        if name == "roofline.html":
            browser.screenshot(ARTIFACTS / "report_roofline.png")
            # gpu-node · fp32 (fig-2): traces are the two roofs, then torch:cpu:fp32, torch:cuda:fp32 points
            visit.hovers["gpu-point"] = hover(browser, "fig-2", 3, 0)
            time.sleep(0.1)  # plotly throttles hover events on one chart (50 ms)
            visit.hovers["gpu-roof"] = hover(browser, "fig-2", 1, 64)  # its last vertex (65 of them)
        if name == "suite-training.html":
            browser.screenshot(ARTIFACTS / "report_suite_training.png")
            mfu = [f["id"] for f in visit.figures if f["kind"] == "mfu"]
            visit.hovers["mfu"] = hover(browser, mfu[0], 1, 2) if mfu else None  # gpu-node, spec, cnn bf16
        if name == "suite-normalization.html":
            browser.screenshot(ARTIFACTS / "report_suite_normalization.png")
            # gpu-node throughput: curve 1 is torch:cuda:fp32 (baseline torch:cpu:fp32 comes first)
            visit.hovers["gpu-cuda"] = hover(browser, "fig-1", 1, 0)
            visit.hovers["laptop-energy"] = hover(browser, "fig-10", 0, 0)  # laptop's 5th figure: energy
        if name == "suite-dropout.html":
            visit.hovers["hostile"] = hover(browser, "fig-1", 0, 0)
        out[name] = visit
    return out


# --------------------------------------------------------------------------- tests
def test_site_files(site: Path):
    out = site.parent
    assert site.name == "index.html"
    assert set(EXPECTED_PLOTS) <= {p.name for p in out.glob("*.html")}
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    for page in out.glob("*.html"):
        html = page.read_text()
        assert "cdn." not in html and "https://" not in html, page.name
        if EXPECTED_PLOTS.get(page.name):
            assert '<script src="plotly.min.js"></script>' in html


@pytest.mark.parametrize("page", sorted(EXPECTED_PLOTS))
def test_page_renders_without_errors(visits: dict[str, PageVisit], page: str):
    v = visits[page]
    assert v.errors() == []
    assert v.dialogs() == []
    assert v.rendered == str(EXPECTED_PLOTS[page])
    assert v.plot_count == EXPECTED_PLOTS[page]
    offsite = [u for u in v.request_urls() if not u.startswith(("file:", "data:", "about:", "blob:"))]
    assert offsite == []


def test_pages_are_not_silent_about_failures(visits: dict[str, PageVisit]):
    norm = visits["suite-normalization.html"].text
    assert "CUDA out of memory" in norm and "oom" in norm
    training = visits["suite-training.html"].text
    assert "diverged" in training and "loss became NaN or Inf" in training
    assert "skipped" in training and "jax[cpu] missing" in training
    history = visits["history.html"].text
    assert "diverged" in history and "oom" in history
    assert "1 flagged regression point(s)" in history


def test_index_lists_machines_runs_and_links(visits: dict[str, PageVisit], site: Path):
    text = visits["index.html"].text
    for needle in ("laptop", "gpu-node", "ci-runner", "NVIDIA H100 80GB HBM3", "Intel Core i7-1260P",
                   "torch 2.13.0", "torch:cuda:bf16", "python:cpu:fp32", "lap2", "gpu0"):
        assert needle in text, needle
    html = site.read_text()
    for link in ("suite-normalization.html", "suite-training.html", "roofline.html", "machines.html",
                 "history.html"):
        assert f'href="{link}"' in html
    assert 'id="filter"' in html


def test_hostile_strings_render_as_text(visits: dict[str, PageVisit], site: Path):
    for name, v in visits.items():
        assert v.dialogs() == [], name
        assert v.active_elements == 0, name
        assert v.script_count == (1 if EXPECTED_PLOTS[name] == 0 else 3), name
    assert D.HOSTILE_MACHINE in visits["index.html"].text
    assert '"><svg onload=alert(4)>' in visits["index.html"].text
    dropout = visits["suite-dropout.html"]
    assert D.HOSTILE_MACHINE in dropout.text
    assert D.HOSTILE_REASON in dropout.text
    assert any(D.HOSTILE_CASE in t for t in dropout.svg_text)  # axis label drawn by plotly, as text
    raw = (site.parent / "suite-dropout.html").read_text()
    assert "<script>alert" not in raw and "<img" not in raw and "</script><script>alert" not in raw


def test_filter_box_hides_rows(browser: Browser, site: Path, visits):
    browser.load((site.parent / "index.html").as_uri() + "#q=gpu-node")
    hidden = browser.evaluate("Array.from(document.querySelectorAll('tbody tr')).filter(function (r) "
                              "{ return r.hidden; }).length")
    shown = browser.evaluate("Array.from(document.querySelectorAll('tbody tr')).filter(function (r) "
                             "{ return !r.hidden; }).map(function (r) { return r.textContent; })")
    assert hidden > 0 and shown and all("gpu-node" in t for t in shown)


def test_filter_keeps_sections_around_matching_charts(browser: Browser, site: Path, visits):
    browser.load((site.parent / "suite-normalization.html").as_uri() + "#q=gpu-node")
    sections = browser.evaluate("Array.from(document.querySelectorAll('main > section')).map(function (s) "
                                "{ return [s.querySelector('h2').textContent, s.hidden]; })")
    assert sections == [["Machine gpu-node", False], ["Machine laptop", True]]
    visible_cards = browser.evaluate("document.querySelectorAll('section:not([hidden]) figure:not([hidden])').length")
    assert visible_cards == 5  # every chart of the matching machine stays
    browser.load((site.parent / "history.html").as_uri() + "#q=batchnorm2d")
    cards = browser.evaluate("Array.from(document.querySelectorAll('figure.card')).filter(function (f) "
                             "{ return !f.hidden && f.offsetParent !== null; }).length")
    assert cards == 1


def test_screenshot_saved(visits):
    shot = ARTIFACTS / "report_suite_normalization.png"
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hover_shows_the_full_record(visits: dict[str, PageVisit]):
    gpu = visits["suite-normalization.html"].hovers["gpu-cuda"]
    for needle in ("torch:cuda:fp32", "machine: gpu-node", "median:", "95% CI", "rounds: 30", "stop: ci-target",
                   "throughput:", "device peak 900 MiB", "nvml-counter",
                   # the roofline block, in short lines (not flattened)
                   "roofline: ", "TFLOP/s", "FLOP/B", "of the memory bound",
                   "ceilings: measured (xpubench probe, " + D.PROBED,
                   # fields the report does not know yet are shown as they come
                   "mfu: 0.21"):
        assert needle in gpu, needle
    assert "roofline.fraction_of_bound" not in gpu
    assert "ESTIMATE, not measured" in visits["suite-normalization.html"].hovers["laptop-energy"]
    hostile = visits["suite-dropout.html"].hovers["hostile"]
    assert D.HOSTILE_CASE in hostile and D.HOSTILE_MACHINE in hostile


def test_folder_with_a_stray_file_still_builds(tmp_path: Path):
    root = tmp_path / "results"
    D.write_run(root, D.site_runs(nights=1)[0])
    (root / "laptop" / "broken.json").write_text('{"schema_version": 1, "measurements": [')
    result = load_runs([root], strict=False)
    assert len(result.runs) == 1 and "truncated" in result.problems[0]
    index = build_site([root], tmp_path / "out")
    assert "broken.json" in index.read_text()


def test_every_figure_is_a_valid_plotly_figure(tmp_path: Path):
    """plotly's own schema validation (the pages build plain dicts for speed)."""
    go = pytest.importorskip("plotly.graph_objects")
    root = tmp_path / "results"
    for doc in D.site_runs(nights=2):
        D.write_run(root, doc)
    model = Model(load_runs([root]).runs, [], None, "t", 0.05, {})
    built = [suite_page(model, s) for s in model.suites] + [
        roofline_page(model), machines_page(model), history_page(model)]
    figs = [f for p in built for f in p.figs]
    assert len(figs) > 20
    assert len(built[-3].figs) == EXPECTED_PLOTS["roofline.html"]  # the roofline charts are checked too
    for f in figs:
        go.Figure(data=f["data"], layout=f["layout"])  # raises ValueError on an unknown property


# --------------------------------------------------------------------------- roofline, efficiency, MFU
def _fig(visit: PageVisit, title: str) -> dict:
    hits = [f for f in visit.figures if f["title"] == title]
    assert len(hits) == 1, (title, [f["title"] for f in visit.figures])
    return hits[0]


def test_roofline_charts_draw_ceilings_and_points(visits: dict[str, PageVisit]):
    v = visits["roofline.html"]
    hostile_title = f"Roofline: {esc(D.HOSTILE_MACHINE)} · fp32"  # escaped for plotly, drawn as text
    assert [f["title"] for f in v.figures] == [
        hostile_title, "Roofline: gpu-node · fp32", "Roofline: gpu-node · tf32",
        "Roofline: gpu-node · bf16", "Roofline: laptop · fp32", "Roofline: laptop · bf16"]
    assert f"Roofline: {D.HOSTILE_MACHINE} · fp32" in v.svg_text
    for f in v.figures:
        assert f["kind"] == "roofline"
        assert (f["xtype"], f["ytype"]) == ("log", "log")
        assert "FLOP/byte" in f["xtitle"] and "FLOP/s" in f["ytitle"]
        assert any(t.endswith("FLOP/s") for t in f["ticks"]), f["ticks"]  # y ticks carry the unit
    gpu = _fig(v, "Roofline: gpu-node · fp32")
    roofs = [t for t in gpu["traces"] if t["mode"] == "lines"]
    points = [t for t in gpu["traces"] if t["mode"] == "markers"]
    assert [t["name"] for t in roofs] == ["cpu fp32 roof (measured)", "cuda0 fp32 roof (measured)"]  # per device
    assert all(t["dash"] == "solid" for t in roofs)
    assert [t["name"] for t in points] == ["torch:cpu:fp32", "torch:cuda:fp32"]
    # torch:cpu:fp32: 2 normalization cases + cnn_step; torch:cuda:fp32: 2 normalization + 2 training
    assert [len(t["x"]) for t in points] == [3, 4]
    assert gpu["lines"] == 2 and gpu["points"] == 7  # drawn in the SVG, not just in the data
    # the CUDA roof is min(measured fp32 matmul peak, intensity x best of copy/triad)
    cuda = D.GPU_CEILINGS["ceilings"]["torch:cuda"]
    peak, bw = cuda["matmul_flops_per_s"]["fp32"], max(cuda["copy_bytes_per_s"], cuda["triad_bytes_per_s"])
    for x, y in zip(roofs[1]["x"], roofs[1]["y"]):
        assert y == pytest.approx(min(peak, x * bw))
    assert max(roofs[1]["y"]) == pytest.approx(peak) and peak / bw in roofs[1]["x"]  # the ridge is on it
    hostile = _fig(v, hostile_title)
    assert [t["mode"] for t in hostile["traces"]] == ["markers"] and hostile["points"] == 1
    assert any("xpubench probe" in a for a in hostile["annotations"])
    # hover: the point's numbers; the roof's peak and bandwidth
    point = v.hovers["gpu-point"]
    for needle in ("torch:cuda:fp32", "achieved:", "TFLOP/s", "intensity:", "fraction of bound:", "%",
                   "ceilings: measured"):
        assert needle in point, needle
    assert "matmul peak 51 TFLOP/s" in v.hovers["gpu-roof"] and "bandwidth 2.9 TB/s" in v.hovers["gpu-roof"]
    # the ceilings are listed, and the page is reachable from every page's nav
    assert "fp32 51 TFLOP/s" in v.text and "No measured ceilings" in v.text
    assert "Roofline" in visits["index.html"].text


def _rows(visit: PageVisit, machine: str) -> dict[tuple[str, str], dict]:
    tables = [t for t in visit.efficiency if t["machine"] == f"Machine {machine}"]
    assert len(tables) == 1
    return {(r["cells"][0], r["cells"][2]): r for r in tables[0]["rows"]}


def _fraction(machine: str, suite: str, case: str, backend: str) -> float:
    """fraction_of_bound that attach_roofline computed for the latest run's record."""
    doc = [d for d in D.site_runs() if d["machine"]["machine_id"] == machine][-1]
    m = next(m for m in doc["measurements"]
             if (m["suite"], m["case"], m["backend"]) == (suite, case, backend))
    return m["roofline"]["fraction_of_bound"]


def test_efficiency_column_shows_percent_or_dash(visits: dict[str, PageVisit]):
    norm = visits["suite-normalization.html"]
    headers = norm.efficiency[0]["headers"]
    assert headers[:9] == ["case", "mode", "backend", "median", "±95% CI", "throughput", "FLOP/s", "% of bound",
                           "bound"] and headers[-1] == "ceilings" and "MFU measured" not in headers
    eff = headers.index("% of bound")
    gpu = _rows(norm, "gpu-node")
    row = gpu[("layernorm[b=8,t=512,d=768]", "torch:cuda:fp32")]
    expected = _fraction("gpu-node", "normalization", "layernorm[b=8,t=512,d=768]", "torch:cuda:fp32")
    assert 0 < expected < 1 and row["cells"][eff] == fmt_pct(expected) and row["cells"][eff].endswith("%")
    assert row["cells"][eff + 1] == "memory" and row["cells"][-1] == "measured"
    assert "of the memory bound" in row["eff_title"] and "measured (xpubench probe" in row["eff_title"]
    assert row["cells"][headers.index("FLOP/s")].endswith("TFLOP/s")
    # only torch probed the laptop's CPU: jax:cpu on the same CPU is held against that device roof
    lap = _rows(norm, "laptop")
    jax = lap[("layernorm[b=8,t=512,d=768]", "jax:cpu:fp32")]
    assert jax["cells"][eff].endswith("%") and jax["cells"][-1] == "measured" and "best of torch:cpu" in jax["ceil_title"]
    assert lap[("layernorm[b=8,t=512,d=768]", "torch:cpu:fp32")]["cells"][eff].endswith("%")
    # an old file without ceilings or roofline blocks, and a pytest-benchmark file without FLOPs
    hostile = _rows(visits["suite-dropout.html"], D.HOSTILE_MACHINE)
    assert [r["cells"][eff] for r in hostile.values()] == ["–"]
    assert [r["cells"][eff] for r in _rows(visits["suite-pytest.html"], "ci-runner").values()] == ["–", "–"]


def test_training_page_shows_mfu(visits: dict[str, PageVisit]):
    v = visits["suite-training.html"]
    mfu = [f for f in v.figures if f["kind"] == "mfu"]
    assert len(mfu) == 2  # one per machine: gpu-node, laptop
    gpu = mfu[0]
    assert [t["name"] for t in gpu["traces"]] == ["MFU vs measured peak (xpubench probe)", "MFU vs spec-sheet peak"]
    assert gpu["bars"] == 9  # 5 measured + 4 spec (the CPU has no spec-sheet row)
    assert mfu[1]["bars"] == 2 and [t["name"] for t in mfu[1]["traces"]][0].startswith("MFU vs measured")
    assert "PaLM" in gpu["caption"] and "model FLOPs" in gpu["caption"]
    assert "torch:cuda:bf16" in v.hovers["mfu"] and "spec peak 989 TFLOP/s (H100 SXM)" in v.hovers["mfu"]
    rows = _rows(v, "gpu-node")
    headers = v.efficiency[0]["headers"]
    assert {"MFU measured", "MFU spec"} <= set(headers)
    doc = [d for d in D.site_runs() if d["machine"]["machine_id"] == "gpu-node"][-1]
    rec = next(m for m in doc["measurements"]
               if (m["case"], m["backend"]) == ("transformer_step[d=256,l=2]", "torch:cuda:bf16"))
    cells = rows[("transformer_step[d=256,l=2]", "torch:cuda:bf16")]["cells"]
    assert cells[headers.index("MFU measured")] == fmt_pct(rec["roofline"]["mfu_measured"])
    assert cells[headers.index("MFU spec")] == fmt_pct(rec["roofline"]["mfu_spec"])
    assert rows[("cnn_step[n=32]", "torch:cpu:fp32")]["cells"][headers.index("MFU spec")] == "–"


def test_old_files_get_roofline_from_their_embedded_ceilings(tmp_path: Path):
    """A file with top-level ceilings but no roofline blocks: the report works them out itself."""
    from xpubench.hardware.roofline import roofline_fields

    doc = D.site_runs(nights=1)[0]  # laptop, night 0: no ceilings, no roofline blocks
    assert "ceilings" not in doc and all("roofline" not in m for m in doc["measurements"])
    doc["ceilings"] = D.LAPTOP_CEILINGS
    root = tmp_path / "results"
    D.write_run(root, doc)
    model = Model(load_runs([root]).runs, [], None, "t", 0.05, {})
    entries = model.latest_entries("laptop", "normalization")
    html = efficiency_section(entries, "laptop", training=False)
    rec = next(m for m in doc["measurements"] if m["backend"] == "torch:cpu:bf16")
    expected = roofline_fields(rec, D.LAPTOP_CEILINGS, None)["fraction_of_bound"]
    assert expected and f">{fmt_pct(expected)}</td>" in html
    jax = next(m for m in doc["measurements"] if m["backend"] == "jax:cpu:fp32")  # the CPU's roofs hold it too
    assert f">{fmt_pct(roofline_fields(jax, D.LAPTOP_CEILINGS, None)['fraction_of_bound'])}</td>" in html
    assert len(roofline_page(model).figs) == 2  # fp32 and bf16


def test_spec_sheet_roofs_are_dashed_and_labelled(tmp_path: Path):
    """A GPU machine never probed: roofs and fractions come from the spec sheet, and say so."""
    from xpubench.hardware.roofline import attach_roofline

    doc = [d for d in D.site_runs(nights=1) if d["machine"]["machine_id"] == "gpu-node"][0]
    attach_roofline(doc, None)  # the NVML name "NVIDIA H100 80GB HBM3" matches the H100 SXM row
    root = tmp_path / "results"
    D.write_run(root, doc)
    model = Model(load_runs([root]).runs, [], None, "t", 0.05, {})
    page = roofline_page(model)
    bf16 = next(f for f in page.figs if f["layout"]["title"]["text"] == "Roofline: gpu-node · bf16")
    roofs = [t for t in bf16["data"] if t["mode"] == "lines"]
    assert [t["name"] for t in roofs] == ["cuda0 bf16 roof (spec: H100 SXM)"]
    assert roofs[0]["line"]["dash"] == "dash" and max(roofs[0]["y"]) == pytest.approx(989.4e12)
    html = efficiency_section(model.latest_entries("gpu-node", "normalization"), "gpu-node", training=False)
    assert ">spec: H100 SXM</td>" in html and "spec sheet: H100 SXM" in html  # cell and its tooltip
    assert ">none</td>" in html  # the CPU: no probe, no spec-sheet row
