#!/usr/bin/env python3
"""Summarises a ctest run from its JUnit file (ctest --output-junit), for the end of
scripts/test: every skipped test with the reason it printed, the skipped cases inside tests
that passed (e2e modules run with some cases skipped), the failed tests, and one last line
counting what ran, passed, skipped and failed.

usage: ctest_report.py JUNIT_XML
"""
import re
import sys
import xml.etree.ElementTree as ElementTree

# How tests here say why they skip: "name: skipped: why", "SKIP: why", "skipped 'why'" (unittest).
SKIP_LINE = re.compile(r"\bskip(ped)?\b[:' ]", re.I)


def skip_reasons(output):
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reasons = [line for line in lines if SKIP_LINE.search(line)]
    # The per-module summary lines of tests/e2e/run_module.py repeat each case's reason.
    summary = [line for line in reasons if re.search(r": skipped: ", line)]
    return summary or reasons or lines[-1:] or ["(printed no reason)"]


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    try:
        suite = ElementTree.parse(sys.argv[1]).getroot()
    except (OSError, ElementTree.ParseError) as e:
        print(f"ctest_report: no results to summarise ({e})")
        return 1
    passed, skipped, failed, partly = [], [], [], []
    for case in suite.iter("testcase"):
        name, status = case.get("name"), case.get("status")
        output = case.findtext("system-out") or ""
        if status == "run":
            passed.append(name)
            inner = [line.strip() for line in output.splitlines() if re.search(r": skipped: ", line)]
            if inner:
                partly.append((name, inner))
        elif status in ("notrun", "disabled"):
            skipped.append((name, skip_reasons(output)))
        else:
            failed.append(name)
    print()
    if skipped:
        print(f"Skipped tests ({len(skipped)}), with the reason each printed:")
        for name, reasons in skipped:
            print(f"  {name}")
            for reason in reasons:
                print(f"      {reason}")
    if partly:
        print(f"Passed tests with skipped cases ({len(partly)}):")
        for name, reasons in partly:
            print(f"  {name}")
            for reason in reasons:
                print(f"      {reason}")
    if failed:
        print(f"Failed tests ({len(failed)}): {' '.join(failed)}")
    total = len(passed) + len(skipped) + len(failed)
    print(f"ctest: {total} tests: {len(passed)} passed, {len(skipped)} skipped, {len(failed)} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
