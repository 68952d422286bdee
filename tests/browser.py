"""Headless Chromium driven through the DevTools protocol: the browser test's machinery, also used
by `scripts/report-screenshot` to make the README's picture of a report."""

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request

import websocket

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--hide-scrollbars"]


def install_chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing (CI machines start without it).
    Raises RuntimeError with the reason when it cannot be had."""
    found = shutil.which("chromium")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        raise RuntimeError("Chromium is not installed and cannot be installed here (needs Debian's apt-get, run as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"Chromium could not be installed: {' '.join(command)} failed: {result.stderr.strip()[-300:]}")
    found = shutil.which("chromium")
    if not found:
        raise RuntimeError("apt-get installed chromium, but it is not on the PATH")
    return found


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page target (headless Chromium)."""

    def __init__(self, browser: str, profile: str, window: str = "1280,2400"):
        self.process = subprocess.Popen([browser, *CHROMIUM_FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                         f"--window-size={window}", "about:blank"],
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
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.socket.recv()))

    def open(self, url: str) -> None:
        """Navigates to `url` and waits until the page has loaded."""
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", returnByValue=True, expression=expression)["result"]["value"]

    def screenshot(self, clip: dict | None = None) -> bytes:
        """The page as PNG bytes: the viewport, or the rectangle `clip` (x, y, width, height in CSS
        pixels, beyond the viewport too)."""
        params = {"format": "png"}
        if clip:
            params.update(clip={**clip, "scale": 1}, captureBeyondViewport=True)
        return base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])

    def close(self) -> None:
        self.socket.close()
        self.process.kill()
        self.process.wait()
