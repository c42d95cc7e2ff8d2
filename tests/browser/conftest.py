"""Real-browser fixtures: a JupyterLab and a Voila server on free localhost ports, and Debian's
Chromium driven by Playwright (never `playwright install`: the system browser is used).

The servers work on a temporary copy of notebooks/ so that JupyterLab's saves never touch the
committed notebooks, and use their own settings and workspace folders: every cell is rendered
(JupyterLab 4 otherwise virtualises off-screen cells), no news prompt, no autosave, and no tabs
restored from an earlier session.

Screenshots go to test-artifacts/browser/ (not committed); a failing test also saves the page and
the browser console there.
"""
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("AIJACK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
# the page tries to fetch fonts/CDN resources; with no internet those fail and are not our errors
IGNORED_CONSOLE = ("ERR_NAME_NOT_RESOLVED", "ERR_INTERNET_DISCONNECTED", "ERR_CONNECTION_REFUSED",
                   "favicon", "Failed to load resource: the server responded with a status of 404",
                   # ipyparallel's JupyterLab extension needs JupyterLab's console, which Voila lacks
                   "Plugin 'ipyparallel-labextension:plugin' failed to activate")
# JupyterLab user settings for the test server
LAB_SETTINGS = {
    # render every cell: with windowing, off-screen cells (and their widgets) are not in the DOM
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # no "Would you like to get notified about official Jupyter news?" toast
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # never write to the notebooks under test
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f"no answer from {url} within {timeout} s")


def _start(cmd, url, env, cwd, log_path):
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(url, proc)
    except Exception as exc:
        _stop(proc, log)
        raise RuntimeError(f"could not start {cmd[0]} ({exc}); log: {pathlib.Path(log_path).read_text()[-3000:]}")
    return proc, log


def _stop(proc, log):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)
    log.close()


def _server_env(tmp: pathlib.Path) -> dict:
    settings = tmp / "lab-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / (plugin + ".jupyterlab-settings")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    for sub in ("workspaces", "runtime"):
        (tmp / sub).mkdir(exist_ok=True)
    return dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
                JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                PYTHONHASHSEED="0")


def _copy_notebooks(tmp: pathlib.Path) -> pathlib.Path:
    """A working copy: notebooks/ copied, everything else of the repository linked (examples/, data)."""
    root = tmp / "work"
    (root / "notebooks").mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name not in ("notebooks", ".git", "test-artifacts"):
            (root / entry.name).symlink_to(entry)
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, root / "notebooks" / nb.name)
    return root


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, artifacts):
    tmp = tmp_path_factory.mktemp("lab")
    root = _copy_notebooks(tmp)
    token, port = secrets.token_hex(8), _free_port()
    bindir = pathlib.Path(sys.executable).parent
    cmd = [str(bindir / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    url = f"http://127.0.0.1:{port}"
    proc, log = _start(cmd, f"{url}/api/status?token={token}", _server_env(tmp), root, artifacts / "jupyterlab.log")
    yield {"url": url, "token": token, "root": root}
    _stop(proc, log)


def shutdown_kernels(server) -> None:
    """Shut down every kernel of a Jupyter server through its REST API (frees memory between notebooks)."""
    base, token = server["url"], server["token"]
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as r:
        kernels = json.load(r)
    for k in kernels:
        req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
        try:
            urllib.request.urlopen(req, timeout=30).close()
        except Exception:
            pass


@pytest.fixture(scope="session")
def voila_server(tmp_path_factory, artifacts):
    tmp = tmp_path_factory.mktemp("voila")
    root = _copy_notebooks(tmp)
    token, port = secrets.token_hex(8), _free_port()
    bindir = pathlib.Path(sys.executable).parent
    cmd = [str(bindir / "voila"), "notebooks/00_gallery.ipynb", "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", f"--token={token}", "--show_tracebacks=True"]
    url = f"http://127.0.0.1:{port}"
    proc, log = _start(cmd, f"{url}/?token={token}", _server_env(tmp), root, artifacts / "voila.log")
    yield {"url": url, "token": token}
    _stop(proc, log)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (make test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request, artifacts):
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    pg = context.new_page()
    pg.console_errors = []
    pg.console_log = []

    def on_console(m):
        pg.console_log.append(f"[{m.type}] {m.text}")
        if m.type == "error" and not any(s in m.text for s in IGNORED_CONSOLE):
            pg.console_errors.append(m.text)

    pg.on("console", on_console)
    pg.on("pageerror", lambda e: pg.console_errors.append(f"pageerror: {e}"))
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
        try:
            pg.screenshot(path=str(artifacts / f"FAILED-{name}.png"), full_page=True)
        except Exception:
            pass
        (artifacts / f"FAILED-{name}.console.txt").write_text("\n".join(pg.console_log))
    context.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


# -- helpers shared by test_lab and test_voila ------------------------------------------------------

def panel_status(panel):
    """The panel's status label (ready / running… / done / stopped / error: ...)."""
    return panel.locator(".widget-hbox:has(> button.aijack-run) > .widget-label")


def start_run(page, panel) -> None:
    """Click the panel's Run button, recording (in the page) every status the panel goes through."""
    page.evaluate(
        """label => {
            label.__seen = [label.innerText];
            const obs = new MutationObserver(() => label.__seen.push(label.innerText));
            obs.observe(label, {subtree: true, childList: true, characterData: true});
        }""",
        panel_status(panel).element_handle(),
    )
    panel.locator("button.aijack-run").click()


def wait_run_done(page, panel, timeout_ms: int) -> str:
    """Wait until a run started by start_run went through "running…" and ended; return the final status."""
    label = panel_status(panel).element_handle()
    page.wait_for_function(
        """label => label.__seen.some(t => t.startsWith('running'))
                    && /^(done|stopped|error)/.test(label.innerText)""",
        arg=label, timeout=timeout_ms, polling=250,
    )
    return label.inner_text()


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def check_panel(panel, where):
    title_el = panel.locator(".aijack-panel-title")
    title = title_el.inner_text()
    assert title_el.is_visible(), f"{where}: panel title {title!r} hidden"
    assert panel.locator("button.aijack-run").is_visible(), f"{where}: {title}: no Run button"
    img = panel.locator("img.aijack-figure")
    assert img.is_visible(), f"{where}: {title}: no figure"
    assert (img.get_attribute("src") or "").strip(), f"{where}: {title}: empty figure"
    assert img.evaluate("el => el.complete && el.naturalWidth") > 50, f"{where}: {title}: figure not decoded"
    numbers = panel.locator(".aijack-result").inner_text()
    assert re.search(r"\d", numbers), f"{where}: {title}: result shows no numbers"
    return title
