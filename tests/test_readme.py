"""README's first two commands are the ones CI and newcomers run."""

import re

from conftest import ROOT


def readme_commands():
    return re.findall(r"```(?:sh|bash|console)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_ci_runs_readmes_test_command_verbatim():
    serve, test = [block.strip() for block in readme_commands()[:2]]
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines(), "README's test command differs from what .ci/run runs"
    assert "wsgisec serve examples/partner_api.ini" in serve
