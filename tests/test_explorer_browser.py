"""The explorer notebook in a real browser: JupyterLab on 127.0.0.1, driven by headless Chromium.

Starts JupyterLab (random free port, token auth, a temporary root holding a copy of
notebooks/00_explore.ipynb), runs the notebook, types a sentence, moves the k slider, checks
that the keep grid and the prediction update, and saves reports/figures/explorer.png.
The server and its kernels are stopped in the fixture's teardown, also when the test fails.
When voila is installed, the same notebook is also checked as a Voila dashboard.

The browser is Debian's `chromium` (Playwright's own download is not used). The run shown is
an SST-2 run under `$TSDTP_EXPLORER_RUNS` (default: the repository's runs/), preferring
ts-dtp; without one the default model is shown.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tsdtp.explorer.session import scan_runs

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "00_explore.ipynb"
SCREENSHOT = REPO / "reports" / "figures" / "explorer.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
FIRST_TEXT = "the acting is dreadful and the plot makes no sense at all ."
TYPED_TEXT = "a gorgeous , witty and wonderfully acted film ."
SERVER_START_S = 90
NOTEBOOK_RUN_MS = 120_000
UPDATE_MS = 60_000

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -e '.[notebooks]')")
if not CHROMIUM.is_file():
    pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium)",
                allow_module_level=True)


@dataclass(frozen=True)
class Server:
    """A running server (JupyterLab or Voila): its base URL and token."""

    url: str
    token: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _showcase_run() -> tuple[Path, Path | None]:
    """The runs root to show, and an SST-2 run under it (ts-dtp first), or None for the default model."""
    root = Path(os.environ.get("TSDTP_EXPLORER_RUNS", REPO / "runs"))
    ranked = []
    for entry in scan_runs(root):
        try:
            config = json.loads((entry.path / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if config.get("task") == "sst2":
            ranked.append((config.get("pruning", {}).get("method") != "ts-dtp", entry.path.name, entry.path))
    return root, (min(ranked)[2] if ranked else None)


def _write_notebook(root: Path) -> None:
    """Copy the explorer notebook into `root` with injected parameters (as papermill does)."""
    runs_root, run_dir = _showcase_run()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    position = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    source = (f"runs_root = {str(runs_root)!r}\nrun_dir = {None if run_dir is None else str(run_dir)!r}\n"
              f"text = {FIRST_TEXT!r}\nthreads = 1")
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(position + 1, injected)
    nbformat.write(notebook, root / NOTEBOOK.name)


def _quiet_lab_settings(settings: Path) -> None:
    """No news or update checks (nothing outside this machine can be reached)."""
    folder = settings / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def _shutdown_kernels(server: Server) -> None:
    """Shut down every kernel of a JupyterLab through its REST API."""
    try:
        for kernel in json.loads(_get(f"{server.url}/api/kernels?token={server.token}")):
            request = urllib.request.Request(f"{server.url}/api/kernels/{kernel['id']}?token={server.token}",
                                             method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()
    except OSError:
        pass


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (servers shut their kernels down on it), then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue


def _wait_for_port(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited ({process.returncode}):\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not listen on port {port} within {SERVER_START_S} s:\n{log.read_text()}")
            time.sleep(0.5)


@contextmanager
def _serving(args: list[str], root: Path, home: Path, port: int) -> Iterator[subprocess.Popen]:
    """Run `python -m <args>`, a server listening on `port`, in its own process group; stop it on exit.

    Jupyter's config, runtime, settings and IPython folders are private to the test.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "IPYTHONDIR": str(home / "ipython"), "OMP_NUM_THREADS": "1"}
    log = home / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", *args], cwd=root, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_for_port(process, port, log)
            yield process
        finally:
            _stop(process)


