"""The sandbox's command line, and what a live sandboxed kernel can and cannot do."""
import os
import sys
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

import dlvision
from dlvision.grading import sandbox
from dlvision.grading.preprocessor import TrustedExecute

LIMITS = {"memory": 1 << 30, "processes": 64, "file_size": 1 << 20, "open_files": 256, "tmp_size": 1 << 24,
          "workdir_size": 1 << 25}


def command(**overrides):
    arguments = dict(rundir="/tmp/run", limits=LIMITS, read_only=[Path("/venv")], gpu_devices=[], uid=None)
    return sandbox.bwrap_command(["python", "-m", "ipykernel_launcher", "-f", "/tmp/run/kernel.json"],
                                 **{**arguments, **overrides})


def pairs(cmd, flag):
    return [tuple(cmd[i + 1:i + 3]) for i, arg in enumerate(cmd) if arg == flag]


def test_the_kernel_gets_its_own_namespaces_and_dies_with_the_grader():
    cmd = command()
    namespaces = {"--unshare-all"} if "--unshare-all" in cmd else {"--unshare-pid", "--unshare-net", "--unshare-ipc"}
    assert cmd[0] == "bwrap" and namespaces | {"--die-with-parent", "--new-session"} <= set(cmd)


def test_only_the_socket_folder_is_bound_writable_and_the_working_folders_are_sized_tmpfs():
    cmd = command()
    assert pairs(command(), "--bind") == [("/tmp/run", "/tmp/run")]
    sized = {cmd[i + 3]: int(cmd[i + 1]) for i, arg in enumerate(cmd) if arg == "--size"}
    assert sized == {"/tmp": 1 << 24, "/dev/shm": 1 << 22, sandbox.WORKDIR: 1 << 25}


def test_the_python_environment_is_bound_read_only_with_traversable_parents():
    cmd = command(read_only=[Path("/root/.pyenv/versions/3.11"), Path("/venv")])
    assert ("/venv", "/venv") in pairs(cmd, "--ro-bind")
    assert ("0755", "--dir") in pairs(cmd, "--perms") and "/root/.pyenv" in cmd


def test_an_environment_installed_under_tmp_is_bound_on_top_of_the_sandboxs_own_tmp():
    cmd = command(read_only=[Path("/tmp/course/.venv")])
    assert cmd.index("--tmpfs") < cmd.index("--ro-bind", cmd.index("--tmpfs")) < cmd.index("/tmp/course/.venv")


def test_as_root_the_kernel_drops_to_a_uid_of_its_own_with_no_capabilities_and_a_process_limit():
    cmd = command(uid=12345678)
    tail = cmd[cmd.index("--") + 1:]
    assert tail[:tail.index("setpriv")] == ["prlimit", f"--data={1 << 30}", f"--fsize={1 << 20}", "--nofile=256",
                                            "--core=0", "--nproc=64", "--"]
    assert {"--reuid=12345678", "--regid=12345678", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
            "--no-new-privs"} <= set(tail)


def test_without_a_uid_the_kernel_has_no_process_limit_of_its_own():
    tail = command()[command().index("--") + 1:]
    assert "setpriv" not in tail and not any(a.startswith("--nproc") for a in tail)


def test_the_grading_kernel_can_go_without_proc():
    assert "--proc" in command() and "--proc" not in command(proc=False)


def test_gpu_device_nodes_are_passed_in_when_there_are_some():
    assert pairs(command(gpu_devices=["/dev/nvidia0", "/dev/nvidiactl"]), "--dev-bind") == [
        ("/dev/nvidia0", "/dev/nvidia0"), ("/dev/nvidiactl", "/dev/nvidiactl")]


def test_the_environment_and_the_dlvision_package_are_readable_but_no_course_folder_is():
    folders = sandbox.python_folders()
    assert Path(sys.prefix).resolve() in {f.resolve() for f in folders} or \
        any(f in Path(sys.prefix).resolve().parents for f in folders)
    package = Path(dlvision.__file__).parent
    assert any(f == package or f in package.parents for f in folders)
    repo = Path(__file__).resolve().parents[1]
    assert repo not in folders and (repo / "graders") not in folders


def test_a_missing_bubblewrap_is_reported_with_its_reason():
    assert "not on PATH" in sandbox.sandbox_problem("no-such-bwrap-here")


