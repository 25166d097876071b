"""Run a command and record its wall time and its own peak RSS: `peak.py RESULT CMD...`.

`wait4`'s ru_maxrss of a child is not the child's alone on Linux: the process
that exec's the command starts as a copy of its parent (with subprocess, it
even shares the parent's memory until the exec), and the kernel counts that
memory's high-water mark into the child's peak. Spawned straight from the
benchmark, which holds the fake arXiv's 100,000 entries and more, every
command would seem to peak at the benchmark's size. This launcher is a small
process: the command is forked from it, so its peak starts from the
launcher's few MB, and what `wait4` reports is the command's own.

RESULT gets one line: `SECONDS MAXRSS_KIB EXIT_CODE`. The command inherits
stdin, stdout and stderr.
"""

import os
import sys
import time


def main() -> int:
    result, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as out:
        out.write(f"{seconds:.6f} {usage.ru_maxrss} {code}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
