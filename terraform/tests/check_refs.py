#!/usr/bin/env python3
"""Static reference checks for Fjord's terraform, without terraform.

Providers cannot be downloaded where this runs, so `terraform validate` is out
of reach. This script parses every module with python-hcl2 and checks what
validate would catch about the wiring between modules:

  * every variable has a description and a type; every output a description
    and a value;
  * every `var.X` a module references is declared in that module, and every
    declared variable is used somewhere outside its own declaration;
  * every `local.X` a module references is defined in its locals;
  * every argument of a `module "..." {}` block is a variable of the child
    module, and every child variable without a default is passed;
  * every `module.X.Y` reference names a module block of the same module and
    an output of that child;
  * every templatefile() call points at an existing file, passes every name
    the template uses, and uses every name it passes.

Usage: check_refs.py [TERRAFORM_DIR]   (default: the directory above tests/)
Exit status 0 when everything holds, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("check_refs.py: python-hcl2 is not installed (run scripts/install-infra-tools.sh)")

META_ARGS = {"source", "version", "providers", "depends_on", "count", "for_each"}
IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
VAR_RE = re.compile(rf"(?<![\w.])var\.({IDENT})")
LOCAL_RE = re.compile(rf"(?<![\w.])local\.({IDENT})")
MODULE_RE = re.compile(rf"(?<![\w.])module\.({IDENT})(?:\[[^\]]*\])?(?:\.({IDENT}))?")


def unquote(label: str) -> str:
    """python-hcl2 8 keeps the quotes of labels and string literals."""
    if len(label) >= 2 and label[0] == label[-1] == '"':
        return label[1:-1]
    return label


def strings_in(value, out: list[str]) -> list[str]:
    """Every string (expression text) inside a parsed value, keys included."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k.startswith("__") and k.endswith("__"):
                continue  # __is_block__, __comments__ (comments are not code)
            out.append(k)
            strings_in(v, out)
    elif isinstance(value, list):
        for v in value:
            strings_in(v, out)
    return out


@dataclass
class Module:
    path: Path
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    locals: set[str] = field(default_factory=set)
    modules: dict[str, dict] = field(default_factory=dict)
    # expression text outside variable declarations, per file
    code: list[tuple[Path, str]] = field(default_factory=list)
    # expression text inside variable declarations (validation conditions)
    declarations: list[tuple[Path, str]] = field(default_factory=list)


def load_module(path: Path, problems: list[str]) -> Module:
    mod = Module(path)
    for tf in sorted(path.glob("*.tf")):
        try:
            with tf.open() as fh:
                doc = hcl2.load(fh)
        except Exception as exc:  # python-hcl2 raises lark errors of many kinds
            problems.append(f"{tf}: does not parse: {exc}")
            continue
        for block_type, blocks in doc.items():
            for block in blocks:
                if block_type == "variable":
                    for name, body in block.items():
                        name = unquote(name)
                        if name in mod.variables:
                            problems.append(f"{tf}: variable {name!r} declared twice")
                        mod.variables[name] = body
                        mod.declarations.append((tf, "\n".join(strings_in(body, []))))
                    continue
                if block_type == "output":
                    for name, body in block.items():
                        mod.outputs[unquote(name)] = body
                elif block_type == "locals":
                    mod.locals.update(k for k in block if not k.startswith("__"))
                elif block_type == "module":
                    for name, body in block.items():
                        mod.modules[unquote(name)] = body
                mod.code.append((tf, "\n".join(strings_in(block, []))))
    return mod


def check_declarations(mod: Module, problems: list[str]) -> None:
    for name, body in mod.variables.items():
        for attr in ("description", "type"):
            if attr not in body:
                problems.append(f"{mod.path}: variable {name!r} has no {attr}")
        if "description" in body and not unquote(str(body["description"])).strip():
            problems.append(f"{mod.path}: variable {name!r} has an empty description")
    for name, body in mod.outputs.items():
        for attr in ("description", "value"):
            if attr not in body:
                problems.append(f"{mod.path}: output {name!r} has no {attr}")


def check_references(mod: Module, problems: list[str]) -> None:
    used_vars: set[str] = set()
    for tf, text in mod.code:
        for name in sorted(set(VAR_RE.findall(text))):
            used_vars.add(name)
            if name not in mod.variables:
                problems.append(f"{tf}: var.{name} is not declared in {mod.path}")
        for name in sorted(set(LOCAL_RE.findall(text))):
            if name not in mod.locals:
                problems.append(f"{tf}: local.{name} is not defined in {mod.path}")
    for tf, text in mod.declarations:
        # A validation may only refer to its own variable (before terraform 1.9).
        for name in sorted(set(VAR_RE.findall(text))):
            if name not in mod.variables:
                problems.append(f"{tf}: var.{name} is not declared in {mod.path}")
    for name in sorted(set(mod.variables) - used_vars):
        problems.append(f"{mod.path}: variable {name!r} is declared but never used")


