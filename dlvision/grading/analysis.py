"""Static analysis of a student's code, on the trusted side, from source: is it gradable, and what does it reach.

*Gradable* code is code whose behaviour can be judged by calling it: it may not run code built at run time
(``eval``, ``exec``, ``__import__``), look at frames, globals or builtins, use private or most dunder
attributes, change a library (``torch.exp = ...``), or use a module outside :data:`ALLOWED_MODULES` (or the
parts of them in :data:`DENIED`, which load pickles, compile code or register operators). Code that is not
gradable is not loaded into the grading kernel at all, so it can neither run there nor reach the harness.

*Reach* is everything a unit of code touches: the library objects it names, resolved through imports and
aliases to dotted paths (``F.relu`` is ``torch.nn.functional.relu``), the attribute names it uses on other
objects (``x.softmax``), and the global names it uses (helpers, classes, constants), which the caller follows
transitively. Off-limits rules are checked against it.
"""
from __future__ import annotations

import ast
import builtins
import functools
import importlib
import inspect
from dataclasses import dataclass, field

#: Modules (and their submodules) graded code may use.
ALLOWED_MODULES = ("torch", "torchvision", "numpy", "math", "cmath", "functools", "itertools", "collections",
                   "typing", "dataclasses", "abc", "enum", "numbers", "operator", "random", "statistics", "string",
                   "copy", "heapq", "bisect", "warnings", "time", "fractions", "decimal", "matplotlib",
                   "dlvision", "dlvision.checks", "dlvision.data", "dlvision.plots", "__future__")

#: Parts of the allowed modules that graded code may not use: they load pickles or native code, compile or
#: evaluate code from strings, register operators, or reach the grading harness.
DENIED = ("torch.library", "torch.ops", "torch.overrides", "torch.utils.cpp_extension", "torch.utils.benchmark",
          "torch.hub", "torch.package", "torch.multiprocessing", "torch.distributed", "torch.serialization",
          "torch.load", "torch.jit.load", "torch.fx", "torch.export", "torch.compile", "torch.compiler",
          "torch.onnx", "torch.classes", "torch.utils.data.datapipes",
          "numpy.load", "numpy.ctypeslib", "numpy.lib.format", "numpy.lib.npyio", "numpy.lib.utils", "numpy.f2py",
          "numpy.distutils", "numpy.testing", "numpy.fromfile", "numpy.memmap", "numpy.core", "torch.from_file", "operator.attrgetter", "operator.methodcaller",
          "typing.get_type_hints", "typing.ForwardRef", "dataclasses.make_dataclass", "dlvision.grading")

#: Modules of which graded code may use only these parts (a trailing ".*" admits everything below a part):
#: printing and number limits from sys, path arithmetic from os. Not files (``/proc/self/mem`` is a file).
LIMITED_MODULES = {
    "sys": ("sys.stdout", "sys.stderr", "sys.stdout.write", "sys.stderr.write", "sys.stdout.flush",
            "sys.stderr.flush", "sys.float_info.*", "sys.maxsize", "sys.version_info.*", "sys.byteorder",
            "sys.getrecursionlimit"),
    "os": ("os.sep", "os.getcwd", "os.listdir", "os.makedirs", "os.path", "os.path.join", "os.path.exists",
           "os.path.isfile", "os.path.isdir", "os.path.basename", "os.path.dirname", "os.path.splitext",
           "os.path.split", "os.path.abspath", "os.path.normpath"),
}

#: Builtins that run code from strings or expose namespaces, files or the interpreter.
DANGEROUS_BUILTINS = {"eval", "exec", "compile", "__import__", "globals", "locals", "vars", "open", "input",
                      "breakpoint", "help", "exit", "quit", "memoryview", "getattr", "setattr", "delattr"}

#: Dunder attributes graded code may use: construction, calls and the everyday protocol methods.
ALLOWED_DUNDERS = {"__init__", "__call__", "__class__", "__name__", "__qualname__", "__doc__", "__dict__", "__len__",
                   "__iter__", "__next__", "__getitem__", "__setitem__", "__contains__", "__repr__", "__str__",
                   "__enter__", "__exit__", "__add__", "__sub__", "__mul__", "__matmul__", "__truediv__", "__neg__",
                   "__eq__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__", "__float__", "__int__"}

#: Bare dunder names graded code may use.
ALLOWED_DUNDER_NAMES = {"__name__", "__class__", "__doc__", "__debug__"}

#: Attributes of frames, code objects, generators and tracebacks: introspection that reaches other code's globals.
FRAME_ATTRIBUTES = {"f_globals", "f_locals", "f_back", "f_builtins", "f_code", "f_trace", "f_lasti", "gi_frame",
                    "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "tb_frame",
                    "tb_next", "co_code", "co_consts", "co_names", "func_globals"}

