"""Drives the Warden dashboard in headless Chromium (tests/e2e/dashboard.rs).

Usage: browser.py <base-url> <admin-token> <chromium> <screenshot.png>
Prints one JSON object with what it saw; the Rust test asserts on it.
"""
import json, re, sys, time, urllib.request
from playwright.sync_api import sync_playwright

base, token, chromium, shot = sys.argv[1:5]
out = {"console_errors": []}

def api(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")

def watch(page, name, blocked=False):
    def console(msg):
        # With the stream blocked on purpose, its failed loads are expected.
        if msg.type == "error" and not (blocked and "ERR_FAILED" in msg.text):
            out["console_errors"].append(name + ": " + msg.text)
    page.on("console", console)
    page.on("pageerror", lambda e: out["console_errors"].append(name + ": uncaught " + str(e)))

def wait(page, expr, arg=None, timeout_ms=2000):
    """Milliseconds until expr(arg) holds in the page, or None."""
    started = time.monotonic()
    try:
        page.wait_for_function(expr, arg=arg, timeout=timeout_ms, polling=50)
        return round((time.monotonic() - started) * 1000)
    except Exception:
        return None

TRANSPORT = "t => document.getElementById('transport').dataset.transport === t"
ROW = "id => !!document.querySelector('#recent tr[data-task-id=\"' + id + '\"]')"
COUNTS = """want => Object.entries(want).every(([k, v]) =>
    (document.getElementById('state-count-' + k) || {}).textContent === String(v))"""

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})

    # (a) The page loads with the token from the fragment and goes live.
    page = ctx.new_page()
    watch(page, "live")
    page.goto(base + "/#token=" + token + "&ws=default")
    out["live_ms"] = wait(page, TRANSPORT, "sse", 10000)
    out["title"] = page.title()
    out["token_left_in_url"] = token in page.url
    out["token_stored"] = page.evaluate("() => localStorage.getItem('warden.token')") == token

    # (b) A task created after the page loaded appears without a reload.
    t = api("POST", "/v1/workspaces/default/tasks", {"title": "probe-live", "pipeline": ["plan", "verify"]})
    out["appeared_ms"] = wait(page, ROW, t["id"], 2000)

    # (c) The counts follow a worker through both stages.
    steps = []
    def step(name, want):
        steps.append({"step": name, "ms": wait(page, COUNTS, want, 2000)})
    step("created", {"queued": 1, "running": 0, "done": 0})
    for stage in ["plan", "verify"]:
        c = api("POST", "/v1/workspaces/default/tasks/claim", {"worker_id": "browser-worker"})["claims"][0]
        step("claimed " + stage, {"queued": 0, "running": 1, "done": 0})
        api("POST", "/v1/workspaces/default/tasks/" + c["task_id"] + "/complete", {"token": c["token"], "output": {}})
        if stage == "plan":
            step("completed plan", {"queued": 1, "running": 0, "done": 0})
        else:
            step("completed verify", {"queued": 0, "running": 0, "done": 1})
    out["steps"] = steps
    out["transport_after_steps"] = page.get_attribute("#transport", "data-transport")
    page.close()

    # (d) With the stream blocked, the page polls (token from localStorage).
    page = ctx.new_page()
    watch(page, "blocked", blocked=True)
    aborted = []
    def block(route):
        aborted.append(route.request.url)
        route.abort()
    page.route(re.compile(r".*/status/stream.*"), block)
    page.goto(base + "/#ws=default")
    out["polling_ms"] = wait(page, TRANSPORT, "polling", 10000)
    wait(page, COUNTS, {"done": 1}, 8000)
    t = api("POST", "/v1/workspaces/default/tasks", {"title": "probe-polling", "pipeline": ["plan"]})
    out["polled_ms"] = wait(page, ROW, t["id"], 8000)
    out["transport_blocked"] = page.get_attribute("#transport", "data-transport")
    out["stream_attempts_blocked"] = len(aborted)
    page.close()

    # (e) The loaded workspace, for the eye.
    page = ctx.new_page()
    watch(page, "demo")
    page.goto(base + "/#ws=demo")
    wait(page, TRANSPORT, "sse", 10000)
    wait(page, "() => document.querySelectorAll('#recent tr').length > 0", None, 5000)
    page.wait_for_timeout(700)
    out["demo"] = page.evaluate("""() => ({
        chart_js: typeof Chart !== 'undefined',
        charts: [...document.querySelectorAll('.chart')].filter(c => !c.hidden).length,
        empty: [...document.querySelectorAll('.empty')].filter(e => !e.hidden).map(e => e.closest('article').id),
        bottleneck: document.getElementById('bottleneck').textContent,
        gate_rate: document.getElementById('gate-rate').textContent,
        recent: document.querySelectorAll('#recent tr').length,
        alerts: document.querySelectorAll('#alerts li').length,
        loops: document.querySelectorAll('#loops li').length,
        runs: document.querySelectorAll('#runs li').length,
        errors: document.querySelectorAll('#errors li').length,
        breakers: document.querySelectorAll('#breakers li').length,
        workspace: document.getElementById('workspace').value,
    })""")
    page.screenshot(path=shot)
    browser.close()

print(json.dumps(out))
