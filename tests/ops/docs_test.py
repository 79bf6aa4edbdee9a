#!/usr/bin/env python3
"""The operator docs stay true.

- Every key path of the reference configuration (conf/reference.yaml, the repository's copy of
  the contract) is documented in docs/configuration.md, written as `path` with `[]`
  for list items and `<name>` for user-chosen table and backend names.
- Every yaml block in docs/configuration.md preceded by <!-- snisplice:check --> passes
  `snisplice --check`.
- Every sh block in docs/operations.md preceded by <!-- runnable --> runs and exits 0, against
  a daemon started here from the packaged default configuration, with /etc/snisplice and the
  listener and metrics ports redirected into a scratch directory.

usage: docs_test.py SOURCE_DIR SNISPLICE_BINARY
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_support import free_port, missing_prerequisite, skipped  # noqa: E402

USER_NAMED_MAPS = {"tables", "backends"}


def key_paths(node, prefix=""):
    """Every key path in a YAML tree, e.g. tables.<name>[].resolve.port."""
    paths = set()
    if isinstance(node, dict):
        user_named = prefix in USER_NAMED_MAPS
        for key, value in node.items():
            path = f"{prefix}.<name>" if user_named else (f"{prefix}.{key}" if prefix else str(key))
            if not user_named:
                paths.add(path)
            paths |= key_paths(value, path)
    elif isinstance(node, list):
        for item in node:
            paths |= key_paths(item, prefix + "[]")
    return paths


def marked_blocks(text, marker, languages):
    """(line, code) of each fenced block directly after a marker comment."""
    blocks = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != marker:
            continue
        fence = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if fence not in {f"```{lang}" for lang in languages}:
            raise AssertionError(f"line {i + 1}: {marker} is not followed by a ```{languages[0]} block")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
        blocks.append((i + 3, "\n".join(lines[i + 2:end]) + "\n"))
    return blocks


def check_contract_keys(source_dir, reference, failures):
    contract = os.path.join(source_dir, "conf", "reference.yaml")
    import yaml
    with open(contract) as f:
        paths = sorted(key_paths(yaml.safe_load(f)))
    missing = [p for p in paths if f"`{p}`" not in reference]
    for path in missing:
        failures.append(f"docs/configuration.md does not document `{path}`")
    print(f"{'ok' if not missing else 'FAIL'}: {len(paths) - len(missing)}/{len(paths)} contract key paths documented")


def check_config_examples(binary, reference, tmp, failures):
    blocks = marked_blocks(reference, "<!-- snisplice:check -->", ["yaml"])
    if not blocks:
        failures.append("docs/configuration.md has no <!-- snisplice:check --> example")
    for line, code in blocks:
        path = os.path.join(tmp, f"example-{line}.yaml")
        with open(path, "w") as f:
            f.write(code)
        result = subprocess.run([binary, "-c", path, "--check"], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            failures.append(f"docs/configuration.md:{line}: example refused by --check:\n{result.stderr}")
        else:
            print(f"ok: docs/configuration.md:{line} example passes --check")


def wait_for_metrics(port, proc, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def check_runnable_blocks(source_dir, binary, operations, tmp, failures):
    etc = os.path.join(tmp, "etc", "snisplice")
    bindir = os.path.join(tmp, "bin")
    os.makedirs(etc)
    os.makedirs(bindir)
    os.symlink(os.path.abspath(binary), os.path.join(bindir, "snisplice"))
    listen_port, metrics_port = free_port(), free_port()
    pin_path = f"/sys/fs/bpf/snisplice-ops-docs-{os.getpid()}"

    def sandboxed(text):
        return (text.replace("/etc/snisplice/", etc + "/")
                .replace("127.0.0.1:9446", f"127.0.0.1:{metrics_port}")
                .replace(":8443", f":{listen_port}"))

    with open(os.path.join(source_dir, "deploy", "debian", "snisplice.yaml")) as f:
        config = sandboxed(f.read())
    config += f"bpf_pin_path: {pin_path}\n"
    config_path = os.path.join(etc, "snisplice.yaml")
    with open(config_path, "w") as f:
        f.write(config)

    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    log_path = os.path.join(tmp, "daemon.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([binary, "-c", config_path], stdout=log, stderr=log, env=env)
    try:
        if not wait_for_metrics(metrics_port, proc):
            with open(log_path) as f:
                failures.append(f"the daemon did not serve metrics:\n{f.read()[-3000:]}")
            return
        blocks = marked_blocks(operations, "<!-- runnable -->", ["sh", "bash"])
        if not blocks:
            failures.append("docs/operations.md has no <!-- runnable --> block")
        for line, code in blocks:
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", sandboxed(code)], cwd=tmp, env=env,
                                    capture_output=True, text=True, timeout=120)
            if result.returncode != 0:
                failures.append(f"docs/operations.md:{line}: block exited {result.returncode}\n"
                                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
            else:
                print(f"ok: docs/operations.md:{line} runs")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if os.path.isdir(pin_path):
            shutil.rmtree(pin_path, ignore_errors=True)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    source_dir, binary = sys.argv[1], sys.argv[2]
    reason = missing_prerequisite(binary, tools=("curl",), python_yaml=True)   # curl: the runnable blocks use it
    if reason:
        return skipped("ops_docs", reason)
    with open(os.path.join(source_dir, "docs", "configuration.md")) as f:
        reference = f.read()
    with open(os.path.join(source_dir, "docs", "operations.md")) as f:
        operations = f.read()
    failures = []
    with tempfile.TemporaryDirectory(prefix="snisplice-docs-") as tmp:
        try:
            check_contract_keys(source_dir, reference, failures)
            check_config_examples(binary, reference, tmp, failures)
            check_runnable_blocks(source_dir, binary, operations, tmp, failures)
        except AssertionError as e:
            failures.append(str(e))
    for failure in failures:
        print(f"FAIL: {failure}")
    if failures:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
