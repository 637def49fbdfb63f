"""What importing wsgisec costs: partners install only ``wsgisec[partner]``, so the
client side must load none of the server's dependencies, and ``import wsgisec`` itself
loads nothing heavy (the layer classes are re-exported lazily, PEP 562)."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

SERVER_ONLY = ("webob", "passlib", "argon2", "fastjsonschema", "paste.deploy", "defusedxml", "markupsafe")


def _modules_after(statement):
    code = f"import sys\n{statement}\nimport json; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("statement", ["import wsgisec", "import wsgisec.partner"])
def test_client_side_imports_load_no_server_dependency(statement):
    loaded = _modules_after(statement)
    assert not [name for name in SERVER_ONLY if name in loaded]


def test_layer_classes_are_still_importable_from_the_package():
    import wsgisec

    for name in wsgisec.__all__:
        assert getattr(wsgisec, name).__name__ == name
    with pytest.raises(AttributeError):
        wsgisec.NoSuchLayer  # noqa: B018


def test_lazy_export_names_the_real_class():
    from wsgisec import BrowserCSRF, TokenAuth
    from wsgisec.signed_requests.csrf import BrowserCSRF as csrf_class
    from wsgisec.token_auth import TokenAuth as token_auth_class

    assert BrowserCSRF is csrf_class and TokenAuth is token_auth_class


PRACTICES = ("token_auth", "signed_requests", "whitelist", "escaping", "reports")


def _imported_practices(path, own):
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = "wsgisec." + ".".join(path.relative_to(ROOT / "wsgisec").with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + "."  # relative imports start in the package
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if len(parts) > 1 and parts[0] == "wsgisec" and parts[1] in PRACTICES and parts[1] != own:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("practice", PRACTICES)
def test_no_practice_package_imports_another(practice):
    """Each practice stands alone on the shared layer (settings, events, store, wsgi ...)."""
    package = ROOT / "wsgisec" / practice
    if not package.is_dir():
        pytest.skip(f"wsgisec/{practice}/ does not exist yet")
    crossing = {str(path.relative_to(ROOT)): sorted(_imported_practices(path, practice))
                for path in package.rglob("*.py")}
    assert not {path: names for path, names in crossing.items() if names}
