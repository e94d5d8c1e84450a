"""Typed pipeline artifacts: a type name, a URI under the pipeline root, properties and a fingerprint.

The URI of an artifact is stored relative to the pipeline root (so a root can be moved or copied whole); the
runner resolves it with :meth:`Artifact.path`. The fingerprint identifies the content: the runner derives it
from the cache key of the execution that produced the artifact and the output name, so two executions with the
same inputs, parameters and code produce artifacts with the same fingerprint and downstream cache keys match.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar, Dict, Type


@dataclasses.dataclass
class Artifact:
    """One artifact.

    Attributes:
      uri: directory of the artifact, relative to the pipeline root.
      properties: JSON-serializable facts about it (row counts, metrics, the blessing, the pushed version).
      fingerprint: content identity (hex digest) used in downstream cache keys.
    """

    TYPE: ClassVar[str] = "Artifact"
    uri: str = ""
    properties: Dict[str, Any] = dataclasses.field(default_factory=dict)
    fingerprint: str = ""

    def path(self, root: str) -> str:
        """The artifact's directory on disk."""
        return os.path.join(root, self.uri)

    def to_dict(self) -> Dict[str, Any]:
        return {"type": self.TYPE, "uri": self.uri, "properties": self.properties, "fingerprint": self.fingerprint}


class Examples(Artifact):
    """A prepared dataset directory (split TFRecords, schema.json, stats.json, vocabularies)."""

    TYPE = "Examples"


class Statistics(Artifact):
    """``statistics.json``: per split row counts, positive rate and per feature presence / range."""

    TYPE = "ExampleStatistics"


class Schema(Artifact):
    """``schema.json``: expected features, their presence, numeric ranges and the positive rate."""

    TYPE = "Schema"


class ExampleAnomalies(Artifact):
    """``anomalies.json``: the anomalies found (empty list when the data is fine)."""

    TYPE = "ExampleAnomalies"


class Model(Artifact):
    """``serving_model_dir/`` (a SavedModel) and ``model_run_dir/`` (checkpoints, logs, history)."""

    TYPE = "Model"


class ModelBlessing(Artifact):
    """``BLESSED`` or ``NOT_BLESSED`` marker plus ``evaluation.json`` (metrics, thresholds, reasons)."""

    TYPE = "ModelBlessing"


class PushedModel(Artifact):
    """``push.json``: whether the model was pushed, and the serving version it landed as."""

    TYPE = "PushedModel"


TYPES: Dict[str, Type[Artifact]] = {c.TYPE: c for c in (Examples, Statistics, Schema, ExampleAnomalies, Model,
                                                        ModelBlessing, PushedModel)}


def from_dict(d: Dict[str, Any]) -> Artifact:
    """The inverse of :meth:`Artifact.to_dict`.

    Raises:
      ValueError: an unknown artifact type.
    """
    cls = TYPES.get(d.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown artifact type {d.get('type')!r}; known: {sorted(TYPES)}")
    return cls(uri=d["uri"], properties=dict(d.get("properties") or {}), fingerprint=d.get("fingerprint", ""))