def test_messages_beyond_the_bounds_are_refused_before_they_are_parsed():
    unpack = sandbox.bounded_unpacker(max_bytes=1000, max_items=100)
    assert unpack(b'{"a": [1, 2, 3]}') == {"a": [1, 2, 3]}
    with pytest.raises(sandbox.MessageTooLarge, match="bytes"):
        unpack(b" " * 1001)
    with pytest.raises(sandbox.MessageTooLarge, match="JSON values"):
        unpack(b"[" + b"0," * 200 + b"0]")


PROBE = '''
import os, socket, subprocess
facts = {"uid": os.getuid(), "cwd": os.getcwd(), "files": sorted(os.listdir(".")), "env": sorted(os.environ)}
facts["caps"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
facts["seen"] = {p: os.path.exists(p) for p in PATHS}
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2); facts["network"] = "open"
except OSError as error:
    facts["network"] = type(error).__name__
try:
    bytearray(32 << 30); facts["memory"] = "allocated 32 GiB"
except MemoryError:
    facts["memory"] = "MemoryError"
facts["remount"] = subprocess.run(["mount", "-o", "remount,rw", "/usr"], capture_output=True).returncode
print(facts)
'''


@pytest.mark.slow
def test_a_live_kernel_sees_only_its_copy_of_the_submission_and_has_no_rights(tmp_path):
    workdir = tmp_path / "submission"
    workdir.mkdir()
    (workdir / "data.txt").write_text("mine")
    os.symlink("/etc/hostname", workdir / "link")
    outside = tmp_path / "gradebook.db"
    outside.write_text("secret")
    code = PROBE.replace("PATHS", repr([str(outside), str(workdir), str(Path(dlvision.__file__).parents[1] / "graders")]))
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}},
                                  cells=[nbformat.v4.new_code_cell(code)])
    executor = TrustedExecute(timeout=60)
    executor.nb = nb
    executor.resources = {"metadata": {"path": str(workdir)}}
    os.environ["DLVISION_TEST_SECRET"] = "a grader's token"  # must not reach the kernel
    try:
        with executor.setup_kernel():
            executor.execute_cell(nb.cells[0], 0)
    finally:
        os.environ.pop("DLVISION_TEST_SECRET", None)
    facts = eval(nb.cells[0].outputs[0]["text"])  # noqa: S307 - our own probe's output
    assert facts["cwd"] == sandbox.WORKDIR and facts["files"] == ["data.txt"]
    assert not any(facts["seen"].values())
    assert facts["network"] != "open" and facts["memory"] == "MemoryError" and facts["remount"] != 0
    assert "DLVISION_TEST_SECRET" not in facts["env"]
    if os.geteuid() == 0:
        assert facts["uid"] != 0 and facts["caps"] == "0000000000000000"


@pytest.mark.slow
def test_without_a_sandbox_grading_still_works_and_says_so_loudly(tmp_path, capfd):
    config = Config()
    config.SandboxedKernelManager.sandbox = False
    outside = tmp_path / "outside.txt"
    outside.write_text("visible without a sandbox")
    (tmp_path / "work").mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}},
                                  cells=[nbformat.v4.new_code_cell(f"print(open({str(outside)!r}).read())")])
    executor = TrustedExecute(config=config, timeout=10)
    executor.nb = nb
    executor.resources = {"metadata": {"path": str(tmp_path / "work")}}
    sandbox.warn_no_sandbox.cache_clear()
    with executor.setup_kernel():
        executor.execute_cell(nb.cells[0], 0)
    assert "visible without a sandbox" in nb.cells[0].outputs[0]["text"]
    assert "NO SANDBOX" in capfd.readouterr().err


@pytest.mark.slow
def test_require_sandbox_refuses_to_start_a_kernel_without_one(tmp_path):
    config = Config()
    config.SandboxedKernelManager.bwrap = "no-such-bwrap-here"
    config.SandboxedKernelManager.require_sandbox = True
    executor = TrustedExecute(config=config)
    executor.nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                    "language": "python"}})
    executor.resources = {"metadata": {"path": str(tmp_path)}}
    with pytest.raises(RuntimeError, match="no sandbox can be made"):
        with executor.setup_kernel():
            pass
