"""Executing a sweep's runs: one after another here (default), or one Ray task per run (``--ray``).

The driver (this process) alone writes the manifest; a run writes only its own ``runs/<name>/`` directory, so on a
cluster the sweep directory must be shared storage. A run resumes from its completed requests whenever its
directory already holds it (``execute(..., resume=True)``): rerunning a sweep, or Ray retrying a task whose worker
died, redoes no completed request. Local mode never imports ray.

Test hook: with ``WORKBENCH_FAULT_KILL_AFTER_REQUESTS=N`` set, a Ray task SIGKILLs its own worker process right after
the run loop saves its N-th request, on the first attempt only (a marker file under ``DIR/.faults/`` records it), so
Ray's retry must resume the run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.sweep import MANIFEST, RunPlan, run_config_for, write_manifest_json

FAULT_ENV = "WORKBENCH_FAULT_KILL_AFTER_REQUESTS"
MAX_RETRIES = 3  # Ray retries of a task whose worker (or node) died
CONNECT_TIMEOUT_S = 10.0  # TCP pre-check of --ray ADDRESS, so a wrong address fails fast instead of hanging


@dataclass(frozen=True)
class RunTask:
    """What a worker needs to execute one run (plain data: shipped to Ray workers by value)."""

    name: str
    point: dict
    run_dir: str
    fault_dir: str
    num_threads: int | None = None  # torch threads (CPU tasks: the task's num_cpus)


@dataclass(frozen=True)
class Outcome:
    name: str
    state: str  # done | failed
    error: str | None = None


def _fault_hook(task: RunTask) -> Callable[[int], None] | None:
    """Test hook (see module doc): a callback that kills this process once the N-th request of the first attempt
    is saved (called by the run loop itself, so the kill always lands mid-run, at the same point)."""
    after = int(os.environ.get(FAULT_ENV, "0") or 0)
    marker = Path(task.fault_dir) / task.name
    if after < 1 or marker.exists():
        return None

    def kill_after(done: int) -> None:
        if done >= after:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    return kill_after


def run_task(task: RunTask, *, fault_hook: bool = False) -> Outcome:
    """Execute (or resume) one run; bad input becomes a failed outcome with its one-line error."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # as the CLI: never reach for the network (also on a Ray worker)
    from transformers.utils import logging as hf_logging

    from workbench.runner import execute

    hf_logging.disable_progress_bar()

    if task.num_threads:
        import torch

        torch.set_num_threads(task.num_threads)
    run_dir = Path(task.run_dir)
    try:
        cfg = run_config_for(task.point)
        execute(cfg, run_dir, resume=(run_dir / "meta.json").is_file(), progress=False,
                after_request=_fault_hook(task) if fault_hook else None)
        return Outcome(task.name, "done")
    except WorkbenchError as exc:
        return Outcome(task.name, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 — one run's crash must not stop the sweep; its first line is kept
        return Outcome(task.name, "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def ray_task(task: RunTask) -> Outcome:
    """The function Ray runs remotely (the fault hook is armed only here, never in local mode)."""
    return run_task(task, fault_hook=True)


class Progress:
    """Manifest updates (atomic) and an overall bar (``workbench.progress.Progress``: tqdm on a terminal, plain
    lines in a log) with done / running / failed counts."""

    def __init__(self, out: Path, manifest: dict, show: bool):
        from workbench.progress import Progress as Bar

        self.out, self.manifest = out, manifest
        self.rows = {r["name"]: r for r in manifest["runs"]}
        # runs finished by an earlier invocation count, but not in the rate
        self.bar = Bar(len(self.rows), "sweep", unit="run", disable=not show, initial=self.count("done"))

    def count(self, state: str) -> int:
        return sum(r["state"] == state for r in self.rows.values())

    def set(self, name: str, state: str, error: str | None = None) -> None:
        self.rows[name].update(state=state, error=error)
        write_manifest_json(self.out / MANIFEST, self.manifest)
        # the counts first: a plain line printed by update() shows them as they are now
        self.bar.set_postfix(done=self.count("done"), running=self.count("running"), failed=self.count("failed"))
        if state in ("done", "failed"):
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _task(out: Path, plan: RunPlan, num_threads: int | None = None) -> RunTask:
    return RunTask(plan.name, plan.point, str(out / "runs" / plan.name), str(out / ".faults"), num_threads)


def run_local(out: Path, plans: list[RunPlan], progress: Progress) -> None:
    """One run after another in this process (nothing to start)."""
    for plan in plans:
        progress.set(plan.name, "running")
        outcome = run_task(_task(out, plan))
        progress.set(plan.name, outcome.state, outcome.error)


def precheck_runs(plans: list[RunPlan], *, prompts: bool, sweep_file: Path | None = None) -> None:
    """Every run's settings (and, with ``prompts``, its prompt file) checked before anything is written: a typo in
    the sweep file is one error line and exit 2, not a manifest of failed runs. Models are left to the runs (on a
    cluster they may exist only on the workers), as are prompt files for Ray runs. A bad prompt file is named with
    the line of ``sweep_file`` that sets it."""
    from workbench.paths import prompts_path
    from workbench.prompts import load_prompts
    from workbench.sweep_file import where_set

    for plan in plans:
        try:
            run_config_for(plan.point).validate()
        except WorkbenchError as exc:
            raise WorkbenchError(f"sweep run {plan.name}: {exc}") from None
    for path in sorted({str(plan.point["prompts"]) for plan in plans} if prompts else ()):
        try:
            load_prompts(prompts_path(path))
        except WorkbenchError as exc:
            if sweep_file is None:
                raise
            raise WorkbenchError(f"{where_set(sweep_file, 'prompts')}: {exc}") from None


def precheck_address(address: str) -> None:
    """A TCP connect to ``host:port`` with a timeout: an unreachable cluster is one error line, not a hang."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise WorkbenchError(f"--ray {address}: expected auto or HOST:PORT (e.g. 10.0.0.5:6379 or ray://head:10001)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise WorkbenchError(f"--ray {address}: cannot reach the Ray cluster ({exc.strerror or exc})") from None


def require_ray() -> None:
    """Ray is installed (the ray extra), checked before the sweep directory is written."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise WorkbenchError("--ray needs the ray extra: WORKBENCH_EXTRAS=ray bash scripts/setup.sh")


def connect_ray(address: str):
    """The ray module, connected: to the already-initialised cluster, to ADDRESS, or (auto) found or started."""
    if address != "auto":
        precheck_address(address)
    require_ray()
    import ray
    if not ray.is_initialized():
        try:
            # Ray's own INFO/WARNING lines (instance started, token auth) would interleave with the progress
            # bar; its errors still show. The line below says where the sweep runs instead.
            ray.init(address=None if address == "auto" else address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError) as exc:
            raise WorkbenchError(f"--ray {address}: {str(exc).splitlines()[0]}") from None
        cpus, gpus = (int(ray.cluster_resources().get(k, 0)) for k in ("CPU", "GPU"))
        print(f"sweep: on Ray ({len(ray.nodes())} node(s), {cpus} CPU(s), {gpus} GPU(s))", file=sys.stderr)
    return ray


def _resources(ray, point: dict, cpus_per_task: int) -> tuple[dict, int | None]:
    """Ray options for a run: one GPU when it will use CUDA, else ``cpus_per_task`` CPUs (and as many threads)."""
    device = point["device"]
    gpu = device.startswith("cuda") or (device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
    if gpu:
        return {"num_gpus": 1, "num_cpus": 1}, None
    return {"num_cpus": cpus_per_task, "num_gpus": 0}, cpus_per_task


def unplaceable(nodes: list[dict], options: dict) -> str:
    """Why no alive node of ``nodes`` (``ray.nodes()``) can run a task with ``options`` now ("" when one can): Ray
    would keep it pending, silently, until such a node joins (an autoscaling cluster may add one)."""
    need = {"CPU": options.get("num_cpus", 0), "GPU": options.get("num_gpus", 0)}
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    if any(all(r.get(k, 0) >= v for k, v in need.items()) for r in alive):
        return ""
    most = {k: max((r.get(k, 0) for r in alive), default=0) for k in need}
    return (f"needs {need['CPU']:g} CPUs and {need['GPU']:g} GPUs on one node; the largest node has "
            f"{most['CPU']:g} CPUs, the most GPUs on a node are {most['GPU']:g}")


def run_ray(out: Path, plans: list[RunPlan], progress: Progress, *, address: str, cpus_per_task: int) -> None:
    """One Ray task per run (retried when its worker dies); results are collected as they finish."""
    ray = connect_ray(address)
    remote = ray.remote(max_retries=MAX_RETRIES)(ray_task)
    env = {FAULT_ENV: os.environ[FAULT_ENV]} if os.environ.get(FAULT_ENV) else None
    pending, nodes = {}, ray.nodes()
    for plan in plans:
        options, threads = _resources(ray, plan.point, cpus_per_task)
        why = unplaceable(nodes, options)
        if why:  # one line, not a silent hang: a node may still join, so the run waits rather than fails
            print(f"warning: run {plan.name} waits: no node of the Ray cluster can place it now ({why}); "
                  "add such a node, or stop with Ctrl-C and lower --cpus-per-task / set device", file=sys.stderr)
        if env:
            options["runtime_env"] = {"env_vars": env}
        pending[remote.options(**options).remote(_task(out, plan, threads))] = plan.name
        progress.set(plan.name, "running")
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            name = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as exc:  # retries exhausted (worker or node kept dying)
                outcome = Outcome(name, "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            progress.set(name, outcome.state, outcome.error)
