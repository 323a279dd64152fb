"""JupyterLab in a real browser, for the browser tests: a Jupyter server of the project's environment on a free local
port with a token, isolated from the user's own Jupyter settings, and headless Chromium driven by Selenium.

Debian's ``chromium`` and ``chromium-driver`` are used where they are installed (``scripts/install.sh``); nothing is
downloaded at run time (Selenium Manager is never asked: the driver's path is given).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BIN = Path(sys.executable).parent

#: JupyterLab's user settings for a quiet, deterministic session: no news or update checks (and so no "Would you
#: like to receive official Jupyter news?" popup), and every cell of a notebook kept in the page.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (f"{' and '.join(missing)} not found: install Debian's chromium and chromium-driver "
                f"(bash scripts/install.sh does)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fatal(Exception):
    """An error that waiting longer cannot cure."""


def wait_for(condition, timeout: float, what: str, interval: float = 0.25):
    """Poll ``condition()`` until it returns something truthy, and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Fatal:
            raise
        except Exception as error:  # noqa: BLE001 - the page may be mid-render; try again
            last_error = error
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}"
                               + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


class JupyterServer:
    """``jupyter lab`` (with every server extension of the environment: nbgrader's formgrader and validate included)
    serving ``root``, with HOME and Jupyter's config, data and runtime folders of its own under ``home``; the
    environment's own data path (lab extensions, the python3 kernelspec) stays in use."""

    def __init__(self, root: Path, home: Path, log: Path, extra_args: tuple[str, ...] = ()):
        self.root, self.home, self.log_path = Path(root), Path(home), Path(log)
        self.token = os.urandom(16).hex()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None
        self.runtime = self.home / ".local" / "share" / "jupyter" / "runtime"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_", "IPYTHON"))}
        env.update(HOME=str(self.home), JUPYTER_CONFIG_DIR=str(self.home / ".jupyter"),
                   JUPYTER_DATA_DIR=str(self.home / ".local" / "share" / "jupyter"),
                   JUPYTER_RUNTIME_DIR=str(self.runtime), IPYTHONDIR=str(self.home / ".ipython"),
                   MPLCONFIGDIR=str(self.home / ".matplotlib"), JUPYTER_PLATFORM_DIRS="1",
                   PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1")
        return env

    def start(self, timeout: float = 180) -> "JupyterServer":
        settings = self.home / ".jupyter" / "lab" / "user-settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        self.runtime.mkdir(parents=True, exist_ok=True)
        args = [str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
                *(["--allow-root"] if os.geteuid() == 0 else []),
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--ServerApp.shutdown_no_activity_timeout=600", *self.extra_args]
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, cwd=self.root, env=self.env(), stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for(self._ready, timeout, f"jupyter lab to answer on {self.url} (log: {self.log_path})", interval=0.5)
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise Fatal(f"jupyter lab exited with {self.process.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5) as reply:
                return reply.status == 200
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            return False

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = reply.read()
            return json.loads(body) if body else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def page(self, path: str) -> str:
        """The URL of ``path`` on this server, logged in with the token."""
        return f"{self.url}{path}{'&' if '?' in path else '?'}token={self.token}"

    def _own_processes(self) -> dict[int, str]:
        """``{pid: command line}`` of the processes this server started, itself and its kernels: their command
        lines name its runtime folder."""
        found = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(self.runtime) in cmdline:
                found[int(proc.name)] = cmdline
        return found

    def kernel_command_lines(self) -> list[str]:
        """The command lines (NUL-separated) of this server's running kernels."""
        return [cmd for cmd in self._own_processes().values() if "ipykernel" in cmd]

    def stop(self, timeout: float = 60) -> list[int]:
        """Shut the server down through its API (kernels included), then make sure nothing it started is left.
        Returns the pids of processes that had to be killed (none, when all went well)."""
        if self.process is None:
            return []
        killed = []
        try:
            if self.process.poll() is None:
                try:
                    self.api("/api/shutdown", method="POST")
                except (urllib.error.URLError, ConnectionError, socket.timeout):
                    pass
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGTERM)
                    killed.append(self.process.pid)
                    self.process.wait(30)
            deadline = time.monotonic() + 20
            while self._own_processes() and time.monotonic() < deadline:
                time.sleep(0.2)
            for pid in self._own_processes():
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
        finally:
            self._log.close()
            self.process = None
        return killed


def chromium(download_dir: Path, width: int = 1400, height: int = 1000):
    """Headless Chromium (root-safe flags), driven through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.unhandled_prompt_behavior = "accept"  # e.g. "leave the page?" after a test failed with unsaved changes
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--force-device-scale-factor=1", "--no-first-run",
                 "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--lang=en-US",
                 f"--user-data-dir={download_dir / 'chromium-profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(download_dir / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    # the window's size includes the browser's own frame: make the page itself width x height
    inner, outer = driver.execute_script("return [window.innerWidth, window.innerHeight]"), driver.get_window_size()
    driver.set_window_size(outer["width"] + width - inner[0], outer["height"] + height - inner[1])
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    return driver


def clean_copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return dst
