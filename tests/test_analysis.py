"""The graded code, extracted and analysed on the trusted side: what is loaded, what is refused, what a name reaches.

No kernel runs here: these are the static halves of the trust line (the live halves are in test_grading_kernel.py
and, end to end, test_adversarial.py).
"""
import nbformat
import pytest

from dlvision.grading.analysis import graded_builtins, import_allowed
from dlvision.grading.expect import expect_implemented_without
from dlvision.grading.submission import MAX_SOURCE_CHARS, contract_names, extract

SETUP = "import torch\nimport math\nimport torch.nn.functional as F"


def graded(solution: str, *extra: str, setup: str = SETUP):
    """The graded code of a notebook: a setup cell, the solution cell 'softmax', then extra cells."""
    cells = [nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(solution),
             *[nbformat.v4.new_code_cell(e) for e in extra]]
    cells[1].metadata["nbgrader"] = {"grade_id": "softmax", "solution": True, "grade": False}
    return extract(cells, {"softmax": ["softmax"]})


HONEST = {
    "plain": "def softmax(x, dim=-1):\n    e = torch.exp(x - x.amax(dim=dim, keepdim=True))\n"
             "    return e / e.sum(dim=dim, keepdim=True)",
    "annotations": "from __future__ import annotations\nfrom typing import Optional\n"
                   "def softmax(x: torch.Tensor, dim: int = -1, out: Optional[torch.Tensor] = None) -> torch.Tensor:\n"
                   "    m = x.amax(dim=dim, keepdim=True)\n    return (x - m).exp() / (x - m).exp().sum(dim, keepdim=True)",
    "decorators_and_helpers": "import functools\n@functools.lru_cache(None)\ndef _scale(n):\n    return 1.0\n"
                              "@torch.no_grad()\ndef _shift(x, dim):\n    return x.amax(dim=dim, keepdim=True)\n"
                              "def softmax(x, dim=-1):\n    e = torch.exp(x - _shift(x, dim)) * _scale(1)\n"
                              "    return e / e.sum(dim=dim, keepdim=True)",
    "classes_and_super": "class Softmax(torch.nn.Module):\n    def __init__(self, dim):\n        super().__init__()\n"
                         "        self.dim = dim\n    def forward(self, x):\n        return torch.exp(x) / torch.exp(x)"
                         ".sum(self.dim, keepdim=True)\n    def __repr__(self):\n        return self.__class__.__name__\n"
                         "def softmax(x, dim=-1):\n    return Softmax(dim)(x)",
    "dynamic_attributes_on_self": "class Stack:\n    def __init__(self):\n        for i in range(3):\n"
                                  "            setattr(self, f'layer{i}', i)\n    def get(self, i):\n"
                                  "        return getattr(self, f'layer{i}')\n"
                                  "def softmax(x, dim=-1):\n    return x * Stack().get(0)",
    "prints_and_warns": "import sys, warnings\ndef softmax(x, dim=-1):\n    print('hi', file=sys.stderr)\n"
                        "    warnings.warn('careful')\n    return x",
    "numpy_and_local_imports": "import numpy as np\ndef softmax(x, dim=-1):\n    import math as m\n"
                               "    return torch.from_numpy(np.exp(x.numpy() - m.log(1.0)))",
}

UNGRADABLE = {
    "eval": ("def softmax(x, dim=-1):\n    return eval('torch.softmax(x, dim)')", "the builtin eval()"),
    "globals": ("def softmax(x, dim=-1):\n    return globals()['torch'].softmax(x, dim)", "the builtin globals()"),
    "computed_getattr": ("def softmax(x, dim=-1):\n    return getattr(torch, 'soft' + 'max')(x, dim)",
                         "getattr() with a computed attribute name"),
    "vars": ("def softmax(x, dim=-1):\n    return vars(torch)['softmax'](x, dim)", "the builtin vars()"),
    "the_harness": ("import dlvision.grading.kernel_side as k\ndef softmax(x, dim=-1):\n    return k", "dlvision.grading"),
    "sys_modules": ("import sys\ndef softmax(x, dim=-1):\n    return sys.modules", "sys.modules"),
    "sys_through_another_module": ("import typing\ndef softmax(x, dim=-1):\n    return typing.sys", "the module sys"),
    "frames": ("def softmax(x, dim=-1):\n    return (i for i in []).gi_frame.f_globals", "the attribute gi_frame"),
    "dunder_globals": ("def softmax(x, dim=-1):\n    return softmax.__globals__", "the attribute __globals__"),
    "subclasses": ("def softmax(x, dim=-1):\n    return ().__class__.__bases__[0].__subclasses__()", "__bases__"),
    "changes_a_library": ("def softmax(x, dim=-1):\n    torch.exp = lambda t: t\n    return x", "changing torch.exp"),
    "setattr_on_a_library": ("def softmax(x, dim=-1):\n    setattr(torch, 'exp', None)\n    return x", "changing torch.exp"),
    "private_torch": ("def softmax(x, dim=-1):\n    return torch._C._nn.softmax(x)", "a private part"),
    "torch_ops": ("def softmax(x, dim=-1):\n    return torch.ops.aten._softmax(x, dim, False)", "torch.ops"),
    "pickles": ("def softmax(x, dim=-1):\n    return torch.load('f.pt')", "torch.load"),
    "open": ("def softmax(x, dim=-1):\n    return open('/proc/self/mem', 'wb')", "the builtin open()"),
    "os_open": ("import os\ndef softmax(x, dim=-1):\n    return os.open('/proc/self/mem', 2)", "os.open"),
    "os_through_os_path": ("import os\ndef softmax(x, dim=-1):\n    return os.path.os", "os.path.os"),
    "a_module_not_allowed": ("import subprocess\ndef softmax(x, dim=-1):\n    return subprocess", "subprocess"),
    "class_pretends": ("class Fake(torch.Tensor):\n    __class__ = torch.Tensor\ndef softmax(x, dim=-1):\n"
                       "    return Fake()", "a class attribute named __class__"),
    "attrgetter": ("import operator\ndef softmax(x, dim=-1):\n    return operator.attrgetter('f_globals')(x)",
                   "operator.attrgetter"),
}