def _notebook_root(tmp_path: Path) -> tuple[Path, Path]:
    root, home = tmp_path / "root", tmp_path / "jupyter"
    root.mkdir()
    home.mkdir()
    _write_notebook(root)
    return root, home


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[Server]:
    """JupyterLab serving a temporary root with the explorer notebook; stopped on teardown."""
    root, home = _notebook_root(tmp_path)
    _quiet_lab_settings(home / "settings")
    port = _free_port()
    server = Server(f"http://127.0.0.1:{port}", secrets.token_hex(16))
    args = ["jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            *(["--allow-root"] if os.geteuid() == 0 else []), f"--IdentityProvider.token={server.token}",
            f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
            "--LabApp.extension_manager=readonly", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with _serving(args, root, home, port):
        try:
            yield server
        finally:
            _shutdown_kernels(server)


@pytest.fixture()
def voila(tmp_path: Path) -> Iterator[Server]:
    """Voila serving the explorer notebook as a dashboard; stopped on teardown."""
    pytest.importorskip("voila", reason="voila is not installed (pip install voila): the dashboard view is optional")
    root, home = _notebook_root(tmp_path)
    port = _free_port()
    server = Server(f"http://127.0.0.1:{port}", secrets.token_hex(16))
    args = ["voila", str(root / NOTEBOOK.name), "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
            "--Voila.port_retries=0", f"--token={server.token}"]
    with _serving(args, root, home, port):
        yield server


@pytest.fixture()
def page() -> Iterator[Any]:
    """A page of headless Debian Chromium; the browser is closed on teardown."""
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1500, "height": 1300})
        finally:
            browser.close()


def _type_sentence(page: Any, text: str, token: str) -> None:
    """Replace the explorer's sentence as a user would and wait until the grid shows `token`."""
    textarea = page.locator(".tsdtp-text textarea")
    textarea.click()
    textarea.press("Control+A")
    textarea.press_sequentially(text)
    textarea.blur()
    page.wait_for_function(
        f"document.querySelector('.tsdtp-explorer .tsdtp-grid')?.innerText.includes({token!r})", timeout=UPDATE_MS)


def test_explorer_in_jupyterlab(lab: Server, page: Any):
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}")
    page.wait_for_function("window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel",
                           timeout=NOTEBOOK_RUN_MS)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    grid = page.locator(".tsdtp-explorer .tsdtp-grid").first
    grid.wait_for(timeout=NOTEBOOK_RUN_MS)
    assert "dreadful" in grid.inner_text()
    prediction = page.locator(".tsdtp-explorer .tsdtp-prediction").first
    assert "confidence" in prediction.inner_text()
    probs_first = prediction.get_attribute("data-probs")

    _type_sentence(page, TYPED_TEXT, "wonderful")
    assert "dreadful" not in grid.inner_text()
    probs_typed = prediction.get_attribute("data-probs")
    assert probs_typed != probs_first
    kept_typed = int(grid.get_attribute("data-kept"))

    handle = page.locator(".tsdtp-k .noUi-handle")
    handle.focus()
    for _ in range(10):
        handle.press("ArrowLeft")
    page.wait_for_function("document.querySelector('.tsdtp-explorer .tsdtp-panel')?.dataset.k === '0'",
                           timeout=UPDATE_MS)
    assert int(grid.get_attribute("data-kept")) < kept_typed
    assert prediction.get_attribute("data-probs") != probs_typed
    assert "k = 0" in page.locator(".tsdtp-explorer .tsdtp-title").first.inner_text()
    assert page.locator(".tsdtp-explorer .tsdtp-error").count() == 0
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.locator(".tsdtp-explorer").screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_explorer_as_voila_dashboard(voila: Server, page: Any):
    page.goto(f"{voila.url}/?token={voila.token}", timeout=NOTEBOOK_RUN_MS)
    grid = page.locator(".tsdtp-explorer .tsdtp-grid").first
    grid.wait_for(timeout=NOTEBOOK_RUN_MS)
    assert "dreadful" in grid.inner_text()
    assert "confidence" in page.locator(".tsdtp-explorer .tsdtp-prediction").first.inner_text()
    _type_sentence(page, TYPED_TEXT, "wonderful")
    assert page.locator(".tsdtp-explorer .tsdtp-error").count() == 0
