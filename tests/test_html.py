"""`gdbext triage --format html`: the page rendered by a real headless Chromium (Debian's chromium
package), its text and its screenshot checked against the pool_overflow fixture's ground truth, and
hostile report text that must stay text."""
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from conftest import CORES, ROOT, SPECS, Truth, needs_gdb
from gdbext.gdbrun import has_traceback
from gdbext.triage.heapmap import OVERFLOW_COLOUR, STATE_COLOURS, map_boxes
from gdbext.triage.html import render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's "
                                    "chromium package)")


def chromium(tmp_path, page, *mode):
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={profile}", "--hide-scrollbars", *mode, "file://" + str(page)],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def pool_page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    page = tmp / "pool_overflow.html"
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", os.path.join(CORES, "pool_overflow"),
                           os.path.join(CORES, "pool_overflow.core.xz"), "--pools",
                           os.path.join(SPECS, "pool_overflow.py"), "--format", "html", "--output", str(page)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert not has_traceback(proc.stdout + proc.stderr) and proc.returncode == 1, proc.stderr
    return tmp, page


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = set(), set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)


@needs_gdb
@needs_chromium
def test_browser_shows_the_finding_against_the_truth(pool_page):
    tmp, page = pool_page
    t = Truth("pool_overflow")
    dom = chromium(tmp, page, "--dump-dom")
    requested_end = int(t["overflow_source_addr"], 16) + t.int("overflow_source_req_size")
    assert "<title>gdbext triage: pool_overflow.core.xz</title>" in dom
    assert f'<span class="kind">heap-buffer-overflow</span> on <code>{requested_end:#x}</code>' in dom
    assert "pool_overflow: heap-buffer-overflow | pool_alloc | make_log_entry | log_event" in dom
    # the map: the overflow starts at the requested end and crosses the victim's header (the boundary)
    assert f"<title>boundary {t['overflow_victim_hdr_addr']}</title>" in dom
    over = dom.split('<rect class="overflow"', 1)[1].split("</title>", 1)[0]
    start, end = (int(v, 16) for v in over.rsplit("overflow ", 1)[1].split(".."))
    assert start == requested_end and int(t["overflow_victim_hdr_addr"], 16) < end <= int(t["overflow_end_addr"], 16)
    # the neighbourhood: slots 1..6 of the pool, at the addresses and in the states the program printed
    base, size = int(t["slots_base"], 16), t.int("slot_size")
    allocated = {int(v) for k, v in t.last.items() if k.startswith("buf.") and k.endswith(".slot")}
    never = set(range(t.int("nslots"))) - allocated
    shown = re.findall(r'<rect class="chunk (\S+) (\w+)"[^>]*><title>slot (\d+): 80 bytes, \S+ \(pool:g_pool\)', dom)
    assert [int(i) for _, _, i in shown] == [1, 2, 3, 4, 5, 6]
    assert [role for _, role, _ in shown] == ["neighbour", "neighbour", "source", "damaged", "neighbour", "neighbour"]
    for state, _, i in shown:
        assert f"{base + int(i) * size:#x}" in dom
        if int(i) in never:
            assert state == "free"
        elif int(i) not in {int(x) for x in t["free_list_before_overflow"].split(",")}:
            assert state == "in-use"
    # the hexdump beside it holds the overflow's own text, split at the boundary
    assert t["overflow_guard_text"].replace("&", "&amp;") in dom


@needs_gdb
@needs_chromium
def test_screenshot_is_drawn_and_the_overflow_crosses_the_boundary(pool_page):
    from PIL import Image

    tmp, page = pool_page
    shot = tmp / "page.png"
    chromium(tmp, page, "--window-size=1400,1100", f"--screenshot={shot}")
    img = Image.open(shot).convert("RGB")
    width, height = img.size
    px = img.load()

    def columns(colour):
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        return sorted({x for y in range(height) for x in range(width) if px[x, y] == rgb})

    assert len(set(img.getdata())) > 50  # not blank: text, boxes, colours
    orange = columns(OVERFLOW_COLOUR)
    assert len(orange) > 20, "the overflow bar is not on the screen"
    in_use = columns(STATE_COLOURS["in-use"])
    assert in_use, "no in-use chunk box on the screen"
    # the boundary is a black vertical line through the chunk boxes; the orange bar spans it.  Look at
    # the boxes' bottom rows, below their labels, where nothing else is black.
    blue = tuple(int(STATE_COLOURS["in-use"][i:i + 2], 16) for i in (1, 3, 5))
    x_box = orange[0] - 3
    runs, run = [], []
    for y in range(height):
        if px[x_box, y] == blue:
            run.append(y)
        elif run:
            runs.append(run)
            run = []
    box_rows = max(runs, key=len)
    assert len(box_rows) > 30, "no chunk box left of the overflow's start"
    y = box_rows[-4]
    black = [x for x in range(orange[0], orange[-1] + 1) if sum(px[x, y]) < 60]
    assert black, "no boundary line between the start and the end of the overflow bar"
    assert sum(px[orange[0] - 8, y]) > 60 and sum(px[orange[-1] + 12, y]) > 60  # a line, not a black area


def test_hostile_report_text_stays_text():
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    rep = {"schema": "gdbext.triage/1", "tool": {"version": evil}, "core": evil + ".core", "binary": evil,
           "build_id": evil, "crash": {"signal": evil, "signature": evil, "frames": [{"function": evil, "pc": evil}],
                                        "location": {"function": evil, "file": evil, "line": evil}},
           "findings": [{"kind": evil, "address": "0x1010", "message": evil, "referenced_by": [evil],
                         "chunk": {"address": "0x1000", "user_address": "0x1010", "size": 64, "state": evil,
                                   "heap": evil},
                         "written_after_free": [{"offset": 8, "size": 8, "field": evil}],
                         "evidence": {evil: evil, "hexdump": [evil, "=>" + evil], "x": {"k": [evil]}}}],
           "heap": {"pools": [{"name": evil, "error": evil}]}, "errors": [evil]}
    page = render_html(rep)
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert not {a for a in parser.attrs if a.startswith("on")} and "src" not in parser.attrs
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    boxes, run, ranges = map_boxes(rep["findings"][0])
    assert [b.state for b in boxes] == ["unknown"] and run is None and ranges == [(0x1018, 0x1020, evil)]


def test_batch_page_and_unreadable_numbers():
    doc = {"schema": "gdbext.triage-batch/1", "tool": {"version": "0"}, "reports": [
        {"core": "a.core", "crash": {"signal": "SIGSEGV", "signature": "a: SIGSEGV | main"},
         "findings": [{"kind": "heap-buffer-overflow", "address": "zz", "chunk": {"address": "nope", "size": -1},
                       "source": {"chunk": {"address": "0x10", "size": "0x20"}, "bytes_past_end": 10**30}}]}],
        "failures": [{"core": "b.core", "reason": "b.core: empty file"}],
        "groups": [{"signature": "a: SIGSEGV | main", "count": 1, "cores": ["a.core"]}]}
    page = render_html(doc)
    assert "<title>gdbext triage: 1 core(s)</title>" in page and "b.core: empty file" in page
    assert '<svg class="heap-map"' in page  # the one readable chunk is drawn; the rest is left out