@pytest.mark.parametrize("style", HONEST)
def test_honest_code_in_any_style_is_graded(style):
    assert graded(HONEST[style]).excluded == {}


@pytest.mark.parametrize("attack", UNGRADABLE)
def test_code_that_could_reach_the_harness_or_run_hidden_code_is_not_graded(attack):
    code, why = UNGRADABLE[attack]
    reasons = graded(code).excluded
    assert "softmax" in reasons and why in reasons["softmax"], reasons


def test_a_stub_with_extra_cells_defining_the_name_is_still_the_stub():
    code = graded("def softmax(x, dim=-1):\n    raise NotImplementedError()",
                  "softmax = torch.softmax", "def softmax(x, dim=-1):\n    return x")
    [unit] = code.closures["softmax"]
    assert "NotImplementedError" in unit.source and code.reach("softmax").paths == set()


def test_only_definitions_are_loaded_not_the_statements_around_them():
    code = graded("def softmax(x, dim=-1):\n    return x\nprint('side effect')\nfor i in range(3):\n    pass\n"
                  "x = 1; eval('1')")
    sources = "".join(u.source for u in code.units)
    assert "print(" not in sources and "eval(" not in sources and "for i" not in sources


def test_helpers_aliases_and_imports_from_any_cell_are_followed():
    code = graded("def softmax(x, dim=-1):\n    return helper(x, dim)",
                  "lse = torch.logsumexp\ndef helper(x, d):\n    return torch.exp(x - lse(x, d, keepdim=True))")
    assert {"torch.logsumexp", "torch.exp"} <= code.reach("softmax").paths


def test_a_star_import_is_resolved():
    code = graded("def softmax(x, dim=-1):\n    return log_softmax(x, dim).exp()",
                  setup="import torch\nfrom torch.nn.functional import *")
    assert "torch.nn.functional.log_softmax" in code.reach("softmax").paths


def test_a_statement_sharing_a_line_with_a_definition_is_left_out():
    code = graded("answer_helper = 3; eval('1')\ndef softmax(x, dim=-1):\n    return x * answer_helper")
    assert all("eval" not in u.source for u in code.units)


def test_a_syntax_error_in_the_cell_says_where():
    assert "syntax error at line 2" in graded("def softmax(x):\n    return (").excluded["softmax"]


def test_a_notebook_with_too_much_code_is_not_analysed_past_the_limit():
    code = graded("x = 1\n" * (MAX_SOURCE_CHARS // 6 + 10))
    assert "characters of code" in code.excluded["softmax"]


def test_a_name_the_solution_cell_defines_is_part_of_the_contract_even_if_the_stub_raises():
    assert contract_names("# YOUR CODE HERE\nraise NotImplementedError()") == []
    cells = [nbformat.v4.new_code_cell("answer = 'C'")]
    cells[0].metadata["nbgrader"] = {"grade_id": "answer", "solution": True}
    assert extract(cells, {"answer": []}).contract == {"answer": "answer"}


def test_graded_code_runs_without_the_builtins_that_run_strings_or_open_files():
    builtins = graded_builtins()
    assert not {"eval", "exec", "compile", "open", "globals", "vars", "__import__", "breakpoint"} & set(builtins)
    assert {"print", "len", "range", "isinstance", "getattr", "super"} <= set(builtins)
    assert import_allowed("torch.nn.functional") and import_allowed("io")
    assert not import_allowed("dlvision.grading") and not import_allowed("subprocess")
    assert not import_allowed("importlib.util") and not import_allowed("ctypes")


class StaticStudent:
    """What expect_implemented_without needs of a student, from graded code alone (no kernel)."""

    def __init__(self, code):
        self.code = code

    def reach(self, name):
        return self.code.reach(name)

    def not_graded(self, name):
        return self.code.excluded.get(name)


@pytest.mark.parametrize("solution, found", [
    ("def softmax(x, dim=-1):\n    return F.softmax(x, dim)", "torch.nn.functional.softmax"),
    ("def softmax(x, dim=-1):\n    return x.softmax(dim)", "softmax"),
    ("s = torch.softmax\ndef softmax(x, dim=-1):\n    return s(x, dim)", "torch.softmax"),
    ("def h(x, d):\n    return torch.special.softmax(x, d)\ndef softmax(x, dim=-1):\n    return h(x, dim)",
     "torch.special.softmax"),
    ("def softmax(x, dim=-1):\n    from torch import softmax as s\n    return s(x, dim)", "torch.softmax"),
    ("class S:\n    def f(self, x):\n        return torch.nn.functional.softmax(x, -1)\n"
     "def softmax(x, dim=-1):\n    return S().f(x)", "torch.nn.functional.softmax"),
])
def test_a_forbidden_call_is_found_wherever_the_code_hides_it(solution, found):
    with pytest.raises(AssertionError, match=f"softmax uses {found}"):
        expect_implemented_without(StaticStudent(graded(solution)), "softmax",
                                   ["torch.softmax", "torch.nn.functional", "torch.special"], attributes={"softmax"})


def test_an_implementation_with_tensor_operations_passes_the_off_limits_check():
    expect_implemented_without(StaticStudent(graded(HONEST["plain"])), "softmax",
                               ["torch.softmax", "torch.nn.functional", "torch.special"], attributes={"softmax"})
