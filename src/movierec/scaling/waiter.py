"""Run one command and write its own resource usage to a JSON file, then exit with its status.

Run by path (``python waiter.py REPORT COMMAND...``), never imported: it is the small process
between a large parent and the measured command. Linux carries a process's peak resident set
across ``exec``, so a command forked straight from a parent holding 1.5 GB reports at least
1.5 GB as its own ``ru_maxrss``; forked from this process (a few MB, standard library only), the
kernel's figure is the command's.
"""

import json
import os
import sys


def main(argv: list[str]) -> int:
    """Fork and exec ``argv[1:]``, wait for it, write its rusage to ``argv[0]``; its exit code."""
    report, command = argv[0], argv[1:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        except OSError as error:
            print(f"cannot run {command[0]!r}: {error}", file=sys.stderr)
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(report, "w", encoding="utf-8") as out:
        json.dump({"maxrss_kb": usage.ru_maxrss, "user_s": usage.ru_utime, "system_s": usage.ru_stime}, out)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: waiter.py REPORT COMMAND [ARG...]")
    sys.exit(main(sys.argv[1:]))
