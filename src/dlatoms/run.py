"""`make run`: Snakemake in the current directory, after clearing a lock that a killed run left behind.

Snakemake locks a run's outputs in `.snakemake/locks` and removes the lock when it ends. A run killed with
SIGKILL (or by a crash or a power cut) cannot remove it, and every later run then refuses with "Directory
cannot be locked" until someone runs `snakemake --unlock`. This wrapper unlocks only when no Snakemake
process and no job of one runs in the directory, so a second run started while a first one is alive still
gets Snakemake's refusal and the first one is untouched. Jobs that were cut off rerun: the profile sets
`rerun-incomplete`, and their outputs, written atomically, never exist half-written.

Usage: `python -m dlatoms.run [snakemake arguments]` (what `make run` calls, with `--cores $(CORES)`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def is_snakemake(argv: list[str]) -> bool:
    """A Snakemake command (its script, or `python -m snakemake`) or a job it started (run from a
    `.snakemake/` folder, e.g. `.snakemake/scripts/tmp….py`)."""
    if any(Path(arg).name == "snakemake" for arg in argv[:3]):
        return True
    return any("/.snakemake/" in arg or arg.startswith(".snakemake/") for arg in argv)


def snakemake_processes(directory: Path) -> list[tuple[int, str]] | None:
    """(pid, command) of every Snakemake process or job whose working directory is `directory`.

    None where the process table cannot be read (no /proc: not Linux).
    """
    proc = Path("/proc")
    if not (proc / "self" / "cwd").exists():
        return None
    directory = directory.resolve()
    own = {os.getpid(), os.getppid()}
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            argv = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:  # gone meanwhile, or another user's process
            continue
        if cwd == directory and is_snakemake(argv):
            found.append((int(entry.name), " ".join(argv)[:160]))
    return found


def stale_lock(directory: Path) -> bool | None:
    """True when `.snakemake/locks` holds a lock and no Snakemake process runs here; None when unknown."""
    locks = directory / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return False
    running = snakemake_processes(directory)
    if running is None:
        return None
    if running:
        pids = ", ".join(str(pid) for pid, _ in running[:5])
        print(
            f"dlatoms: another Snakemake run is active in {directory} (pid {pids}); not unlocking",
            file=sys.stderr,
        )
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    directory = Path.cwd()
    stale = stale_lock(directory)
    if stale:
        print(
            f"dlatoms: {directory} is locked by a run that no longer exists (killed?); no Snakemake process "
            "runs here, so unlocking (snakemake --unlock). Jobs it left unfinished rerun.",
            file=sys.stderr,
        )
        unlock = subprocess.run([*SNAKEMAKE, "--unlock", *args], stdout=subprocess.DEVNULL)
        if unlock.returncode != 0:
            print("dlatoms: `snakemake --unlock` failed; see its message above", file=sys.stderr)
            return unlock.returncode
    elif stale is None:
        print(
            "dlatoms: cannot list processes here; if Snakemake says the directory is locked and no other run "
            "is active, run `snakemake --unlock` first",
            file=sys.stderr,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [*SNAKEMAKE, *args])
    return 0  # not reached: execv replaces this process by Snakemake


if __name__ == "__main__":
    sys.exit(main())
