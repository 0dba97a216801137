#!/usr/bin/env python3
"""One-screen summary of a `cargo test --no-fail-fast` log (scripts/test.sh writes it).

Lists every test binary that failed and its failed tests, says where the service logs are, and
ends with the plain closing line `N passed, N failed`. Exit 1 when anything failed or when the
log shows no test at all (a suite that ran nothing is not green).
"""
import argparse
import os
import re
import sys

RUNNING = re.compile(r"^\s+Running (.+) \((.+)\)$")
DOCTESTS = re.compile(r"^\s+Doc-tests (\S+)$")
RESULT = re.compile(r"^test result: (ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored")
FAILED_TEST = re.compile(r"^test (\S+) \.\.\. FAILED$")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("log")
    parser.add_argument("--eval-failures")
    parser.add_argument("--logs")
    parser.add_argument("--kafka-log")
    parser.add_argument("--chroma-log")
    parser.add_argument("--seconds", type=int)
    args = parser.parse_args()

    passed = failed = ignored = binaries = 0
    current = "?"
    failures: dict[str, list[str]] = {}
    crashed: list[str] = []
    seen_result_for_current = True
    with open(args.log, encoding="utf-8", errors="replace") as log:
        for line in log:
            line = line.rstrip("\n")
            running = RUNNING.match(line) or DOCTESTS.match(line)
            if running:
                if not seen_result_for_current:
                    crashed.append(current)
                name = running.group(1)
                current = f"{name} ({os.path.basename(running.group(2))})" if running.lastindex == 2 else f"doc-tests {name}"
                seen_result_for_current = False
                continue
            failed_test = FAILED_TEST.match(line)
            if failed_test:
                failures.setdefault(current, []).append(failed_test.group(1))
                continue
            result = RESULT.match(line)
            if result:
                binaries += 1
                seen_result_for_current = True
                passed += int(result.group(2))
                failed += int(result.group(3))
                ignored += int(result.group(4))
    if not seen_result_for_current:
        crashed.append(current)

    eval_failures = []
    if args.eval_failures and os.path.exists(args.eval_failures):
        with open(args.eval_failures, encoding="utf-8") as f:
            eval_failures = [line.strip() for line in f if line.strip()]

    print()
    print("=" * 72)
    took = f" in {args.seconds // 60} min {args.seconds % 60} s" if args.seconds is not None else ""
    print(f"test summary: {binaries} test binaries{took}")
    for binary, tests in failures.items():
        print(f"  FAILED {binary}")
        for test in tests:
            print(f"         - {test}")
    for binary in crashed:
        print(f"  CRASHED {binary} (no result line: it aborted or was killed)")
    for line in eval_failures:
        print(f"  FAILED {line}")
    if not failures and not crashed and not eval_failures:
        print("  every test binary passed")
    if args.logs:
        print(f"  logs: {args.logs} (cargo-test.log, services.log, eval-*.log, processes/)")
    if args.kafka_log:
        print(f"  kafka broker log: {args.kafka_log}")
    if args.chroma_log:
        print(f"  chroma server log: {args.chroma_log}")
    print("=" * 72)
    print(f"{passed} passed, {failed + len(crashed) + len(eval_failures)} failed, {ignored} skipped")
    if failures or crashed or eval_failures or failed or passed == 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
