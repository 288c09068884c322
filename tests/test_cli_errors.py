"""The command line's refusals and errors as an operator meets them: one line naming what
is wrong (the address, the valid keys), exit code 1, no traceback; `--json` before or after
the command, with errors as JSON on stderr. Run as a real process, `python -m starter`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from starter.devserver import DevServer, free_port
from store.db import create_schema, make_engine

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def error(self) -> dict[str, Any]:
        """The JSON error object on stderr (and nothing else there, nothing on stdout)."""
        assert self.stdout == "", self
        body = json.loads(self.stderr)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, self
        error: dict[str, Any] = body["error"]
        return error

    def one_line(self) -> str:
        """stderr, asserted to be one line (no traceback, no wrapping)."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self
        assert "Traceback" not in self.stderr
        return lines[0]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any connection settings: a demo running on this
    machine must not be picked up (DEMO_DIR points at an empty folder)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TEMPORAL_") and k not in ("DATABASE_URL", "DEMO_DIR")
    }
    env["DEMO_DIR"] = str(tmp_path / "no-demo")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'store.db'}"
    env.update(extra)
    if env["DATABASE_URL"] == f"sqlite:///{tmp_path / 'store.db'}":
        engine = make_engine(env["DATABASE_URL"])
        create_schema(engine)  # the schema upgraded, as `python -m starter db upgrade` does
        engine.dispose()
    return env


def cli(env: dict[str, str], *args: str) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def test_temporal_unreachable_is_one_line_naming_the_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = environment(tmp_path, TEMPORAL_ADDRESS=address)
    run = cli(env, "show", "HO-2026-000123")
    assert run.returncode == 1 and run.stdout == "", run
    line = run.one_line()
    assert line.startswith(f"error: cannot reach Temporal at {address}: "), line
    for args in (
        ("--json", "show", "HO-2026-000123"),
        ("show", "HO-2026-000123", "--json"),
        ("list", "--sla", "amber", "--json"),
    ):
        run = cli(env, *args)
        assert run.returncode == 1, run
        error = run.error()
        assert error["code"] == "temporal_unreachable", run
        assert error["message"].startswith(f"cannot reach Temporal at {address}: "), run


def test_database_unreachable_names_it_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://casework:s3cr3t-pw@127.0.0.1:{free_port()}/casework"
    run = cli(environment(tmp_path, DATABASE_URL=url), "inbox", "adviser1")
    assert run.returncode == 1, run
    line = run.one_line()
    assert line.startswith(
        "error: cannot reach the database postgresql://casework:***@127.0.0.1:"
    ), line
    assert "s3cr3t-pw" not in run.stderr + run.stdout

    missing = tmp_path / "no" / "such" / "folder" / "store.db"
    run = cli(environment(tmp_path, DATABASE_URL=f"sqlite:///{missing}"), "inbox", "tl1", "--json")
    assert run.returncode == 1, run
    error = run.error()
    assert error["code"] == "database_unreachable"
    assert error["message"].startswith(f"cannot reach the database sqlite:///{missing}: ")


def test_json_works_before_and_after_the_command(tmp_path: Path) -> None:
    env = environment(tmp_path)
    assert cli(env, "config", "load", "config/demo").returncode == 0
    before = cli(env, "--json", "inbox", "tl1")
    after = cli(env, "inbox", "tl1", "--json")
    nested = cli(env, "config", "validate", "config/demo", "--json")
    assert before.returncode == after.returncode == nested.returncode == 0, (before, after)
    assert json.loads(before.stdout) == json.loads(after.stdout) == []
    assert json.loads(nested.stdout)["topics"] > 0
    table = cli(env, "inbox", "tl1")
    assert table.returncode == 0 and "Inbox of tl1" in table.stdout


def test_usage_errors_are_json_under_json(tmp_path: Path) -> None:
    env = environment(tmp_path)
    plain = cli(env, "reassign", "HO-1", "call-back", "--by", "tl1", "--to", "adviser1")
    assert plain.returncode == 2 and "user:KEY or role:KEY" in plain.stderr, plain
    for args in (
        ("--json", "reassign", "HO-1", "call-back", "--by", "tl1", "--to", "adviser1"),
        ("reassign", "HO-1", "call-back", "--by", "tl1", "--to", "adviser1", "--json"),
    ):
        run = cli(env, *args)
        assert run.returncode == 2, run
        error = run.error()
        assert error["code"] == "usage" and "user:KEY or role:KEY" in error["message"]


def test_a_list_filter_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    env = environment(tmp_path, TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    run = cli(env, "list", "--owner", "x' OR CaseStatus != 'none")
    assert run.returncode == 1, run
    assert run.one_line().startswith("error: not a valid key: --owner"), run
    assert cli(env, "--json", "list", "--topic", "a b").error()["code"] == "invalid_filter"


def test_raise_names_the_valid_topics_and_staff(tmp_path: Path) -> None:
    env = environment(tmp_path)
    assert cli(env, "config", "load", "config/demo").returncode == 0
    assert cli(env, "staff", "import", "config/demo/staff.csv").returncode == 0
    topic = cli(env, "raise", "--reference", "HO-1", "--topic", "no-such-topic", "--by", "tl1")
    assert topic.returncode == 1, topic
    line = topic.one_line()  # long, and still one line: stderr is not wrapped when piped
    assert len(line) > 80
    assert "unknown topic 'no-such-topic'" in line
    assert "topics in force today: asked-to-leave, domestic-abuse, homeless-tonight" in line
    user = cli(env, "--json", "raise", "--reference", "HO-1", "--topic", "domestic-abuse",
               "--by", "nobody")  # fmt: skip
    error = user.error()
    # The rule the case itself applies (domain.case_rules.check_raise), with the staff named.
    assert error["code"] == "unknown_actor"
    assert "'nobody'" in error["message"] and "active staff: adviser1, adviser2" in error["message"]
    prefixed = cli(env, "raise", "--reference", "case-HO-1", "--topic", "domestic-abuse",
                   "--by", "tl1")  # fmt: skip
    assert prefixed.returncode == 1 and "may not start with 'case-'" in prefixed.one_line()


@pytest.mark.parametrize("given", ["{ref}", "case-{ref}"])
def test_an_unknown_case_is_named(tmp_path: Path, dev_server: DevServer, given: str) -> None:
    ref = f"NOPE-{uuid.uuid4().hex[:8]}"
    env = environment(tmp_path, TEMPORAL_ADDRESS=dev_server.address)
    run = cli(env, "show", given.format(ref=ref))
    assert run.returncode == 1, run
    assert run.one_line() == f"error: no case {ref}: not found in namespace default"
    run = cli(env, "complete", given.format(ref=ref), "call-back", "--by", "tl1", "--json")
    assert run.error() == {
        "code": "not_found",
        "message": f"no case {ref}: not found in namespace default",
    }
