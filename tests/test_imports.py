"""What importing wsgisec costs: partners install only ``wsgisec[partner]``, so the
client side must load none of the server's dependencies, and ``import wsgisec`` itself
loads nothing heavy (the layer classes are re-exported lazily, PEP 562)."""

import json
import subprocess
import sys

import pytest

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
