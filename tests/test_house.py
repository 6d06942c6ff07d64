"""The house rules, checked on the source: the layers BUILD_NOTES.md lists, absl and flag text only
at the edge, one flag row per setting, and modules and functions of a readable size."""

from __future__ import annotations

import ast
import os
import re
import sys
from dataclasses import fields

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tf_style")
TOOLS = os.path.join(ROOT, "tools")
#: The command-line edge of the library: the only modules that may import absl or write flags.
EDGE = {"cli", "cli_flags"}
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60  # of code, docstring not counted; a longer one needs a "long because" comment


def library_modules() -> dict[str, ast.Module]:
    return {
        name[:-3]: ast.parse(open(os.path.join(PACKAGE, name)).read(), name)
        for name in sorted(os.listdir(PACKAGE))
        if name.endswith(".py")
    }


def tf_style_imports(tree: ast.Module) -> set[str]:
    """The tf_style modules a module imports anywhere in it (inside functions too)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tf_style":
                out |= {"__init__" if a.name.startswith("__") else a.name for a in node.names}
            elif node.module.startswith("tf_style."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("tf_style.")}
    return out


def documented_layers() -> list[list[str]]:
    """BUILD_NOTES.md's layer table, bottom layer first, each a list of modules in order."""
    text = open(os.path.join(ROOT, "BUILD_NOTES.md")).read()
    block = re.search(r"## Layers\n.*?```\n(.*?)```", text, re.S)
    assert block, "BUILD_NOTES.md has no '## Layers' section with a code block"
    layers = []
    for line in block.group(1).strip().splitlines():
        name, _, rest = line.partition(":")
        modules = rest.split(" — ")[0]
        layers.append([m.strip() for m in modules.split(",") if m.strip()])
    return layers[::-1]  # the notes list them top to bottom


def test_every_module_is_in_one_documented_layer():
    listed = [m for layer in documented_layers() for m in layer]
    assert sorted(listed) == sorted(library_modules()), "BUILD_NOTES.md's layers and tf_style/ disagree"
    assert len(listed) == len(set(listed))


def test_no_import_runs_up_the_layers():
    """A module imports only modules of the layers below it, or listed before it on its own line."""
    rank = {m: (i, j) for i, layer in enumerate(documented_layers()) for j, m in enumerate(layer)}
    wrong = [
        f"{module} imports {dep}"
        for module, tree in library_modules().items()
        for dep in sorted(tf_style_imports(tree))
        if dep in rank and rank[dep] >= rank[module]
    ]
    assert wrong == []


def test_the_layer_check_catches_an_upward_import(monkeypatch):
    """The check above is not vacuous: losses importing the api would be reported."""
    trees = library_modules()
    trees["losses"].body.append(ast.parse("from tf_style import api").body[0])
    monkeypatch.setattr(sys.modules[__name__], "library_modules", lambda: trees)
    with pytest.raises(AssertionError, match="losses imports api"):
        test_no_import_runs_up_the_layers()


def test_absl_only_at_the_edge():
    users = {m for m, tree in library_modules().items() if any(
        (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "absl" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "absl")
        for n in ast.walk(tree)
    )}
    assert users == EDGE


def string_literals(tree: ast.Module) -> list[tuple[int, str]]:
    """Every string constant but docstrings (f-strings' literal parts included)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_flag_text_in_library_modules():
    """The library names fields (errors.Field); only the edge writes them as --flags."""
    found = [
        f"tf_style/{module}.py:{line}: {text!r}"
        for module, tree in library_modules().items()
        if module not in EDGE
        for line, text in string_literals(tree)
        if re.search(r"(^|[\s(=])--[a-z]", text)
    ]
    assert found == []


def test_every_setting_has_exactly_one_flag_row_of_its_type():
    from tf_style.cli_flags import ROWS
    from tf_style.config import Config, RunOptions

    names = [row.field for row in ROWS]
    assert len(names) == len(set(names))
    assert set(names) == set(Config.field_names()) | set(RunOptions.field_names())
    kinds = {"int": "integer", "float": "float", "str": "string", "bool": "bool"}
    for cls in (Config, RunOptions):
        for field in fields(cls):
            row = next(r for r in ROWS if r.field == field.name)
            annotation = str(field.type)
            if row.kind == "enum":
                assert annotation == "str" and row.choices, field.name
            elif row.kind == "list":
                assert annotation.startswith("tuple["), field.name
            elif row.parse is None:
                assert kinds[annotation.split(" |")[0]] == row.kind, field.name


def code_lines(node: ast.AST) -> int:
    body = node.body
    first = body[1] if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(
        getattr(body[0], "value", None), ast.Constant) else body[0]
    return node.end_lineno - first.lineno + 1


@pytest.mark.parametrize("folder", [PACKAGE, TOOLS])
def test_modules_and_functions_stay_small(folder):
    too_long = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py"):
            continue
        source = open(os.path.join(folder, name)).read()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(node) > MAX_FUNCTION_LINES:
                if not any("long because" in line for line in lines[node.lineno - 1: node.end_lineno]):
                    too_long.append(f"{name}: {node.name}() has {code_lines(node)} lines of code")
    assert too_long == []


@pytest.mark.parametrize(
    "tool, present, absent",
    [
        # Every Config field a tool can honour is its flag, from the one table (new ones too).
        ("export_savedmodel.py", ["export_dir", "image_size", "scales", "tolerance", "style_size"],
         ["init", "normalize_vgg", "output_size", "max_seconds", "logdir"]),
        ("paper_figures.py", ["figure", "output_dir", "image_size", "scales", "normalize_vgg", "logdir"],
         ["init", "style_layers", "content_weight", "print_every"]),
        ("benchmark.py", ["what", "sizes", "budgets", "single_scale_budgets"], []),
        ("cc_loader_check.py", ["saved_model_dir", "cxx"], ["image_size"]),
    ],
)
def test_each_tool_s_help_lists_its_own_flags_and_exits_0(tool, present, absent):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, os.path.join(TOOLS, tool), "--help"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    listed = set(re.findall(r"^  --(?:\[no\])?(\w+):", proc.stdout, re.M))
    assert set(present) <= listed and not set(absent) & listed, listed
