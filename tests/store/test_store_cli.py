"""``wsgisec store init`` and the rule it exists for: the operator's other verbs never
create a store (issue 14: a `client disable` that made a fresh empty file answered "no
client", and the live client could not be revoked)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import EXAMPLES
from wsgisec.cli import main


def _copy(tmp_path):
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("var", "__pycache__", "*.sqlite*"))
    return str(copy / "partner_api.ini"), str(copy / "var" / "wsgisec.sqlite")


def test_operator_verbs_refuse_a_missing_store_and_create_nothing(tmp_path, capsys):
    ini, path = _copy(tmp_path)
    for verb in (["client", "list"], ["client", "disable", "c_0123456789abcdef"], ["reports", "list"],
                 ["token", "purge"]):
        assert main([*verb, "--config", ini]) == 2, verb
        err = capsys.readouterr().err
        assert f"sqlite store {path}: no such file; create it with `wsgisec store init" in err
        assert not os.path.exists(path)


def test_store_init_creates_the_store_once_then_the_verbs_work(tmp_path, capsys):
    ini, path = _copy(tmp_path)
    assert main(["store", "init", "--config", ini]) == 0
    assert capsys.readouterr().out == f"created {path}\n"
    assert main(["store", "init", "--config", ini]) == 0
    assert capsys.readouterr().out == f"{path}: exists, schema current\n"
    assert main(["client", "list", "--config", ini]) == 0


def test_a_deleted_store_is_not_recreated_by_client_disable(tmp_path, capsys):
    ini, path = _copy(tmp_path)
    assert main(["store", "init", "--config", ini]) == 0
    assert main(["client", "create", "--config", ini, "--name", "Acme", "--scope", "items:read"]) == 0
    capsys.readouterr()
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name):
            os.remove(name)
    # a new process, as an operator's command is (this one still has the file open)
    result = subprocess.run([sys.executable, "-m", "wsgisec.cli", "client", "disable", "c_0123456789abcdef",
                             "--config", ini], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no such file" in result.stderr and not os.path.exists(path)


def test_store_init_on_a_file_that_is_not_a_store_fails(tmp_path, capsys):
    ini, path = _copy(tmp_path)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as junk:
        junk.write(b"not a database" * 100)
    assert main(["store", "init", "--config", ini]) == 2
    assert f"sqlite store {path}:" in capsys.readouterr().err
