"""Training jobs for the app: a spec (a `train` command line), a folder per job, a queue that runs one
job at a time in its own process, and live progress.  See store.py for the layout."""

from .progress import StopRequested, estimate, format_seconds
from .spec import JobError, JobSpec, recipe_values, recipes
from .store import ACTIVE, ENDED, RESUMABLE, Job, JobQueue, default_cache_dir, default_jobs_dir

__all__ = ["ACTIVE", "ENDED", "RESUMABLE", "Job", "JobError", "JobQueue", "JobSpec", "StopRequested",
           "default_cache_dir", "default_jobs_dir", "estimate", "format_seconds", "recipe_values", "recipes"]
