import sys
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

import dlvision
from dlvision.grading import sandbox
from dlvision.grading.preprocessor import TrustedExecute


def command(**overrides):
    arguments = dict(workdir="/course/autograded/ada/ch02", rundir="/tmp/run", memory_bytes=1 << 30,
                     read_only=[Path("/venv")], gpu_devices=[])
    return sandbox.bwrap_command(["python", "-m", "ipykernel_launcher", "-f", "/tmp/run/kernel.json"],
                                 **{**arguments, **overrides})


def pairs(cmd, flag):
    return [tuple(cmd[i + 1:i + 3]) for i, arg in enumerate(cmd) if arg == flag]


def test_the_kernel_gets_its_own_namespaces_and_dies_with_the_grader():
    cmd = command()
    assert cmd[0] == "bwrap"
    assert {"--unshare-all", "--die-with-parent", "--new-session"} <= set(cmd)


def test_only_the_submission_folder_and_the_socket_folder_are_writable():
    assert pairs(command(), "--bind") == [("/course/autograded/ada/ch02", "/course/autograded/ada/ch02"),
                                          ("/tmp/run", "/tmp/run")]


def test_the_python_environment_is_bound_read_only():
    assert ("/venv", "/venv") in pairs(command(), "--ro-bind")


def test_the_kernel_runs_in_the_submission_folder_without_the_parent_pid_and_under_a_memory_limit():
    cmd = command()
    assert cmd[cmd.index("--chdir") + 1] == "/course/autograded/ada/ch02"
    assert cmd[cmd.index("--unsetenv") + 1] == "JPY_PARENT_PID"
    assert cmd[cmd.index("--") + 1:] == ["prlimit", f"--data={1 << 30}", "--", "python", "-m", "ipykernel_launcher",
                                         "-f", "/tmp/run/kernel.json"]


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
