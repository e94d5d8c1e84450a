"""Device set-up for tf.distribute: logical CPU replicas and strategy selection.

MirroredStrategy on a CPU-only host needs one logical device per replica, and TensorFlow only accepts that
configuration before its runtime is initialised. The process that trains therefore calls
:func:`configure_cpu_replicas` first thing (the ``tfrec`` command does it before any other TensorFlow work).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from typing import Optional


class DeviceError(RuntimeError):
    """The requested replicas cannot be provided in this process."""


def configure_cpu_replicas(replicas: int) -> int:
    """Splits the host CPU into at least ``replicas`` logical devices (no-op when GPUs are visible).

    Args:
      replicas: number of logical CPU devices wanted (>= 1).

    Returns:
      The number of logical CPU devices the process has afterwards.

    Raises:
      DeviceError: the runtime is already initialised with fewer logical CPU devices than asked for.
    """
    import tensorflow as tf

    if replicas < 1:
        raise ValueError(f"`replicas` must be >= 1. Received: replicas={replicas}")
    if tf.config.list_physical_devices("GPU"):
        return len(tf.config.list_logical_devices("CPU"))
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) >= replicas:
        return len(current)
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have >= replicas:
            return have
        raise DeviceError(
            f"{replicas} CPU replicas were requested but TensorFlow is already initialised with {have} logical "
            "CPU device(s); call tfrec.devices.configure_cpu_replicas before any other TensorFlow work") from None
    return len(tf.config.list_logical_devices("CPU"))


def make_strategy(replicas: int, prefer_gpu: bool = True):
    """Returns the distribution strategy for ``replicas`` replicas.

    * ``TF_CONFIG`` naming several workers: ``MultiWorkerMirroredStrategy``.
    * GPUs visible and ``prefer_gpu``: ``MirroredStrategy`` over the first ``replicas`` GPUs.
    * Otherwise: ``MirroredStrategy`` over the first ``replicas`` logical CPU devices (see
      :func:`configure_cpu_replicas`).

    Raises:
      DeviceError: fewer devices than ``replicas``.
    """
    import tensorflow as tf

    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    workers = tf_config.get("cluster", {}).get("worker", [])
    if len(workers) > 1:
        # One per process: MultiWorkerMirroredStrategy sets up the process's collective runtime and cluster
        # coordination when it is made, and a second one in the same process (a caller that made the strategy
        # first thing, then tfrec.train) re-initialises them under the first and can hang both workers.
        global _MULTI_WORKER
        with _KEY_LOCK:
            if _MULTI_WORKER is None:
                _MULTI_WORKER = tf.distribute.MultiWorkerMirroredStrategy()
        return _MULTI_WORKER
    gpus = tf.config.list_logical_devices("GPU") if prefer_gpu else []
    devices = gpus if gpus else tf.config.list_logical_devices("CPU")
    if len(devices) < replicas:
        kind = "GPU" if gpus else "logical CPU"
        raise DeviceError(f"{replicas} replicas requested but only {len(devices)} {kind} device(s) are available")
    names = [d.name for d in devices[:replicas]]
    cross_ops: Optional[object] = None
    if not gpus:
        # NCCL is GPU-only; on CPU devices reduce through one device.
        cross_ops = tf.distribute.ReductionToOneDevice(reduce_to_device=names[0])
    return _mirrored(names, cross_ops)


_KEY_LOCK = threading.Lock()
_KEY_BASES = itertools.count(1)
_MULTI_WORKER = None  # the process's MultiWorkerMirroredStrategy (see make_strategy)


def _mirrored(devices, cross_ops):
    """A ``MirroredStrategy`` with collective keys of its own.

    Every ``MirroredStrategy`` starts its collective group and instance keys at the same values, and TensorFlow's
    runtime keeps collective parameters by key for the life of the process. A second strategy in one process (an
    experiment sweep, a test session) then reuses the first one's keys for other collectives (the all-gather of
    ``pairing="global"`` losses, for example) and fails with "Collective instance 100 expected type ...". Giving
    each strategy its own group-key base (TensorFlow's ``_collective_key_base``) keeps them apart.
    """
    import tensorflow as tf

    with _KEY_LOCK:
        previous = tf.distribute.MirroredStrategy._collective_key_base
        tf.distribute.MirroredStrategy._collective_key_base = 1000 * next(_KEY_BASES)
        try:
            return tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross_ops)
        finally:
            tf.distribute.MirroredStrategy._collective_key_base = previous


def task_info() -> tuple:
    """``(task type, task index, number of workers)`` from ``TF_CONFIG`` (``("", 0, 1)`` when it is unset)."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster = tf_config.get("cluster", {})
    task = tf_config.get("task", {})
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return str(task.get("type", "")), int(task.get("index", 0)), max(workers, 1)


def is_chief() -> bool:
    """Whether this process writes the exports: the ``chief`` task, or worker 0 of a cluster without a chief, or a
    single process (no ``TF_CONFIG``)."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    kind, index, _ = task_info()
    if not kind:
        return True
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and not tf_config.get("cluster", {}).get("chief")


def worker_dir(path: str) -> str:
    """``path`` on the chief; a per-worker temporary directory beside it on the other workers (which must still
    write their checkpoints and exports, as MultiWorkerMirroredStrategy's save ops are collective)."""
    if is_chief():
        return path
    kind, index, _ = task_info()
    return os.path.join(os.path.dirname(path.rstrip("/")) or ".", f".{kind}-{index}-tmp", os.path.basename(path))
