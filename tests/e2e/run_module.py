#!/usr/bin/env python3
"""Runs one e2e test module for ctest: `python3 -m unittest` exits 0 when every test skipped,
so ctest would count a module that checked nothing (no root, no namespaces) as passed. This
runner prints how many tests ran, passed, skipped (each with its reason) and failed, and exits
77 (the tests' SKIP_RETURN_CODE) when tests ran and every one of them skipped.

usage: run_module.py MODULE   (from tests/e2e, as ctest runs it)
"""
import os
import signal
import sys
import unittest

SKIPPED = 77


def children():
    """(pid, command line) of every process whose parent is this one."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            if parent != me:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                found.append((int(entry), cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()))
        except (OSError, IndexError, ValueError):
            continue
    return found


def stop_children(module, out):
    """A child left running after the tests (a daemon, a DNS server) may hold ctest's output
    pipe, and ctest waits for that pipe to close: the module would end in a ctest timeout long
    after its tests passed. Name and kill any such child."""
    for pid, command in children():
        print(f"{module}: a child outlived the tests, killed: {pid} {command}", file=out)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run(module):
    suite = unittest.defaultTestLoader.loadTestsFromName(module)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    skipped = len(result.skipped)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - skipped - failed
    sys.stdout.flush()
    out = sys.stderr   # where the runner reports each test
    print(f"{module}: {result.testsRun} ran, {passed} passed, {skipped} skipped, {failed} failed", file=out)
    for test, reason in result.skipped:
        print(f"{module}: skipped: {test.id()}: {reason}", file=out)
    if result.testsRun == 0:
        print(f"{module}: FAIL: no tests found", file=out)
        return 1
    if failed:
        return 1
    return SKIPPED if skipped == result.testsRun else 0


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    module = sys.argv[1]
    code = run(module)
    stop_children(module, sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter shutdown: it would wait on the tests' leftover threads, and the result is
    # already printed.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
