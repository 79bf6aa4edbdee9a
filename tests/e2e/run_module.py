#!/usr/bin/env python3
"""Runs one e2e test module for ctest: `python3 -m unittest` exits 0 when every test skipped,
so ctest would count a module that checked nothing (no root, no namespaces) as passed. This
runner prints how many tests ran, passed, skipped (each with its reason) and failed, and exits
77 (the tests' SKIP_RETURN_CODE) when tests ran and every one of them skipped.

usage: run_module.py MODULE   (from tests/e2e, as ctest runs it)
"""
import sys
import unittest

SKIPPED = 77


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    module = sys.argv[1]
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


if __name__ == "__main__":
    sys.exit(main())
