"""Versions of each served model: the base-path layout, version policies and the polling swap TF Serving uses.

A model's base path holds one directory per version, named by its integer version (``1/``, ``2/``, ...);
other names (an export's temporary directory, ``.tmp`` files) are ignored, and a version directory counts only
once its ``saved_model.pb`` exists. A poll loads every wanted version that is not loaded yet (fully, warmup
included) before it unloads the versions that are no longer wanted, so requests never find the model missing;
a request holds its ``LoadedModel`` while it runs, so an unload never cuts one short. A version that fails to
load is reported by GetModelStatus and retried only when its ``saved_model.pb`` changes; the versions already
loaded keep serving (TF Serving's availability-preserving policy).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from export.versions import list_versions
from serving.errors import ServingError, from_exception, invalid, not_found, quote
from serving.loader import LoadedModel, is_ready

log = logging.getLogger("tfrec.serving")
POLICIES = ("latest", "specific", "all")


@dataclasses.dataclass
class ModelSource:
    """One model to serve, as a ``ModelConfig`` entry of TF Serving's models.config describes it.

    Attributes:
      name: model name clients ask for.
      base_path: directory holding the integer version directories.
      policy: ``latest`` (the ``latest_n`` highest versions), ``specific`` (``versions``) or ``all``.
      latest_n: number of versions the ``latest`` policy serves.
      versions: pinned versions of the ``specific`` policy.
      labels: version labels (``{"stable": 1, "canary": 2}``), for requests that name a label.
    """

    name: str
    base_path: str
    policy: str = "latest"
    latest_n: int = 1
    versions: Tuple[int, ...] = ()
    labels: Dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.name:
            raise ValueError("a served model needs a name")
        if self.policy not in POLICIES:
            raise ValueError(f"`policy` must be one of {POLICIES}. Received: policy={self.policy!r}")
        if self.policy == "latest" and self.latest_n < 1:
            raise ValueError(f"`latest_n` must be >= 1. Received: latest_n={self.latest_n}")
        if self.policy == "specific" and not self.versions:
            raise ValueError(f"model {self.name!r}: the specific version policy needs at least one version")

    def wanted(self, ready: Sequence[int]) -> List[int]:
        """The versions to serve among the ``ready`` ones."""
        ready = sorted(ready)
        if self.policy == "latest":
            return ready[-self.latest_n:]
        if self.policy == "specific":
            return [v for v in ready if v in set(self.versions)]
        return ready


def parse_model_config(text: str) -> List[ModelSource]:
    """Parses TF Serving's models.config (a ModelServerConfig in protobuf text format).

    Raises:
      ValueError: the text does not parse, or an entry is not a TensorFlow model or lacks a name or base path.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    cfg = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as e:
        raise ValueError(f"models.config does not parse as a ModelServerConfig: {e}") from e
    if cfg.WhichOneof("config") != "model_config_list":
        raise ValueError("models.config needs a model_config_list")
    out = []
    for m in cfg.model_config_list.config:
        if m.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {m.name!r}: model_platform {m.model_platform!r} is not supported")
        if not m.base_path:
            raise ValueError(f"model {m.name!r} has no base_path")
        policy = m.model_version_policy.WhichOneof("policy_choice") or "latest"
        src = ModelSource(name=m.name, base_path=m.base_path, policy=policy,
                          latest_n=m.model_version_policy.latest.num_versions or 1,
                          versions=tuple(m.model_version_policy.specific.versions),
                          labels=dict(m.version_labels))
        out.append(src)
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"models.config names a model twice: {names}")
    if not out:
        raise ValueError("models.config lists no model")
    return out


