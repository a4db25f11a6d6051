"""Drive headless Chromium on lbx's dashboard through the DevTools protocol.

Run: python3 dashboard_browser.py CHROMIUM URL [TOKEN]

Starts Chromium (a fresh profile, 1280x900), opens URL, answers the page's token prompt with
TOKEN (if the page asks), and waits for its first completed poll. Then reads commands on stdin,
one per line, and answers each with one JSON line on stdout:

  wait-polls N        wait until the page has completed N more polls  -> {"polls": n}
  snapshot            every [data-field] of the page                  -> {...}
  click ID ACTION     click the ACTION (drain|undrain) button of backend ID and wait for the
                      page to report lbx's answer                      -> {"status": .., "text": ..}
  screenshot PATH [full]
                      save a PNG of the page: the 1280x900 window, or with `full` the
                      whole page's height                              -> {"saved": PATH}
  quit

Errors go to stdout as {"error": "..."} and end the script with status 1. Uses the
`websockets` package (installed by scripts/setup.sh) and no other.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack

from websockets.sync.client import connect

TIMEOUT = 30.0
# Chromium's DevTools port is local: never through a proxy named in the environment.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Everything the page shows, read through its data-* attributes.
SNAPSHOT = r"""
(() => {
  const main = document.querySelector("#dashboard");
  const read = (el) => ({ text: el.textContent,
                          value: el.dataset.value === undefined ? null : el.dataset.value });
  const out = { polls: Number(main.dataset.polls), page: {}, backends: [], reloads: [],
                shadows: [] };
  for (const row of document.querySelectorAll("#backend-rows tr[data-backend-id]")) {
    const fields = {};
    for (const el of row.querySelectorAll("[data-field]")) fields[el.dataset.field] = read(el);
    const badge = row.querySelector('[data-field="state"]');
    const button = row.querySelector("button[data-action]");
    out.backends.push({
      id: row.dataset.backendId,
      state: row.dataset.state,
      state_colour: badge ? getComputedStyle(badge).backgroundColor : null,
      action: button ? button.dataset.action : null,
      fields,
    });
  }
  for (const el of document.querySelectorAll("[data-field]")) {
    if (!el.closest("tr")) out.page[el.dataset.field] = read(el);
  }
  for (const row of document.querySelectorAll("#reload-rows tr")) {
    const reload = {};
    for (const el of row.querySelectorAll("[data-field]")) reload[el.dataset.field] = el.textContent;
    out.reloads.push(reload);
  }
  out.shadows = [];
  for (const row of document.querySelectorAll("#shadow-rows tr")) {
    const shadow = {};
    for (const el of row.querySelectorAll("[data-field]")) shadow[el.dataset.field] = el.textContent;
    out.shadows.push(shadow);
  }
  out.fleet = [];
  for (const row of document.querySelectorAll("#fleet-rows tr")) {
    const node = {};
    for (const el of row.querySelectorAll("[data-field]")) node[el.dataset.field] = el.textContent;
    out.fleet.push(node);
  }
  out.fleet_hidden = document.querySelector("#fleet").hidden;
  out.chart_areas = document.querySelectorAll("#share-chart polygon").length;
  out.action_status = document.querySelector("#action-message").dataset.status || null;
  return JSON.stringify(out);
})()
"""


class Browser:
    def __init__(self, chromium, token):
        self.token = token
        self.profile = tempfile.mkdtemp(prefix="lbx-dashboard-chromium-")
        self.process = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={self.profile}", "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.connection = ExitStack()
        # Problems the page itself reports: uncaught exceptions and policy (CSP) violations.
        self.errors = []
        try:
            self._attach()
        except BaseException:
            self.close()
            raise

    def _attach(self):
        port = self._devtools_port()
        deadline = time.monotonic() + TIMEOUT
        while True:
            with DIRECT.open(f"http://127.0.0.1:{port}/json/list") as answer:
                pages = [t for t in json.load(answer) if t.get("type") == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("chromium opened no page")
            time.sleep(0.05)
        self.socket = self.connection.enter_context(
            connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=TIMEOUT,
                    proxy=None))
        self.next_id = 0
        self.dialogs = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _devtools_port(self):
        active = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self.process.returncode}")
            try:
                with open(active) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port")

    def call(self, method, **params):
        self.next_id += 1
        mine = self.next_id
        self.socket.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=TIMEOUT))
            if message.get("id") == mine:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def _event(self, message):
        method, params = message.get("method"), message.get("params", {})
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append({"type": params.get("type"), "message": params.get("message")})
            accept = params.get("type") == "prompt" and self.token is not None
            # Answered from a separate message: this one arrives while a call may be waiting.
            self.socket.send(json.dumps({
                "id": 0, "method": "Page.handleJavaScriptDialog",
                "params": {"accept": accept, "promptText": self.token or ""}}))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(details.get("exception", {}).get("description")
                               or details.get("text"))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("source") in ("security", "javascript") or "Content Security" in entry.get("text", ""):
                self.errors.append(entry.get("text"))

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def polls(self):
        return self.evaluate(
            "Number((document.querySelector('#dashboard') || {dataset: {}}).dataset.polls || 0)")

    def wait_polls(self, more):
        target = self.polls() + more
        deadline = time.monotonic() + TIMEOUT
        while (polls := self.polls()) < target:
            if time.monotonic() > deadline:
                status = self.evaluate("document.querySelector('#status').textContent")
                raise RuntimeError(f"the page completed {polls} polls, waited for {target}; "
                                   f"its status line: {status}")
            time.sleep(0.05)
        return {"polls": polls}

    def snapshot(self):
        snapshot = json.loads(self.evaluate(SNAPSHOT))
        snapshot["dialogs"] = self.dialogs
        snapshot["errors"] = self.errors
        return snapshot

    def click(self, backend_id, action):
        selector = json.dumps(f'button[data-backend-id="{backend_id}"][data-action="{action}"]')
        clicked = self.evaluate(f"""(() => {{
            const message = document.querySelector("#action-message");
            delete message.dataset.status;
            const button = document.querySelector({selector});
            if (!button) return false;
            button.click();
            return true;
        }})()""")
        if not clicked:
            raise RuntimeError(f"no {action} button for backend {backend_id}")
        deadline = time.monotonic() + TIMEOUT
        while True:
            answer = self.evaluate("""(() => {
                const m = document.querySelector("#action-message");
                return m.dataset.status ? { status: Number(m.dataset.status), text: m.textContent } : null;
            })()""")
            if answer:
                return answer
            if time.monotonic() > deadline:
                raise RuntimeError(f"the page reported no answer to {action} {backend_id}")
            time.sleep(0.05)

    def screenshot(self, path, full=False):
        height = 900
        if full:
            height = max(height, int(self.evaluate("document.documentElement.scrollHeight")))
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=height,
                  deviceScaleFactor=1, mobile=False)
        shot = self.call("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return {"saved": path}

    def close(self):
        try:
            self.connection.close()
        finally:
            self.process.kill()
            self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


def answer(value):
    print(json.dumps(value), flush=True)


def main():
    chromium, url = sys.argv[1], sys.argv[2]
    token = sys.argv[3] if len(sys.argv) > 3 else None
    try:
        browser = Browser(chromium, token)
    except Exception as error:
        answer({"error": f"{type(error).__name__}: {error}"})
        sys.exit(1)
    try:
        browser.call("Page.navigate", url=url)
        browser.wait_polls(1)
        answer({"ready": True, "dialogs": browser.dialogs})
        for line in sys.stdin:
            command = line.split()
            if not command:
                continue
            if command[0] == "quit":
                break
            if command[0] == "wait-polls":
                answer(browser.wait_polls(int(command[1])))
            elif command[0] == "snapshot":
                answer(browser.snapshot())
            elif command[0] == "click":
                answer(browser.click(command[1], command[2]))
            elif command[0] == "screenshot":
                answer(browser.screenshot(command[1], full=command[2:] == ["full"]))
            else:
                raise RuntimeError(f"unknown command {command[0]!r}")
    except Exception as error:  # reported to the test, which shows it
        answer({"error": f"{type(error).__name__}: {error}", "errors": browser.errors})
        sys.exit(1)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
