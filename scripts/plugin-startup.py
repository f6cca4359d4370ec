#!/usr/bin/env python3
"""Start-up time of CNI plugin binaries: `CNI_COMMAND=VERSION`, interleaved, side by side.

    scripts/plugin-startup.py [--runs N] BINARY [BINARY ...]

Each round runs every binary once (the order rotates from round to round, so machine load is
spread evenly), with `{"cniVersion":"1.0.0"}` on stdin and stdout/stderr discarded. A run is
timed from spawn to exit (posix_spawn + waitpid, no shell). One warm-up round is not counted.
Prints the median, p90 and p99 in milliseconds per binary, and the size on disk. A binary whose
VERSION exits non-zero is reported and stops the measurement.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time


def spawn_once(path, stdin_path, env):
    devnull = os.open(os.devnull, os.O_WRONLY)
    stdin = os.open(stdin_path, os.O_RDONLY)
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, stdin, 0),
            (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2),
        ]
        start = time.perf_counter_ns()
        pid = os.posix_spawn(path, [path], env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter_ns() - start
    finally:
        os.close(devnull)
        os.close(stdin)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{path}: VERSION exited with {os.waitstatus_to_exitcode(status)}")
    return elapsed / 1e6


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="rounds to time (default 200)")
    parser.add_argument("binaries", nargs="+")
    args = parser.parse_args()
    env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as conf:
        conf.write('{"cniVersion":"1.0.0"}')
        conf.flush()
        bins = [os.path.abspath(b) for b in args.binaries]
        for b in bins:
            spawn_once(b, conf.name, env)
        samples = {b: [] for b in bins}
        for r in range(args.runs):
            k = r % len(bins)
            for b in bins[k:] + bins[:k]:
                samples[b].append(spawn_once(b, conf.name, env))
    width = max(len(b) for b in args.binaries)
    print(f"{'binary':<{width}}  {'bytes':>9}  median    p90    p99  (ms, {args.runs} runs)")
    for name, b in zip(args.binaries, bins):
        s = samples[b]
        print(
            f"{name:<{width}}  {os.path.getsize(b):>9}  {statistics.median(s):6.2f} "
            f"{percentile(s, 90):6.2f} {percentile(s, 99):6.2f}"
        )


if __name__ == "__main__":
    main()
