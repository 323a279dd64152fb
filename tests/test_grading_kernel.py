"""The graders' handle on a live grading kernel, in the real sandbox: what crosses, what does not, and what
happens when the student's code misbehaves."""
import ast
import threading

import nbformat
import pytest
import torch

from dlvision.grading import expect_implemented_without, expect_keeps_device, speed_ratio
from dlvision.grading.grading_kernel import GraderError, GradingKernel
from dlvision.grading.sandbox import SandboxedKernelManager
from dlvision.grading.student import Student, StudentError
from dlvision.grading.submission import GradedCode, Unit, extract

pytestmark = pytest.mark.slow

STUDENT_CODE = """
import torch
import os

isinstance = lambda *args: True   # shadows a builtin in the student's own module


def double(x):
    return 2 * x


def double_by_loop(x):
    return torch.stack([2 * v for v in x])


def lazy(x):
    return x


def broken(x):
    y = x[100]
    return y


def leaky(x):
    raise ValueError("LEAKED " + repr(x.tolist()))


def endless(x):
    while True:
        pass


def stubborn(x):
    while True:
        try:
            while True:
                pass
        except KeyboardInterrupt:
            continue


def sleepy(seconds):
    import time
    time.sleep(seconds)
    return seconds


def generator(x):
    return (i for i in range(3))


def sees_proc(x):
    return os.path.exists("/proc/self/mem")


def fools_isinstance(x):
    return isinstance(x, str)


def sneaky(x):
    f = torch.softmax
    return f(x, -1)


def dynamic(x):
    return getattr(torch, "soft" + "max")(x, -1)


def onehot_made_on_the_cpu(y):
    return torch.eye(3)[y]


def counts_made_on_the_cpu(y):
    return torch.zeros(3).index_add_(0, y, torch.ones_like(y, dtype=torch.float32))


answer = "C"
"""


def graded_code(source=STUDENT_CODE):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": "code", "solution": True}
    return extract([cell], {"code": []})


def start(graded, **options):
    settings = dict(call_timeout=3, budget=120, max_reply_bytes=1 << 26)
    return GradingKernel(graded, lambda: SandboxedKernelManager(kernel_name="python3"), **{**settings, **options}).ready()


@pytest.fixture(scope="module")
def kernel():
    kernel = start(graded_code())
    yield kernel
    kernel.shutdown()


@pytest.fixture
def student(kernel) -> Student:
    return Student(kernel)


def doubled_facts(x):
    import torch
    return {"sum": double(x).sum(), "shape": tuple(double(x).shape), "real_isinstance": isinstance(x, str),
            "module": isinstance(Linear, type) if "Linear" in globals() else None}


def test_a_call_returns_the_students_tensor(student):
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.equal(student.double(x), 2 * x)


def test_a_scenario_sees_the_contract_names_and_pristine_builtins_only(student):
    facts = student.run(doubled_facts, torch.ones(2, 3))
    assert facts == {"sum": torch.tensor(12.0), "shape": (2, 3), "real_isinstance": False, "module": None}
    assert student.fools_isinstance(torch.ones(1)) is True  # the student's own code sees its own names


def test_a_variable_is_read_by_name(student):
    assert student.value("answer") == "C"


def test_an_error_shows_the_students_line_in_safe_words(student):
    with pytest.raises(StudentError) as broken:
        student.broken(torch.ones(3))
    assert str(broken.value) == ("IndexError: index 100 is out of bounds for dimension 0 with size 3\n"
                                 "  at cell 'code', line 20: y = x[100]")
    with pytest.raises(StudentError) as leaky:
        student.leaky(torch.tensor([0.125, 0.5]))
    assert str(leaky.value).startswith("ValueError (its message is not shown") and "0.125" not in str(leaky.value)


def test_a_name_no_solution_cell_defines_is_the_graders_bug_not_the_students(student):
    with pytest.raises(GraderError, match="the graders call 'os', which no solution cell"):
        student.os()


def test_code_that_is_not_gradable_is_not_loaded_and_says_why(student):
    assert "getattr() with a computed attribute name" in student.not_graded("dynamic")
    with pytest.raises(StudentError, match="dynamic was not graded"):
        student.dynamic(torch.ones(1))


def test_a_call_that_loops_is_interrupted_and_the_kernel_keeps_its_state(student):
    with pytest.raises(StudentError, match="did not finish within 3 s"):
        student.endless(torch.ones(1))
    assert student.value("answer") == "C"


