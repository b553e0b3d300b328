"""The report opened in headless Chromium: every figure decodes and renders on the page.

Two Chromium runs on the same layout (same window width, device scale 1):

1. ``--dump-dom`` of a copy of the report with a probe script appended (the report
   itself has no script): for each ``<img>``, ``complete``, ``naturalWidth/Height`` and
   its box on the page;
2. ``--screenshot`` of the report itself, as tall as the page: each image's box is
   cropped from the screenshot and compared with the PNG, resized to the box, so each
   figure is shown where the layout puts it, at the expected size and not blank.

Needs Chromium (Debian: ``apt-get install -y chromium``); skipped when absent.
"""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from plismbench.reporting import files_dir

WIDTH = 1400
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1", "--mute-audio",
)  # fmt: skip

PROBE = """<script>
window.addEventListener("load", function () {
  var out = [];
  document.querySelectorAll("img").forEach(function (img) {
    var r = img.getBoundingClientRect();
    out.push({file: img.getAttribute("data-file"), complete: img.complete,
      naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
      x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height});
  });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({images: out, height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
});
</script></body>"""


@pytest.fixture(scope="module")
def browser() -> str:
    """The Chromium binary; skips (before the report is built) when there is none."""
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip(
        "Chromium is not installed (Debian: apt-get install -y chromium); "
        "the headless rendering test needs it"
    )


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}"
    return res


def _probe(browser: str, report: Path, tmp: Path) -> dict[str, Any]:
    page = tmp / "probe.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE), "utf-8")
    res = _chromium(
        browser, tmp / "profile-probe", f"--window-size={WIDTH},900",
        "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
    )  # fmt: skip
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, f"the probe did not run; DOM starts: {res.stdout[:500]}"
    return json.loads(htmllib.unescape(found.group(1)))


def test_report_renders_in_chromium(browser: str, report_html: Path, tmp_path: Path) -> None:
    pngs = {p.name: p for p in files_dir(report_html).glob("*.png")}
    probe = _probe(browser, report_html, tmp_path)
    images = probe["images"]
    assert sorted(i["file"] for i in images) == sorted(pngs)
    for info in images:
        size = Image.open(pngs[info["file"]]).size
        assert info["complete"], info
        assert (info["naturalWidth"], info["naturalHeight"]) == size, info
        assert info["width"] > 300 and info["height"] > 200, info  # laid out, visible
        assert info["width"] <= size[0] + 0.5  # never enlarged
        assert info["height"] == pytest.approx(info["width"] * size[1] / size[0], abs=1.5)

    height = int(probe["height"])
    assert height < 16_000, "page too tall for one screenshot"
    shot = tmp_path / "report.png"
    _chromium(
        browser, tmp_path / "profile-shot", f"--window-size={WIDTH},{height}",
        "--virtual-time-budget=10000", f"--screenshot={shot}", report_html.as_uri(),
    )  # fmt: skip
    page = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert page.shape[:2] == (height, WIDTH)
    for info in images:
        x0, y0 = round(info["x"]), round(info["y"])
        w, h = round(info["width"]), round(info["height"])
        crop = page[y0 + 2 : y0 + h - 2, x0 + 2 : x0 + w - 2]
        want = Image.open(pngs[info["file"]]).convert("RGB").resize((w, h), Image.LANCZOS)
        ref = np.asarray(want, dtype=np.float64)[2:-2, 2:-2]
        assert crop.shape == ref.shape, info["file"]
        assert crop.std() > 10, f"{info['file']}: blank on the page"
        diff = np.abs(crop - ref).mean()
        corr = np.corrcoef(crop.ravel(), ref.ravel())[0, 1]
        assert diff < 12 and corr > 0.9, f"{info['file']}: differs (mean {diff:.1f}, r {corr:.3f})"


LAYOUT_PROBE = """<script>
window.addEventListener("load", function () {
  var table = document.getElementById("leaderboard");
  var box = table.parentElement;
  var score = table.querySelectorAll("thead th");
  var last = score[score.length - 1].getBoundingClientRect();
  var out = {width: document.documentElement.clientWidth,
    pageScroll: document.documentElement.scrollWidth,
    tableRight: table.getBoundingClientRect().right, boxRight: box.getBoundingClientRect().right,
    boxScroll: box.scrollWidth, boxClient: box.clientWidth,
    boxOverflow: getComputedStyle(box).overflowX, lastHeaderRight: last.right,
    svgs: Array.prototype.map.call(document.querySelectorAll("img"), function (i) {
      return i.getAttribute("data-file"); })};
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body>"""


