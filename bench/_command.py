"""The real `compete` command line, run and timed from a bench script."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-c", "import cli; cli.main()"]


def compete(*args, env=None) -> tuple[float, str]:
    """Run `compete ARGS` from the project root; wall seconds and what it printed."""
    started = time.perf_counter()
    done = subprocess.run([*COMMAND, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:   # the command's own last words, not only its exit status
        sys.exit(f"compete {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr.strip()[-2000:]}")
    return time.perf_counter() - started, done.stdout
