"""Imports sit at the top of each module, so the layer contract (import-linter) sees every one.

The exceptions are named here with the reason each keeps start-up fast (figures: `python -c "import X"` on the
CI machine): a new import inside a function that is not on these lists fails this test.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "installer"

# Modules that import medai's own modules inside functions.
LAZY_MEDAI = {
    "cli/": "each command imports its library when it runs: `medai --help` loads 0.5 s of modules, every library "
            "module together 7 s (kubernetes alone 8 s cold)",
    "collect/uptodate.py": "the no-change `bundle build` answers before typer, pydantic and httpx are imported "
                           "(tests/collect/test_uptodate.py asserts it)",
}
# Third-party packages imported inside functions, anywhere.
LAZY_THIRD_PARTY = {
    "kubernetes": "8 s to import; only the steps that talk to a cluster need it",
    "sigstore": "1.6 s; keyless signing and verification only",
    "sigstore_models": "part of sigstore",
    "cyclonedx": "4.6 s (its JSON schema validator); SBOM validation only",
    "lark": "cyclonedx's license expression parser; SBOM validation only",
    "huggingface_hub": "models from the hub, on the connected side only",
    "ansible_runner": "only when a playbook runs",
    "ansible_collections": "optional: the build looks for installed collections and says which are missing",
    "pyhelm3": "0.7 s; only when helm runs",
    "par2": "optional wheel: its absence is reported as one line",
    "rich": "the progress display, only on a terminal",
    "httpx": "0.6 s; the no-change check imports it only when a tag must be asked",
    "httpcore": "a socket read size tweak, applied once a registry is used",
}


def _function_imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    out.append((node.lineno, node.module or ""))
                elif isinstance(node, ast.Import):
                    out += [(node.lineno, a.name) for a in node.names]
    return sorted(set(out))


def _allowed(rel: str, module: str) -> bool:
    top = module.split(".")[0]
    if top == "installer":
        return any(rel.startswith(prefix) if prefix.endswith("/") else rel == prefix for prefix in LAZY_MEDAI)
    return top in sys.stdlib_module_names or top in LAZY_THIRD_PARTY


def test_every_import_inside_a_function_is_on_the_named_lists():
    found = []
    for p in sorted(PACKAGE.rglob("*.py")):
        rel = p.relative_to(PACKAGE).as_posix()
        found += [f"installer/{rel}:{line}: {module}" for line, module in _function_imports(ast.parse(p.read_text()))
                  if not _allowed(rel, module)]
    assert found == []


def test_the_check_sees_an_import_inside_a_function():
    tree = ast.parse("def f():\n    from installer.deploy import install\n    import kubernetes\n")
    found = _function_imports(tree)
    assert found == [(2, "installer.deploy"), (3, "kubernetes")]
    assert not _allowed("deploy/install.py", "installer.deploy") and _allowed("cli/install.py", "installer.deploy")
    assert _allowed("deploy/x.py", "kubernetes") and not _allowed("deploy/x.py", "yaml")


def test_no_private_name_is_imported_from_another_module():
    found = []
    for p in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("installer"):
                found += [f"installer/{p.relative_to(PACKAGE).as_posix()}:{node.lineno}: {a.name}"
                          for a in node.names if a.name.startswith("_")]
    assert found == []