def read_model_config(path: str) -> List[ModelSource]:
    """:func:`parse_model_config` of the file at ``path``."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"model config file not found: {path}")
    with open(path, "r", encoding="utf-8") as f:
        return parse_model_config(f.read())


def scan_versions(base_path: str) -> List[int]:
    """The complete integer version directories under ``base_path`` (none when it does not exist).

    The version names are :func:`export.versions.list_versions`' (the names an export publishes); a version
    counts once its graph file exists.
    """
    try:
        versions = list_versions(base_path)
    except Exception:  # noqa: BLE001 - an unreadable base path has no version now; the next poll looks again
        log.warning("cannot list the versions under %s", base_path, exc_info=True)
        return []
    return [v for v in versions if is_ready(os.path.join(base_path, str(v)))]


@dataclasses.dataclass
class VersionState:
    """The state GetModelStatus reports for one version (TF Serving's ModelVersionStatus.State names)."""

    state: str
    error: Optional[ServingError] = None


class ModelManager:
    """Loads, serves and swaps the versions of the configured models.

    Args:
      sources: the models to serve.
      poll_seconds: how often the base paths are scanned for new and removed versions (0 = never after start).
      warmup: ``warmup(model, PredictionLog)`` replays one warmup record (see ``serving.handlers.replay_warmup``).
    """

    def __init__(self, sources: Sequence[ModelSource], poll_seconds: float = 1.0,
                 warmup: Optional[Callable] = None):
        if poll_seconds < 0:
            raise ValueError(f"`poll_seconds` must be >= 0. Received: poll_seconds={poll_seconds}")
        self.sources = {s.name: s for s in sources}
        self.poll_seconds = float(poll_seconds)
        self._warmup = warmup
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._models: Dict[str, Dict[int, LoadedModel]] = {s.name: {} for s in sources}
        self._states: Dict[str, Dict[int, VersionState]] = {s.name: {} for s in sources}
        self._failed: Dict[Tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> "ModelManager":
        """Loads the current versions (blocking), then polls in a background thread."""
        self.poll_once()
        if self.poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="tfrec-serving-poll", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stops polling (loaded versions stay usable until the manager is dropped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a poll must never kill the poller
                log.exception("polling the model base paths failed")

    def poll_once(self) -> None:
        """One scan of every base path: load new wanted versions, then unload the unwanted ones."""
        with self._poll_lock:
            for src in self.sources.values():
                self._sync(src)

    def _sync(self, src: ModelSource) -> None:
        ready = scan_versions(src.base_path)
        # A version that failed to load (and has not changed since) is not a candidate, so the policy falls
        # back to the next one: the latest *loadable* version serves, and the one it should replace stays.
        while True:
            candidates = [v for v in ready if self._failed.get((src.name, v)) != self._stamp(src, v)]
            todo = [v for v in src.wanted(candidates) if v not in self._models[src.name]]
            if not todo:
                break
            self._load(src, todo[-1])
        keep = set(src.wanted(candidates))
        with self._lock:
            current = self._models[src.name]
            dropped = [v for v in current if v not in keep]
            if dropped:
                self._models[src.name] = {v: m for v, m in current.items() if v not in dropped}
                for v in dropped:
                    self._states[src.name][v] = VersionState("END")
        for v in dropped:
            log.info("unloaded model %s version %d", src.name, v)

    def _stamp(self, src: ModelSource, version: int) -> float:
        path = os.path.join(src.base_path, str(version))
        for f in ("saved_model.pb", "saved_model.pbtxt"):
            try:
                return os.path.getmtime(os.path.join(path, f))
            except OSError:
                continue
        return -1.0

    def _load(self, src: ModelSource, version: int) -> None:
        with self._lock:
            self._states[src.name][version] = VersionState("LOADING")
        try:
            model = LoadedModel(src.name, version, os.path.join(src.base_path, str(version)))
            n = model.warmup(self._warmup) if self._warmup is not None else 0
        except Exception as e:  # noqa: BLE001 - a bad version is reported, never fatal
            err = from_exception(e)
            self._failed[(src.name, version)] = self._stamp(src, version)
            with self._lock:
                self._states[src.name][version] = VersionState("END", err)
            log.error("model %s version %d failed to load: %s", src.name, version, err)
            return
        self._failed.pop((src.name, version), None)
        with self._lock:
            self._models[src.name] = {**self._models[src.name], version: model}
            self._states[src.name][version] = VersionState("AVAILABLE")
        log.info("loaded model %s version %d (%d warmup requests)", src.name, version, n)

    # ----------------------------------------------------------------------------------------- lookups

    def get(self, spec) -> LoadedModel:
        """The LoadedModel a request's ModelSpec asks for: a version, a version label, or the highest version.

        Raises:
          ServingError: NOT_FOUND for an unknown model or version, or a model with no version loaded;
            INVALID_ARGUMENT for a request without a model name or with an unknown version label (TF Serving's
            server_core.cc: "ModelSpec has no name specified", "Unrecognized servable version label").
        """
        if not spec.name:
            raise invalid("the request's model_spec has no model name")
        with self._lock:
            versions = self._models.get(spec.name)
        if versions is None:
            raise not_found(f"model {quote(spec.name)} not found; served models: {', '.join(sorted(self._models))}")
        if spec.HasField("version"):
            version = spec.version.value
        elif spec.version_label:
            labels = self.sources[spec.name].labels
            if spec.version_label not in labels:
                raise invalid(f"version label {quote(spec.version_label)} of model {quote(spec.name)} not found; "
                              f"labels: {sorted(labels)}")
            version = labels[spec.version_label]
        else:
            if not versions:
                raise not_found(f"no version of model {quote(spec.name)} is available yet")
            return versions[max(versions)]
        if version not in versions:
            raise not_found(f"version {version} of model {quote(spec.name)} not found; available versions: "
                            f"{sorted(versions)}")
        return versions[version]

    def status(self, name: str, version: Optional[int] = None) -> List[Tuple[int, VersionState]]:
        """``[(version, VersionState)]`` of a model (all known versions, or the one asked for).

        Raises:
          ServingError: NOT_FOUND for an unknown model or version.
        """
        with self._lock:
            states = dict(self._states.get(name, {})) if name in self._states else None
        if states is None:
            raise not_found(f"model {quote(name)} not found; served models: {', '.join(sorted(self._states))}")
        if version is not None:
            if version not in states:
                raise not_found(f"version {version} of model {quote(name)} not found")
            return [(version, states[version])]
        if not states:
            raise not_found(f"model {quote(name)} has no version yet (base path {self.sources[name].base_path})")
        return sorted(states.items())

    def available(self, name: str) -> List[int]:
        """The versions of ``name`` that answer requests now."""
        with self._lock:
            return sorted(self._models.get(name, {}))