_BUILTIN_NAMES = set(dir(builtins))


def graded_builtins() -> list[str]:
    """The builtins the graded code runs with in the grading kernel: Python's own, less those that run code from
    strings or open files (``__import__`` is replaced there by one that imports allowed modules only)."""
    removed = DANGEROUS_BUILTINS - {"getattr", "setattr", "delattr"} | {"copyright", "credits", "license"}
    return sorted(n for n in _BUILTIN_NAMES if n not in removed)


#: Modules no import from a graded-code frame may load at run time, whoever asks (library C code importing
#: through the caller's builtins included): they start processes, load code, or see the interpreter and harness.
RUNTIME_DENIED = ("subprocess", "importlib", "ctypes", "builtins", "gc", "inspect", "socket", "pickle", "marshal",
                  "IPython", "ipykernel", "jupyter_client", "zmq", "dlvision.grading", "pty", "signal",
                  "multiprocessing", "threading", "_thread", "code", "codeop", "runpy", "mmap", "resource", "posix",
                  "_posixsubprocess", "shutil", "tempfile", "sysconfig", "site", "pdb", "traceback")


def import_allowed(name: str) -> bool:
    """True if an import from graded code's frames may load module ``name`` at run time. The analysis decides
    which modules the student's own code may import (:func:`module_allowed`); this second line only keeps out
    the modules of :data:`RUNTIME_DENIED`, so that library code importing what it needs still works."""
    return not any(name == d or name.startswith(d + ".") for d in RUNTIME_DENIED)


@dataclass(frozen=True)
class Problem:
    """Why a piece of code is not gradable: what it uses, and the line (1-based, within its cell)."""

    line: int
    what: str


@dataclass
class Facts:
    """What one top-level statement uses."""

    globals_used: set[str] = field(default_factory=set)   # global names it reads (helpers, classes, constants)
    paths: set[str] = field(default_factory=set)          # library objects, as resolved dotted paths
    attributes: set[str] = field(default_factory=set)     # attribute names used on any object
    problems: list[Problem] = field(default_factory=list)


def module_allowed(name: str) -> bool:
    """True for an allowed module or submodule that is not (in) a denied part."""
    allowed = any(name == m or name.startswith(m + ".") for m in ALLOWED_MODULES if m != "dlvision") \
        or name == "dlvision"
    return allowed and not denied(name)


def denied(path: str) -> bool:
    return any(path == d or path.startswith(d + ".") for d in DENIED)


