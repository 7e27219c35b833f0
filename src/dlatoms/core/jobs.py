"""What every rule script's job shares: logging to the job's log file, with the error logged too."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("dlatoms")


@contextmanager
def job_logging(log_path: str | Path):
    """Send dlatoms' log records to the job's log file and stderr; log an exception before it propagates."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)]
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger("dlatoms")
    root.setLevel(logging.INFO)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    try:
        yield log
    except Exception:
        log.exception("job failed")
        raise
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
