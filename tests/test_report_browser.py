"""The HTML report in a real browser: headless Chromium, driven through the DevTools protocol,
renders it and takes a screenshot; its DOM holds every section and a chart; the page's network
log holds nothing but the page itself."""

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest
import websocket

from pipeline.report import build_report, render
from test_report import SECTIONS, SEQ2SEQ_FAMILY, seq2seq_record

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--hide-scrollbars"]


def chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing (CI machines start without it)."""
    found = shutil.which("chromium")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("Chromium is not installed and cannot be installed here (needs Debian's apt-get, run as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            pytest.skip(f"Chromium could not be installed: {' '.join(command)} failed: {result.stderr.strip()[-300:]}")
    return shutil.which("chromium") or pytest.skip("apt-get installed chromium, but it is not on the PATH")


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page target (headless Chromium)."""

    def __init__(self, browser: str, profile: str):
        self.process = subprocess.Popen([browser, *CHROMIUM_FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                         "--window-size=1280,2400", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.2)
        port = int(open(port_file).read().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        (page,) = [t for t in targets if t["type"] == "page"]
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.events: list[dict] = []
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.socket.recv()))

    def close(self) -> None:
        self.socket.close()
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def browser():
    return chromium()


def test_report_opens_in_chromium_with_every_section_a_chart_and_no_network_request(browser, tmp_path):
    eval_texts = [f"a fine film number {i}, with a long and winding plot" for i in range(40, 49)] + ["  "]
    page = tmp_path / "report.html"
    page.write_text(render(build_report(seq2seq_record(eval_texts), []), "html", "textflow report"), encoding="utf-8")
    devtools = DevTools(browser, str(tmp_path / "profile"))
    try:
        devtools.call("Network.enable")
        devtools.call("Page.enable")
        devtools.call("Page.navigate", url=page.as_uri())
        devtools.wait_for("Page.loadEventFired")
        found = devtools.call("Runtime.evaluate", returnByValue=True, expression="""({
            sections: [...document.querySelectorAll('section > h2')].map(h => h.textContent),
            charts: document.querySelectorAll('figure.chart svg rect').length,
            curveLines: [...document.querySelectorAll('figure.curve svg polyline')]
                .filter(l => l.getBoundingClientRect().width > 0).length,
            heatmapCells: [...document.querySelectorAll('figure.attention svg rect')]
                .filter(r => r.getBoundingClientRect().width > 0).length,
            blocked: [...document.querySelectorAll('td.BLOCK')].map(td => td.nextElementSibling.textContent),
        })""")["result"]["value"]
        screenshot = base64.b64decode(devtools.call("Page.captureScreenshot", format="png")["data"])
    finally:
        devtools.close()
    (tmp_path / "report.png").write_bytes(screenshot)
    assert screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(screenshot) > 10_000
    seq2seq_section = f"Model: {SEQ2SEQ_FAMILY['model_name']} ({SEQ2SEQ_FAMILY['family']})"
    assert found["sections"] == SECTIONS[:-1] + [seq2seq_section, SECTIONS[-1]]
    assert found["charts"] >= 3 and found["blocked"] == ["empty_text"]
    assert found["curveLines"] == 2  # the training curve: loss and eval loss
    assert found["heatmapCells"] == 6 * 5  # the attention heatmap renders, a cell per output x source piece
    requested = [e["params"]["request"]["url"] for e in devtools.events if e.get("method") == "Network.requestWillBeSent"]
    assert requested == [page.as_uri()], requested  # the page itself, nothing else