def test_a_call_that_swallows_the_interrupt_gets_a_fresh_kernel_with_the_graded_code(student):
    with pytest.raises(StudentError, match="ignored the interrupt"):
        student.stubborn(torch.ones(1))
    assert student.value("answer") == "C"


def test_a_kernel_that_dies_during_a_call_is_restarted_with_the_graded_code(student, kernel):
    threading.Timer(1.0, lambda: kernel.km.provisioner.process.kill()).start()
    with pytest.raises(StudentError, match="kernel died"):
        student.sleepy(2.5)
    assert student.value("answer") == "C"


def test_a_result_that_is_not_plain_data_is_refused(student):
    with pytest.raises(StudentError, match="returned generator, which cannot be read back"):
        student.generator(1)


def test_the_grading_kernel_has_no_proc(student):
    assert student.sees_proc(None) is False


def test_the_run_time_record_catches_a_call_the_source_hides(student):
    with pytest.raises(AssertionError, match="sneaky uses torch.softmax"):
        expect_implemented_without(student, "sneaky", ["torch.softmax"], calling=((torch.randn(2, 3),), {}))


def inputs_of_1000(generator):
    import torch
    return (torch.randn(1000, generator=generator),), {}


def test_speed_puts_a_vectorised_answer_near_the_reference_and_a_python_loop_far_above(student):
    vectorised = speed_ratio(student, "double", lambda t: 2 * t, inputs_of_1000, repeats=3, min_seconds=0.1)
    looped = speed_ratio(student, "double_by_loop", lambda t: 2 * t, inputs_of_1000, repeats=3, min_seconds=0.1)
    assert vectorised < 20, f"a vectorised answer measured {vectorised:.1f} times the reference"
    assert looped > 10 * vectorised, f"a Python loop measured only {looped:.1f} times ({vectorised:.1f} vectorised)"


def test_speed_counts_only_for_correct_results(student):
    with pytest.raises(AssertionError, match="wrong result"):
        speed_ratio(student, "lazy", lambda t: 2 * t, inputs_of_1000, repeats=2, min_seconds=0.05)


def test_a_submission_stops_at_its_time_budget():
    kernel = start(graded_code(), budget=4)
    try:
        student = Student(kernel)
        assert student.sleepy(2.5) == 2.5
        with pytest.raises(StudentError, match="time budget"):
            while True:
                student.sleepy(1.0)
    finally:
        kernel.shutdown()


# --- if the static analysis were bypassed, the kernel side still holds ---------------------------------------------

BYPASS = '''
def forges(x):
    from IPython.display import publish_display_data
    publish_display_data({"application/vnd.dlvision.reply+json": {"ok": True, "nonce": "guess", "payload": "AAAA"}})
    return 2 * x


def evaluates(x):
    return eval("1 + 1")


def imports(x):
    import subprocess
    return 1


def opens(x):
    return open("/proc/self/mem", "rb")
'''


def test_without_the_analysis_the_graded_code_still_cannot_import_publish_evaluate_or_open():
    lines = BYPASS.splitlines(keepends=True)
    units = [Unit((0, i), "'code'", node, "\n" * (node.lineno - 1) + "".join(lines[node.lineno - 1:node.end_lineno]),
                  {node.name}) for i, node in enumerate(ast.parse(BYPASS).body)]
    names = ["forges", "evaluates", "imports", "opens"]
    graded = GradedCode(units, {n: "code" for n in names}, {}, {n: [u] for n, u in zip(names, units)},
                        {"'code'": BYPASS.splitlines()})
    kernel = start(graded)
    try:
        student = Student(kernel)
        with pytest.raises(StudentError, match="ImportError"):
            student.forges(torch.ones(2))
        with pytest.raises(StudentError, match="NameError"):
            student.evaluates(1)
        with pytest.raises(StudentError, match="ImportError"):
            student.imports(1)
        with pytest.raises(StudentError, match="PermissionError"):  # its open() refuses, whatever it is asked
            student.opens(1)
    finally:
        kernel.shutdown()


@pytest.mark.parametrize("name", ["onehot_made_on_the_cpu", "counts_made_on_the_cpu"])
def test_every_kind_of_device_error_is_device_evidence(student, name):
    """CUDA's indexing and index_add errors fail the device check (its words are not shown to the student)."""
    with pytest.raises(AssertionError, match="mixes devices"):
        expect_keeps_device(student, name, torch.tensor([0, 2, 1]))
