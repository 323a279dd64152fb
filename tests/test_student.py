"""The graders' handle on a real student kernel, in the real sandbox: what crosses, and what does not."""
import os

import nbformat
import pytest
import torch

from dlvision.grading import speed_ratio
from dlvision.grading.preprocessor import TrustedExecute
from dlvision.grading.student import Student, StudentError
from dlvision.grading.wire import REPLY_MIME

pytestmark = pytest.mark.slow

STUDENT_CODE = """
import torch

def double(x):
    return 2 * x

def divide(x):
    return x / 0 if isinstance(x, int) else x

def broken(x):
    return 1 / 0

def endless(x):
    while True:
        pass

def stubborn(x):
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        pass

def chatty(x):
    for i in range(20000):
        print("line", i)
    return x + 1

def generator(x):
    return (i for i in range(3))

def double_by_loop(x):
    return torch.stack([2 * v for v in x])

answer = "C"
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A TrustedExecute with a live sandboxed kernel that has run STUDENT_CODE."""
    workdir = tmp_path_factory.mktemp("submission")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}},
                                  cells=[nbformat.v4.new_code_cell(STUDENT_CODE)])
    executor = TrustedExecute(timeout=5, call_timeout=3)
    executor.nb = nb
    executor.resources = {"metadata": {"path": str(workdir)}}
    os.environ["DLVISION_TEST_SECRET"] = "a grader's token"  # must not reach the kernel
    try:
        with executor.setup_kernel():
            del os.environ["DLVISION_TEST_SECRET"]
            executor.execute_cell(nb.cells[0], 0)
            yield executor
    finally:
        os.environ.pop("DLVISION_TEST_SECRET", None)


@pytest.fixture
def student(kernel) -> Student:
    return Student(lambda code, timeout: kernel._run_for_grader(code, timeout, 0), [STUDENT_CODE], timeout=3)


def doubled_sum(x):
    return {"sum": double(x).sum(), "shape": tuple(double(x).shape)}


def test_a_call_returns_the_students_tensor(student):
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.equal(student.double(x), 2 * x)


def test_a_scenario_sees_the_students_names_and_returns_plain_data(student):
    facts = student.run(doubled_sum, torch.ones(2, 3))
    assert facts == {"sum": torch.tensor(12.0), "shape": (2, 3)}


def test_a_variable_is_read_by_name(student):
    assert student.value("answer") == "C"


def test_an_error_in_student_code_shows_the_students_line_and_no_grader_source(student):
    with pytest.raises(StudentError) as error:
        student.run(doubled_sum, "not a tensor")
    with pytest.raises(StudentError) as broken:
        student.broken(torch.ones(1))
    assert "ZeroDivisionError: division by zero" in str(broken.value)
    assert "return 1 / 0" in str(broken.value)
    assert "doubled_sum" not in str(error.value) and "facts" not in str(error.value)


def test_a_missing_name_says_to_run_the_cell_that_defines_it(student):
    with pytest.raises(StudentError, match="name 'tanh' is not defined: run the cell"):
        student.tanh(torch.ones(1))


def test_a_call_that_loops_is_interrupted_and_the_kernel_keeps_its_state(student):
    with pytest.raises(StudentError, match="did not finish within 3 s"):
        student.endless(torch.ones(1))
    assert student.value("answer") == "C"


def test_a_call_that_ignores_the_interrupt_gets_a_fresh_kernel(student, kernel):
    with pytest.raises(StudentError, match="restarted"):
        student.stubborn(torch.ones(1))
    with pytest.raises(StudentError, match="not defined"):
        student.value("answer")
    kernel.execute_cell(kernel.nb.cells[0], 0)  # put the student's code back for the other tests
    assert student.value("answer") == "C"


def test_a_result_that_is_not_plain_data_is_refused(student):
    with pytest.raises(StudentError, match="could not be read back"):
        student.generator(1)


def test_output_printed_during_a_call_never_hides_the_result(student):
    assert torch.equal(student.chatty(torch.zeros(2)), torch.ones(2))


def test_a_forged_reply_that_would_run_code_on_the_trusted_side_is_refused(student, kernel, tmp_path):
    marker = tmp_path / "pwned"
    forge = f"""
import base64, pickle, os
from IPython.display import publish_display_data
import dlvision.grading.kernel_side as kernel_side
class Exploit:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
def forged_serve(request, namespace):
    publish_display_data({{"{REPLY_MIME}": {{"ok": True, "payload": base64.b64encode(pickle.dumps(Exploit())).decode()}}}})
kernel_side.serve = forged_serve
"""
    kernel.execute_cell(nbformat.v4.new_code_cell(forge), 0)
    try:
        with pytest.raises(StudentError, match="could not be read back"):
            student.double(torch.ones(1))
        assert not marker.exists()
    finally:
        kernel.execute_cell(nbformat.v4.new_code_cell("import importlib, dlvision.grading.kernel_side as k\n"
                                                      "importlib.reload(k)"), 0)


def sandbox_facts(paths):
    import os
    import socket

    facts = {"seen": {p: os.path.exists(p) for p in paths}, "env": sorted(os.environ)}
    try:
        socket.create_connection(("1.1.1.1", 80), timeout=2)
        facts["network"] = "open"
    except OSError as error:
        facts["network"] = type(error).__name__
    try:
        bytearray(32 << 30)
        facts["memory"] = "allocated 32 GiB"
    except MemoryError:
        facts["memory"] = "MemoryError"
    with open("written-by-student.txt", "w") as f:
        f.write("ok")
    return facts


def test_the_sandbox_hides_the_course_and_the_network_and_limits_memory(student, kernel, tmp_path):
    outside = tmp_path / "gradebook.db"
    outside.write_text("secret")
    facts = student.run(sandbox_facts, [str(outside), str(kernel.resources["metadata"]["path"])])
    assert facts["seen"] == {str(outside): False, kernel.resources["metadata"]["path"]: True}
    assert facts["network"] != "open"
    assert facts["memory"] == "MemoryError"
    assert "DLVISION_TEST_SECRET" not in facts["env"]
    assert os.path.exists(os.path.join(kernel.resources["metadata"]["path"], "written-by-student.txt"))


def test_speed_ratio_puts_a_vectorised_answer_near_the_reference_and_a_python_loop_far_above(student):
    x = torch.randn(1000)
    vectorised = speed_ratio(student, "double", lambda t: 2 * t, x, repeats=3, min_seconds=0.1)
    looped = speed_ratio(student, "double_by_loop", lambda t: 2 * t, x, repeats=3, min_seconds=0.1)
    assert vectorised < 10, f"a vectorised answer measured {vectorised:.1f} times the reference"
    assert looped > 20 * vectorised, f"a Python loop measured only {looped:.1f} times ({vectorised:.1f} vectorised)"
