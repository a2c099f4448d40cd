"""Starting or joining the Ray cluster a run executes on, and the Ray Data settings every run uses."""

from __future__ import annotations

import logging


def init_ray(address: str | None, num_cpus: int | None) -> dict:
    """Join `address`, or start an embedded local instance; reuses one already started in this process.

    Returns where the run executes (the cluster's GCS address and its CPUs) for stats.json.
    """
    import ray
    import ray.data

    if not ray.is_initialized():
        kwargs: dict = {"include_dashboard": False, "logging_level": "warning", "log_to_driver": True}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
            _warm_workers(int(ray.cluster_resources().get("CPU", 1)))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ProgressReporter shows our stages; Ray's bars show fused operators
    # Reservation holds CPUs back per operator and starts one task at a time: on small clusters it idled
    # a core for seconds (measured with bench/). Actor pools still hold the CPUs they ask for.
    context.op_resource_reservation_enabled = False
    context.memory_usage_poll_interval_s = None  # a polling thread per task cost 3.5% of worker time
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return {"address": ray.get_runtime_context().gcs_address, "cpus": ray.cluster_resources().get("CPU", 0)}


def _import_stages() -> int:
    """The imports a first task would otherwise pay: Ray Data's worker side, Parquet, Pillow, every stage."""
    import pyarrow.parquet  # noqa: F401
    import ray.data  # noqa: F401

    import stages  # noqa: F401

    return 0


def _warm_workers(cpus: int) -> None:
    """Start one worker per CPU of a fresh local instance and import the stages there, in parallel.

    Otherwise Ray starts workers one by one as the first tasks arrive, each paying the imports inside
    the run (about a second per worker on this machine).
    """
    import ray

    warm = ray.remote(num_cpus=1)(_import_stages)
    ray.get([warm.remote() for _ in range(max(cpus, 1))])
