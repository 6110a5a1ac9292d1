"""Peak disk of a running study, sampled: the size of results/ and of the folders the cost plan counts
(models, proxies, targets, .state) every --interval seconds while a command runs, to set against
`python -m lpselect.plan <config> --all --jobs N` (its "checkpoints temporary" peak).

    .venv/bin/python benchmarks/peak_disk.py [--interval 1] -- .venv/bin/snakemake --cores 2 ...
"""

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from lpselect.plan import CHECKPOINT_FOLDERS


def folder_bytes(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(folder, f)).st_size
            except FileNotFoundError:  # deleted while walking (a temporary checkpoint)
                pass
    return total


def sample(results: Path) -> tuple[int, int]:
    checkpoints = sum(folder_bytes(results / name) for name in CHECKPOINT_FOLDERS)
    return folder_bytes(results), checkpoints


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--results", default="results")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    results, peak, stop = Path(args.results), {"all": (0, 0.0), "checkpoints": (0, 0.0)}, threading.Event()
    start = time.perf_counter()

    def watch():
        while not stop.is_set():
            everything, checkpoints = sample(results)
            now = time.perf_counter() - start
            for key, value in (("all", everything), ("checkpoints", checkpoints)):
                if value > peak[key][0]:
                    peak[key] = (value, now)
            stop.wait(args.interval)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    rc = subprocess.call(command)
    stop.set()
    thread.join()
    print(f"command exited {rc} after {time.perf_counter() - start:.0f} s; sampled every {args.interval:g} s")
    print(f"peak size of {results}/: {peak['all'][0] / 1e6:.1f} MB (at {peak['all'][1]:.0f} s)")
    print(f"peak of {', '.join(CHECKPOINT_FOLDERS)} (what the plan counts): {peak['checkpoints'][0] / 1e6:.1f} MB "
          f"(at {peak['checkpoints'][1]:.0f} s)")
    sys.exit(rc)


if __name__ == "__main__":
    main()
