"""The README's shell commands, read from its fenced code blocks and run as a user runs them.

:func:`shell_blocks` parses ``README.md`` (CommonMark fences: a block opened by a line of three or more backticks or
tildes ends at a line of at least as many of the same; a block never closed is an error, since everything after it
would render as code). :func:`commands` splits a block into commands: continuation lines joined, comments dropped,
``a && b`` split in two. :class:`Runner` runs them in order in one working directory, where a command may read what an
earlier one wrote; see ``tests/test_readme_commands.py`` for the rules that make them small.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence
from tests.support import ROOT

README = os.path.join(ROOT, "README.md")
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


@dataclasses.dataclass
class Block:
    """A fenced shell block: its first line in the README (1-based), the heading it sits under, its commands."""

    line: int
    section: str
    commands: List[List[str]]

    @property
    def name(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"L{self.line}-{slug}"


def fenced_blocks(text: str):
    """``[(first line, info string, body, section heading)]`` of every fenced code block of a Markdown text.

    Raises:
      ValueError: a fence that is never closed, or not before the next opening fence (names its line).
    """
    out, section = [], ""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            if lines[i].startswith("#"):
                section = lines[i].lstrip("#").strip()
            i += 1
            continue
        fence, info = m.group(1), m.group(2).strip()
        start, body = i + 1, []
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if (close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence)
                    and not close.group(2).strip()):
                break
            if close and close.group(2).strip():
                # Legal inside a code block, but in a README it is the next block's opening fence: this one was
                # never closed, and everything up to here renders as code.
                raise ValueError(f"README.md:{start}: the code fence opened here is not closed before the fence "
                                 f"{lines[i].strip()!r} at line {i + 1}")
            body.append(lines[i])
            i += 1
        else:
            raise ValueError(f"README.md:{start}: the code fence opened here is never closed")
        out.append((start, info.split()[0] if info else "", "\n".join(body), section))
        i += 1
    return out


def _words(line: str) -> List[List[str]]:
    """One logical shell line -> its commands (``&&``-separated) as argument lists; quotes removed, a ``#``
    comment dropped. Only the quoting the README uses: single and double quotes, backslash escapes."""
    commands, words, word, quote, in_word = [], [], [], None, False
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"' and i + 1 < len(line):
                i += 1
                word.append(line[i])
            else:
                word.append(c)
        elif c in "'\"":
            quote, in_word = c, True
        elif c == "\\" and i + 1 < len(line):
            i += 1
            word.append(line[i])
            in_word = True
        elif c.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif c == "#" and not in_word:
            break
        elif line.startswith("&&", i) and not in_word:
            commands.append(words)
            words = []
            i += 1
        else:
            word.append(c)
            in_word = True
        i += 1
    if quote:
        raise ValueError(f"unclosed quote in {line!r}")
    if in_word:
        words.append("".join(word))
    commands.append(words)
    return [c for c in commands if c]


def commands(body: str) -> List[List[str]]:
    """The commands of a shell block, in order."""
    logical, out = "", []
    for raw in body.split("\n"):
        if raw.rstrip().endswith("\\") and not raw.lstrip().startswith("#"):
            logical += raw.rstrip()[:-1] + " "
            continue
        out += _words(logical + raw)
        logical = ""
    if logical:
        out += _words(logical)
    return out


def shell_blocks(path: str = README) -> List[Block]:
    """The README's fenced shell blocks (``bash``, ``sh``, ``shell``, ``console``), in order."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [Block(line, section, commands(body)) for line, info, body, section in fenced_blocks(text)
            if info in SHELL_LANGUAGES]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (the load-independent cost of a command)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CommandFailed(AssertionError):
    pass


class Runner:
    """Runs commands in ``work`` with the test environment's ``tfrec`` and ``python`` first on the PATH.

    Long-running servers (``tfrec serve``) start in the background and must print their "serving" line; they are
    stopped with SIGTERM by :meth:`stop_servers` and must then exit 0.
    """

    def __init__(self, work: str, log: Optional[List[str]] = None):
        self.work = work
        self.log = log if log is not None else []
        bindir = os.path.dirname(sys.executable)
        self.env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), TF_CPP_MIN_LOG_LEVEL="3",
                        PYTHONUNBUFFERED="1")
        self.servers: List[subprocess.Popen] = []

    def _expand(self, argv: Sequence[str]) -> List[str]:
        out = []
        for a in argv:  # the shell's glob expansion (a pattern that matches nothing stays as it is)
            matched = sorted(glob.glob(os.path.join(self.work, a))) if any(c in a for c in "*?[") else []
            out += [os.path.relpath(m, self.work) for m in matched] or [a]
        return out

    def run(self, argv: Sequence[str], timeout: float) -> str:
        argv = self._expand(argv)
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run(argv, cwd=self.work, env=self.env, capture_output=True, text=True, timeout=timeout)
        self.log.append(f"{time.perf_counter() - start:6.1f}s wall {_children_cpu() - cpu:6.1f}s cpu  "
                        f"{' '.join(argv)}")
        if proc.returncode != 0:
            raise CommandFailed(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                                f"{proc.stderr[-3000:]}")
        return proc.stdout

    def serve(self, argv: Sequence[str], timeout: float = 180.0) -> str:
        """Starts a server (its output to a log file in the working directory); returns its "serving ..." line."""
        argv = self._expand(argv)
        start = time.perf_counter()
        log_path = os.path.join(self.work, f".server-{len(self.servers)}.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(argv, cwd=self.work, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    text=True)
        self.servers.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(log_path) as f:
                text = f.read()
            serving = [line for line in text.splitlines() if line.startswith("serving ")]
            if serving:
                self.log.append(f"{time.perf_counter() - start:6.1f}s  {' '.join(argv)}  (background: {serving[0]})")
                return serving[0]
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        with open(log_path) as f:
            raise CommandFailed(f"`{' '.join(argv)}` printed no 'serving' line:\n{f.read()[-3000:]}")

    def stop_servers(self) -> None:
        errors = []
        for proc in self.servers:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = "killed after 60 s"
            if code != 0:
                errors.append(f"`{' '.join(proc.args)}` exited {code} on SIGTERM")
        self.servers = []
        if errors:
            raise CommandFailed("; ".join(errors))


def table(rows: Dict[str, str]) -> str:
    width = max(len(k) for k in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows.items())
