"""README's "Signing with a third-party RFC 9421 client" snippet, run verbatim against the
served example (one source: edit it in README.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT

SNIPPET = re.search(r"<!-- third-party-client[^\n]*-->\n```python\n(.*?)```",
                    (ROOT / "README.md").read_text(), re.S).group(1)


def test_readme_third_party_client_snippet_gets_200_from_the_served_example(flagship):
    partner = flagship.partner("Acme via requests-http-signature", scopes="items:read")
    env = dict(os.environ, API=f"http://127.0.0.1:{flagship.port}", ACCESS_TOKEN=partner["access_token"],
               REQUEST_TOKEN=partner["request_token"], KEY_ID=partner["keyid"],
               SIGNING_KEY=partner["signing_key"])
    result = subprocess.run([sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200 Widget"


def test_the_snippet_uses_the_librarys_default_components():
    assert "covered_component_ids" not in SNIPPET and "use_nonce=True" in SNIPPET
    assert "base64.b64decode" in SNIPPET  # the key is base64 of the raw HMAC key