def import_bindings(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """``{bound name: dotted path}`` for an import statement; a star import binds ``"*"`` to its module."""
    if isinstance(node, ast.Import):
        return {(a.asname or a.name.split(".")[0]): (a.name if a.asname else a.name.split(".")[0]) for a in node.names}
    module = "." * node.level + (node.module or "")
    return {("*" if a.name == "*" else a.asname or a.name): (module if a.name == "*" else f"{module}.{a.name}")
            for a in node.names}


@functools.lru_cache(maxsize=4096)
def check_path(path: str) -> str | None:
    """Why graded code may not use the library object at ``path`` (resolved here, step by step), or None."""
    parts = path.split(".")
    if path.startswith(".") or not parts[0]:
        return f"a relative import ({path})"
    if parts[0] in LIMITED_MODULES:
        allowed = LIMITED_MODULES[parts[0]]
        if path == parts[0] or path in allowed or any(a.endswith(".*") and (path + ".").startswith(a[:-1])
                                                     for a in allowed):
            return None
        return f"{path}, which graded code may not use"
    if not module_allowed(parts[0]):
        return f"the module {parts[0]}, which graded code may not use"
    try:
        obj = importlib.import_module(parts[0])
    except ImportError:
        return f"the module {parts[0]}, which is not installed"
    name = parts[0]
    for part in parts[1:]:
        if part.startswith("_"):
            return f"{name}.{part}, a private part of a library"
        name = f"{name}.{part}"
        if denied(name):
            return f"{name}, which graded code may not use"
        try:
            obj = getattr(obj, part)
        except AttributeError:
            if inspect.ismodule(obj) and module_allowed(name):
                try:
                    obj = importlib.import_module(name)
                    continue
                except ImportError:
                    pass
            return None  # no such attribute: the code fails when it runs, which costs only its own points
        if inspect.ismodule(obj) and not module_allowed(obj.__name__):
            return f"{name} (the module {obj.__name__}), which graded code may not use"
        if _is_denied_object(obj):
            return f"{name}, which graded code may not use"
    return None


def _is_denied_object(obj) -> bool:
    """True if ``obj`` is one of the denied functions under another name (``torch.nn.functional.torch.load``)."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return isinstance(module, str) and isinstance(qualname, str) and (denied(module) or denied(f"{module}.{qualname}"))


@functools.lru_cache(maxsize=4096)
def resolve(path: str):
    """The object at dotted ``path`` in an allowed module, or None (for identity comparisons of off-limits names)."""
    if check_path(path) is not None:
        return None
    parts = path.split(".")
    try:
        obj = importlib.import_module(parts[0])
        for i, part in enumerate(parts[1:], 1):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                obj = importlib.import_module(".".join(parts[:i + 1]))
        return obj
    except (ImportError, AttributeError):
        return None


def analyse(node: ast.stmt, module_imports: dict[str, str], ambiguous: set[str], student_names: set[str]) -> Facts:
    """The facts of one top-level statement.

    ``module_imports``: global names bound only by imports, with their dotted paths (``"*"`` entries list the
    star-imported modules, separated by spaces); ``ambiguous``: global names bound by an import *and* something
    else (treated as unknown objects); ``student_names``: every global name the student binds otherwise.
    """
    walker = _Walker(module_imports, ambiguous, student_names)
    walker.visit_top(node)
    return walker.facts


class _Scope:
    def __init__(self, kind: str, local: set[str], imports: dict[str, str] | None = None):
        self.kind, self.local, self.imports = kind, local, imports or {}


class _Walker(ast.NodeVisitor):
    """Walks one top-level statement, tracking Python's scopes well enough to tell globals from locals."""

    def __init__(self, module_imports: dict[str, str], ambiguous: set[str], student_names: set[str]):
        self.module_imports = module_imports
        self.ambiguous = ambiguous
        self.student_names = student_names
        self.scopes: list[_Scope] = []
        self.facts = Facts()

    def problem(self, node: ast.AST, what: str) -> None:
        self.facts.problems.append(Problem(getattr(node, "lineno", 0), what))

    # --- scopes ---------------------------------------------------------------------------------------------

    def visit_top(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, path in import_bindings(node).items():
                for module in path.split() if name == "*" else [path]:
                    self._check_import(node, module, star=name == "*")
            return
        self.visit(node)

    def _check_import(self, node: ast.AST, path: str, star: bool = False) -> None:
        if path.startswith("__future__"):
            return
        why = check_path(path)
        root = path.split(".")[0]
        if why is None and not star and not (module_allowed(root) or root in LIMITED_MODULES):
            why = f"the module {path}"
        if why:
            self.problem(node, why)

    def _resolve_name(self, name: str) -> tuple[str, str | None]:
        """``("local" | "global" | "builtin", dotted path if it is a known import)``."""
        for scope in reversed(self.scopes):
            if scope is not self.scopes[-1] and scope.kind == "class":
                continue  # class bodies are not visible from the functions inside them
            if name in scope.imports:
                return "local", scope.imports[name]
            if name in scope.local:
                return "local", None
        if name in self.module_imports and name not in self.ambiguous:
            return "global", self.module_imports[name]
        if name in self.student_names or name in self.module_imports:
            return "global", None
        for module in self.module_imports.get("*", "").split():
            if name not in _BUILTIN_NAMES and resolve(module) is not None and hasattr(resolve(module), name):
                self.facts.globals_used.add("*")
                return "global", f"{module}.{name}"
        if name in _BUILTIN_NAMES:
            return "builtin", None
        return "global", None

    def _function(self, node, body: list[ast.AST], args: ast.arguments | None) -> None:
        for default in (args.defaults + [d for d in args.kw_defaults if d] if args else []):
            self.visit(default)
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        for annotation in _annotations(node):
            self.visit(annotation)
        local = _local_names(body) | _argument_names(args)
        self.scopes.append(_Scope("function", local))
        for stmt in body:
            self.visit(stmt)
        self.scopes.pop()

    def visit_FunctionDef(self, node):
        if self.scopes:
            self.scopes[-1].local.add(node.name)
        self._function(node, node.body, node.args)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._function(node, [node.body], node.args)

    def visit_ClassDef(self, node):
        if self.scopes:
            self.scopes[-1].local.add(node.name)
        for expr in node.bases + [k.value for k in node.keywords] + node.decorator_list:
            self.visit(expr)
        for stmt in node.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                for target in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]):
                    if isinstance(target, ast.Name) and target.id.startswith("__") and target.id.endswith("__") \
                            and target.id not in ("__slots__", "__doc__"):
                        self.problem(stmt, f"a class attribute named {target.id}")
        self.scopes.append(_Scope("class", _local_names(node.body)))
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    def visit_Import(self, node):
        self._local_import(node)

    visit_ImportFrom = visit_Import

    def _local_import(self, node):
        for name, path in import_bindings(node).items():
            if name == "*":
                self.problem(node, "a star import inside a function or class")
                continue
            self._check_import(node, path)
            if self.scopes:
                self.scopes[-1].imports[name] = path

    def visit_Global(self, node):
        for scope in self.scopes:
            scope.local -= set(node.names)

    # --- names and attributes -------------------------------------------------------------------------------

    def visit_Name(self, node):
        name = node.id
        if name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDER_NAMES:
            self.problem(node, f"the name {name}")
            return
        kind, path = self._resolve_name(name)
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            return  # binding a name of its own changes only the student's code
        if kind == "builtin":
            if name in DANGEROUS_BUILTINS:
                self.problem(node, f"the builtin {name}()")
            return
        if kind == "global":
            self.facts.globals_used.add(name)
        if path:
            self._use_path(node, path)

    def visit_Attribute(self, node):
        chain, base = _chain(node)
        for attr in chain:
            if attr.startswith("__") and attr.endswith("__") and attr not in ALLOWED_DUNDERS:
                self.problem(node, f"the attribute {attr}")
            if attr in FRAME_ATTRIBUTES:
                self.problem(node, f"the attribute {attr}")
        path = None
        if isinstance(base, ast.Name):
            kind, root = self._resolve_name(base.id)
            if root:  # an import, global or local: the whole chain is a library path
                path = ".".join([root, *chain])
                if kind == "global":
                    self.facts.globals_used.add(base.id)
                self._use_path(node, path)
            elif kind in ("global", "builtin"):
                self.visit(ast.Name(id=base.id, ctx=ast.Load(), lineno=node.lineno))
        else:
            self.visit(base)
        if path is None:
            self.facts.attributes.update(chain)  # attributes of an object of unknown type (x.softmax())
        if isinstance(node.ctx, (ast.Store, ast.Del)) and path:
            self.problem(node, f"changing {path}, part of a library")

    def visit_Subscript(self, node):
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            chain, base = _chain(node.value) if isinstance(node.value, ast.Attribute) else ([], node.value)
            if isinstance(base, ast.Name):
                kind, root = self._resolve_name(base.id)
                if root:
                    self.problem(node, f"changing {'.'.join([root, *chain])}, part of a library")
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("getattr", "setattr", "delattr", "hasattr") \
                and self._resolve_name(func.id)[0] == "builtin":
            self._attribute_call(node, func.id)
            return
        self.generic_visit(node)

    def _attribute_call(self, node: ast.Call, which: str) -> None:
        """getattr(obj, "name") is obj.name; a computed name is allowed on ``self`` only."""
        if len(node.args) < 2:
            self.problem(node, f"{which}() without an object and a name")
            return
        obj, name = node.args[0], node.args[1]
        for arg in node.args[2:] + [k.value for k in node.keywords]:
            self.visit(arg)
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            ctx = ast.Load() if which in ("getattr", "hasattr") else ast.Store()
            self.visit(ast.Attribute(value=obj, attr=name.value, ctx=ctx, lineno=node.lineno))
            return
        self.visit(name)
        if which == "hasattr" or (isinstance(obj, ast.Name) and obj.id == "self"):
            self.visit(obj)
            return
        self.problem(node, f"{which}() with a computed attribute name on something other than self")

    def _use_path(self, node: ast.AST, path: str) -> None:
        why = check_path(path)
        if why:
            self.problem(node, why)
        else:
            self.facts.paths.add(path)


def _chain(node: ast.Attribute) -> tuple[list[str], ast.AST]:
    """``a.b.c`` -> (["b", "c"], Name a)."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return list(reversed(attrs)), node


def _argument_names(args: ast.arguments | None) -> set[str]:
    if args is None:
        return set()
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a}
    return names


def _annotations(node) -> list[ast.AST]:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return []
    args = node.args
    found = [a.annotation for a in args.posonlyargs + args.args + args.kwonlyargs if a.annotation]
    found += [a.annotation for a in (args.vararg, args.kwarg) if a and a.annotation]
    return found + ([node.returns] if node.returns else [])


def _local_names(body: list[ast.AST]) -> set[str]:
    """Names a function or class body binds itself (not inside nested functions or classes), less ``global`` ones."""
    local, declared_global = set(), set()
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Global):
            declared_global |= set(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            local.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            local.add(node.name)
            stack.extend(node.decorator_list)
            continue
        elif isinstance(node, ast.Lambda):
            continue
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            local |= {n for n in import_bindings(node) if n != "*"}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            local.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            local.add(node.name)
        stack.extend(ast.iter_child_nodes(node))
    return local - declared_global
