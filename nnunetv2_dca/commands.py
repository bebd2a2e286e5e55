"""The one place that runs console scripts (nnU-Net's and ours) in a subprocess, for ``distill``, the demo and the
benchmark: the command echoed (with the environment variables worth showing), appended to a log, its output
streamed line by line, and on failure one error naming the command with the tail of its output."""

from __future__ import annotations

import collections
import shlex
import subprocess
import time
from typing import Callable, Deque, List, Mapping, Optional, Sequence, Type


def command_line(cmd: Sequence[str], env: Optional[Mapping[str, str]] = None, env_shown: Sequence[str] = ()) -> str:
    """The command as a shell line, prefixed by ``KEY=value`` for each variable of ``env_shown``."""
    prefix = " ".join(f"{k}={shlex.quote(str(env[k]))}" for k in env_shown) if env is not None else ""
    return (prefix + " " if prefix else "") + shlex.join(list(cmd))


def run_command(cmd: List[str], env: Optional[Mapping[str, str]] = None, *, log: Optional[str] = None,
                env_shown: Sequence[str] = (), echo: str = "$ ", passthrough: bool = False,
                on_line: Optional[Callable[[str], None]] = None,
                error: Type[Exception] = RuntimeError) -> float:
    """Run ``cmd`` and return its seconds; ``env=None`` inherits ours. By default its output (stdout and stderr
    merged) is captured line by line, each line handed to ``on_line`` (the benchmark's progress), and a non-zero exit
    raises ``error`` with the command and the last 4,000 characters of the output. ``passthrough``: the command
    writes to our own stdout and stderr as it goes (progress bars intact), and the error names only the command,
    since its output is already on screen."""
    line = command_line(cmd, env, env_shown)
    if log is not None:
        with open(log, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    print(f"{echo}{line}", flush=True)
    env = None if env is None else dict(env)
    t0 = time.perf_counter()
    if passthrough:
        returncode = subprocess.run(cmd, env=env).returncode
        if returncode != 0:
            raise error(f"command failed with exit code {returncode}: {line}")
        return time.perf_counter() - t0
    tail: Deque[str] = collections.deque(maxlen=200)
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        for out_line in proc.stdout:
            tail.append(out_line)
            if on_line is not None:
                on_line(out_line)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise error(f"command failed with exit code {proc.returncode}: {line}\n--- last output ---\n"
                    f"{''.join(tail)[-4000:]}")
    return seconds