def check_module_calls(mod: Module, modules: dict[Path, Module], problems: list[str]) -> None:
    for call, body in mod.modules.items():
        source = unquote(str(body.get("source", "")))
        if not source.startswith(("./", "../")):
            continue  # registry or remote module: nothing local to compare with
        child_path = (mod.path / source).resolve()
        child = modules.get(child_path)
        if child is None:
            problems.append(f"{mod.path}: module {call!r}: source {source!r} is not a module directory")
            continue
        passed = {k for k in body if k not in META_ARGS and not k.startswith("__")}
        for arg in sorted(passed - set(child.variables)):
            problems.append(f"{mod.path}: module {call!r} passes {arg!r}, which {source} does not declare")
        for var, vbody in sorted(child.variables.items()):
            if "default" not in vbody and var not in passed:
                problems.append(f"{mod.path}: module {call!r} does not pass {var!r}, which {source} requires (no default)")

    for tf, text in mod.code:
        for call, output in MODULE_RE.findall(text):
            if call not in mod.modules:
                problems.append(f"{tf}: module.{call} is not a module block of {mod.path}")
                continue
            if not output:
                continue
            source = unquote(str(mod.modules[call].get("source", "")))
            child = modules.get((mod.path / source).resolve())
            if child is not None and output not in child.outputs:
                problems.append(f"{tf}: module.{call}.{output}: {source} has no output {output!r}")


# --- templatefile() ------------------------------------------------------------

TEMPLATEFILE_RE = re.compile(r'templatefile\(\s*"\$\{path\.module\}/([^"]+)"\s*,\s*\{')
TEMPLATE_KEYWORDS = {"for", "in", "if", "else", "endif", "endfor", "true", "false", "null"}


def object_keys(text: str, start: int) -> tuple[set[str], int]:
    """Top-level keys of the HCL object literal whose '{' is at text[start]."""
    depth, i, keys = 0, start, set()
    line_start = True
    while i < len(text):
        ch = text[i]
        if ch == '"':  # skip a string, with ${...} inside it
            j, nest = i + 1, 0
            while j < len(text):
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith("${", j):
                    nest += 1
                    j += 2
                    continue
                if text[j] == "}" and nest:
                    nest -= 1
                elif text[j] == '"' and not nest:
                    break
                j += 1
            i = j + 1
            line_start = False
            continue
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
            if depth == 0:
                return keys, i
        elif ch == "\n":
            line_start = True
            i += 1
            continue
        if depth == 1 and line_start and not ch.isspace():
            m = re.match(rf"({IDENT})\s*=(?!=)", text[i:])
            if m:
                keys.add(m.group(1))
        if not ch.isspace():
            line_start = False
        i += 1
    return keys, i


def template_names(template: str) -> set[str]:
    """Top-level names a template's ${...} and %{...} sequences read."""
    names: set[str] = set()
    bound: set[str] = set()
    for m in re.finditer(r"(?<![$%])[$%]\{~?(.*?)~?\}", template, re.S):
        expr = m.group(1)
        for_m = re.match(rf"\s*for\s+({IDENT})(?:\s*,\s*({IDENT}))?\s+in\b", expr)
        if for_m:
            bound.update(n for n in for_m.groups() if n)
        expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals are not names
        for tok in re.finditer(rf"(?<![\w.]){IDENT}(?![\w-])(?!\s*\()", expr):
            names.add(tok.group(0))
    return names - bound - TEMPLATE_KEYWORDS


def check_templatefiles(mod: Module, problems: list[str]) -> None:
    for tf in sorted(mod.path.glob("*.tf")):
        text = tf.read_text()
        for m in TEMPLATEFILE_RE.finditer(text):
            rel = m.group(1)
            template_path = (mod.path / rel).resolve()
            passed, _ = object_keys(text, m.end() - 1)
            if not template_path.is_file():
                problems.append(f"{tf}: templatefile() reads {rel}, which does not exist")
                continue
            used = template_names(template_path.read_text())
            for name in sorted(used - passed):
                problems.append(f"{tf}: template {rel} uses {name!r}, which templatefile() does not pass")
            for name in sorted(passed - used):
                problems.append(f"{tf}: templatefile() passes {name!r}, which template {rel} never uses")


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    root = root.resolve()
    problems: list[str] = []

    dirs = [root] + sorted(p.parent for p in root.glob("modules/*/*.tf"))
    modules: dict[Path, Module] = {}
    for d in dict.fromkeys(dirs):
        modules[d.resolve()] = load_module(d.resolve(), problems)
    if not any(m.variables for m in modules.values()):
        problems.append(f"{root}: found no variables at all; is this the terraform directory?")

    for mod in modules.values():
        check_declarations(mod, problems)
        check_references(mod, problems)
        check_module_calls(mod, modules, problems)
        check_templatefiles(mod, problems)

    problems = list(dict.fromkeys(problems))  # one line per problem and file
    for p in problems:
        print(f"check_refs: {p}")
    counted = sum(len(m.variables) for m in modules.values())
    if problems:
        print(f"check_refs: FAILED: {len(problems)} problem(s) in {len(modules)} modules")
        return 1
    print(f"check_refs: ok: {len(modules)} modules, {counted} variables, "
          f"{sum(len(m.modules) for m in modules.values())} module calls")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