def _layout(browser: str, report: Path, tmp: Path, width: int) -> dict[str, Any]:
    page = tmp / f"layout{width}.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", LAYOUT_PROBE), "utf-8")
    res = _chromium(
        browser, tmp / f"profile-{width}", f"--window-size={width},900",
        "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
    )  # fmt: skip
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, f"the probe did not run; DOM starts: {res.stdout[:500]}"
    return json.loads(htmllib.unescape(found.group(1)))


def test_leaderboard_fits_900px_and_scrolls_when_narrow(
    browser: str, report_html: Path, tmp_path: Path
) -> None:
    wide = _layout(browser, report_html, tmp_path, 900)
    # At 900 px the whole table, score column included, is on the page: no scrolling.
    assert wide["tableRight"] <= wide["boxRight"] + 0.5, wide
    assert wide["lastHeaderRight"] <= wide["width"], wide
    assert wide["boxScroll"] <= wide["boxClient"], wide
    narrow = _layout(browser, report_html, tmp_path, 480)
    # On a phone the table scrolls inside its box, which stays within the window.
    assert narrow["boxOverflow"] == "auto" and narrow["boxScroll"] > narrow["boxClient"], narrow
    assert narrow["boxRight"] <= narrow["width"] + 0.5, narrow
    # The new figures are on the page: the scatter with error bars and every heatmap.
    assert "scatter_cosine_top10.png" in wide["svgs"]
    assert sum(f.endswith("_stainings.png") for f in wide["svgs"]) == 3


FIT_PROBE = """<script>
window.addEventListener("load", function () {
  var doc = document.documentElement, out = {width: doc.clientWidth, pageScroll: doc.scrollWidth,
    overflow: [], broken: [], overlaps: []};
  function scrolls(el) {
    for (var e = el; e && e !== document.body; e = e.parentElement) {
      var o = getComputedStyle(e).overflowX;
      if (o === "auto" || o === "scroll") return true;
    }
    return false;
  }
  // 1. No element sticks out of the window, unless it sits in a box that scrolls.
  document.querySelectorAll("main *, header *").forEach(function (el) {
    var r = el.getBoundingClientRect();
    if (r.width && r.right > doc.clientWidth + 0.5 && !scrolls(el))
      out.overflow.push(el.tagName + "#" + el.id + "." + el.className + " right " + r.right);
  });
  // 2. No word is split over two lines (a break inside a word, e.g. 'histog|ram').
  var walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
  for (var node; (node = walker.nextNode());) {
    var re = /[^\\s\\-\\u2013\\/]+/g, m;
    while ((m = re.exec(node.data))) {
      if (m[0].length < 4) continue;
      var range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      var tops = {};
      Array.prototype.forEach.call(range.getClientRects(), function (c) {
        if (c.width > 0) tops[Math.round(c.top)] = 1; });
      if (Object.keys(tops).length > 1) out.broken.push(m[0]);
    }
  }
  // 3. Blocks of the page (headings, paragraphs, tables, figures) never overlap.
  var blocks = Array.prototype.slice.call(document.querySelectorAll(
    "main h2, main h3, main p, main table, main figure, main nav, main dl"));
  for (var i = 0; i < blocks.length; i++) for (var j = i + 1; j < blocks.length; j++) {
    var a = blocks[i], b = blocks[j];
    if (a.contains(b) || b.contains(a)) continue;
    var p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
    var w = Math.min(p.right, q.right) - Math.max(p.left, q.left);
    var h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
    if (w > 1 && h > 1) out.overlaps.push(a.tagName + "/" + b.tagName + " " + w + "x" + h);
  }
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body>"""


@pytest.mark.parametrize("width", [700, 1400])
def test_no_overflow_overlap_or_broken_words(
    browser: str, report_html: Path, tmp_path: Path, width: int
) -> None:
    """At 700 and 1,400 px: nothing sticks out of the window (tables scroll in their own box),
    no word breaks across lines (model names stay whole), and no two blocks overlap."""
    page = tmp_path / f"fit{width}.html"
    page.write_text(report_html.read_text(encoding="utf-8").replace("</body>", FIT_PROBE), "utf-8")
    res = _chromium(
        browser, tmp_path / f"profile-fit-{width}", f"--window-size={width},900",
        "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
    )  # fmt: skip
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, f"the probe did not run; DOM starts: {res.stdout[:500]}"
    fit = json.loads(htmllib.unescape(found.group(1)))
    assert fit["pageScroll"] <= fit["width"], fit  # no horizontal scrolling of the page
    assert fit["overflow"] == [], fit["overflow"][:10]
    assert fit["broken"] == [], fit["broken"][:10]
    assert fit["overlaps"] == [], fit["overlaps"][:10]
