"""The one subprocess runner (nnunetv2_dca.commands): echo, log, output per line, errors naming the command."""

from __future__ import annotations

import sys

import pytest

from nnunetv2_dca.commands import command_line, run_command

pytestmark = pytest.mark.slow  # starts processes
PY = [sys.executable, "-c"]


def test_captured_output_reaches_on_line_and_the_log(tmp_path, capsys):
    log, lines = tmp_path / "commands.sh", []
    seconds = run_command(PY + ["print('one'); print('two')"], {"A": "1"}, log=str(log), env_shown=["A"],
                          on_line=lines.append)
    assert seconds >= 0 and [x.strip() for x in lines] == ["one", "two"]
    assert log.read_text().startswith("A=1 ") and capsys.readouterr().out.startswith("$ A=1 ")


def test_a_failure_raises_the_given_error_with_the_command_and_the_output_tail():
    class StepError(RuntimeError):
        pass

    with pytest.raises(StepError, match=r"exit code 3: .*\n--- last output ---\n.*boom"):
        run_command(PY + ["import sys; print('boom'); sys.exit(3)"], error=StepError)


def test_passthrough_leaves_the_output_on_screen_and_the_error_one_line(capfd):
    with pytest.raises(RuntimeError) as e:
        run_command(PY + ["import sys; print('visible'); sys.exit(2)"], passthrough=True)
    assert "\n" not in str(e.value) and "exit code 2" in str(e.value)
    assert "visible" in capfd.readouterr().out


def test_command_line_quotes_like_a_shell():
    assert command_line(["echo", "a b"], {"X": "y z"}, ["X"]) == "X='y z' echo 'a b'"
