"""The command file between a verb and the `rollout run` that drives a rollout: one command
at a time, taken once, withdrawn only while no run has taken it."""

from __future__ import annotations

from pathlib import Path

from rollout.commands import Command, CommandBox
from rollout.engine import Abort, Promote


def test_a_command_is_taken_once_and_becomes_the_engines_event(tmp_path: Path) -> None:
    box = CommandBox(tmp_path, "default-iris")
    assert box.take() is None  # nothing posted
    assert box.post(Command("promote", "checked by hand", full=True))
    assert box.pending()
    assert not box.post(Command("abort", "too late"))  # one at a time: the first still waits
    taken = box.take()
    assert taken == Command("promote", "checked by hand", full=True)
    assert taken.event() == Promote(full=True, reason="checked by hand")
    assert box.take() is None and not box.pending()
    assert not box.withdraw()  # the run has it: its writer cannot take it back
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no draft or claim left behind


def test_a_withdrawn_command_is_never_taken(tmp_path: Path) -> None:
    box = CommandBox(tmp_path, "default-iris")
    assert box.post(Command("abort", "wrong model"))
    assert Command("abort", "wrong model").event() == Abort("wrong model")
    assert box.withdraw()
    assert box.take() is None


def test_a_command_file_no_verb_wrote_is_dropped_not_obeyed(tmp_path: Path) -> None:
    box = CommandBox(tmp_path, "default-iris")
    for text in ("not json", '{"verb": "delete", "reason": "x", "full": false}', "[]"):
        box.path.write_text(text)
        assert box.take() is None
        assert not box.path.exists()
