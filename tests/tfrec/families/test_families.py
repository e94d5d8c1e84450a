"""Model families: one registry decides the family of a dataset, a run and a model; old schema layouts still read;
a new family is one registration; no other module tests which family it is."""

import json
import os
import re

import pytest

from tfrec import families
from tfrec.config import ConfigError, load_config
from tfrec.data import DatasetError
from tfrec.families import registry
from tfrec.features import ALIEXPRESS, CRITEO, HCCP
from tests.support import ROOT



def _dataset(path, schema_json):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "schema.json"), "w") as f:
        json.dump(schema_json, f)
    return str(path)


def test_the_three_families_and_their_units():
    assert families.names()[:3] == ["pointwise", "multitask", "preranking"]
    point, multi, pre = (families.get(n) for n in ("pointwise", "multitask", "preranking"))
    assert (point.unit, multi.unit, pre.unit) == ("rows", "rows", "requests")
    assert (point.batch_defaults, pre.batch_defaults) == ((4096, 16384), (64, 64))
    assert point.models == ("dcn_v2",) and "mmoe" in multi.models and pre.models == ("three_tower",)
    assert (point.pipeline_section, pre.pipeline_section) == ("prepare", "hybrid")
    assert (point.records, pre.records) == (families.EXAMPLE, families.EXAMPLE_LIST)


def test_family_of_reads_the_kind_of_each_schema(tmp_path):
    for schema, name in ((CRITEO, "pointwise"), (ALIEXPRESS, "multitask"), (HCCP, "preranking")):
        assert schema.to_json()["kind"] == name
        assert families.family_of(_dataset(tmp_path / name, schema.to_json())).name == name
        assert families.family_of(str(tmp_path / name)).load_schema(str(tmp_path / name)) == schema


def test_schemas_of_earlier_releases_still_read(tmp_path):
    old_criteo = {k: v for k, v in CRITEO.to_json().items() if k != "kind"}  # no kind: point-wise
    old_hccp = {k: v for k, v in HCCP.to_json().items() if k != "kind"}  # no kind, an ExampleListWithContext format
    assert families.family_of(_dataset(tmp_path / "c", old_criteo)).name == "pointwise"
    assert families.family_of(_dataset(tmp_path / "h", old_hccp)).name == "preranking"
    assert families.family_of(str(tmp_path / "h")).load_schema(str(tmp_path / "h")) == HCCP
    assert [families.kind_of({"kind": k}) for k in ("criteo", "hybrid", "listwise", "multitask")] == [
        "pointwise", "preranking", "preranking", "multitask"]
    assert families.get("hybrid") is families.get("preranking") and families.get("criteo").name == "pointwise"


def test_unknown_or_missing_datasets_are_one_line_errors(tmp_path):
    with pytest.raises(DatasetError, match="no dataset directory given"):
        families.family_of("")
    with pytest.raises(DatasetError, match="prepared dataset directory not found"):
        families.family_of(str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="schema.json not found"):
        families.family_of(str(tmp_path))
    with pytest.raises(DatasetError, match="unknown family 'graph'; known families: pointwise, multitask"):
        families.family_of(_dataset(tmp_path / "g", {"kind": "graph"}))
    with pytest.raises(ValueError, match="unknown family 'nope'"):
        families.get("nope")


def test_model_names_formats_and_model_classes_have_one_family():
    from tfrec.models import DCNv2, MMoE, SingleTask
    from tfrec.models.preranking import ThreeTower

    assert [families.family_of_model_name(m).name for m in ("dcn_v2", "esmm", "three_tower")] == [
        "pointwise", "multitask", "preranking"]
    assert [c.family for c in (DCNv2, MMoE, SingleTask, ThreeTower)] == ["pointwise", "multitask", "multitask",
                                                                       "preranking"]
    assert [families.family_of_format(f).name for f in ("auto", "x1", "aliccp")] == ["pointwise", "pointwise",
                                                                                    "multitask"]
    with pytest.raises(ValueError, match="unknown model 'gbdt'"):
        families.family_of_model_name("gbdt")
    with pytest.raises(ValueError, match="declares no family"):
        families.family_of_model(object())


def test_a_model_of_another_family_is_a_config_error(tmp_path):
    data = _dataset(tmp_path / "mt", ALIEXPRESS.to_json())
    with pytest.raises(ConfigError, match="model 'dcn_v2' needs a point-wise CTR dataset .* is a multi-task dataset "
                                          ".*use one of shared_bottom, mmoe"):
        families.family_of(data).resolve(load_config(None, [f"data.dir={data}"]))


def test_a_fourth_family_is_one_registration(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Toy(families.Family):
        name, title, models, unit = "toy", "toy dataset", ("toy_model",), "sessions"

    toy = families.register(Toy())
    assert families.family_of(_dataset(tmp_path / "toy", {"kind": "toy"})) is toy
    assert families.family_of_model_name("toy_model") is toy and "toy" in families.names()
    with pytest.raises(ValueError, match="already registered"):
        families.register(Toy())

    class Thief(families.Family):
        name, models = "thief", ("dcn_v2",)

    with pytest.raises(ValueError, match="claims model"):
        families.register(Thief())


# Family tests that belong in tfrec/families only: schema classes tested with isinstance, the old multitask flag of
# the model config, the ExampleListWithContext format sniffed in schema.json, the list-wise test of the pipelines.
DISPATCH = re.compile(r"isinstance\([^)]*(PointwiseSchema|MultiTaskSchema|ListwiseSchema|PrerankingSignatureSet)"
                      r"|\bmodel\.multitask\b|\bis_listwise|\"ExampleListWithContext\" in|is_preranking\("
                      r"|hasattr\(model, \"output_tasks\"\)")



def test_one_place_decides_the_family():
    found = []
    for package in ("tfrec", "pipelines", "export", "serving"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                path = os.path.join(dirpath, name)
                if not name.endswith(".py") or os.sep + "families" + os.sep in path:
                    continue
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        if DISPATCH.search(line):
                            found.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
    assert not found, "family decided outside tfrec/families:\n" + "\n".join(found)


def test_pipeline_family_takes_the_family_names_and_reads_the_old_ones(tmp_path, capsys):
    from pipelines.tfx import load_pipeline_config
    from tfrec.config import ConfigError

    cfg = load_pipeline_config(None, [f"pipeline.root={tmp_path}", "pipeline.family=preranking"])
    assert cfg.pipeline.family == "preranking" and capsys.readouterr().err == ""
    old = load_pipeline_config(None, [f"pipeline.root={tmp_path}", "pipeline.family=hybrid"])
    err = capsys.readouterr().err.strip().splitlines()
    assert old.pipeline.family == "preranking"
    assert err == ["tfrec: deprecated config: pipeline.family='hybrid' is now preranking (the old form is read for "
                   "one more release)"]
    with pytest.raises(ConfigError, match="`pipeline.family` must be one of pointwise, multitask, preranking"):
        load_pipeline_config(None, [f"pipeline.root={tmp_path}", "pipeline.family=graph"])


@pytest.mark.parametrize("config, listwise", [("pipeline_criteo.yaml", False), ("pipeline_aliexpress.yaml", False),
                                              ("pipeline_hccp.yaml", True)])
def test_the_tfx_pipeline_takes_its_nodes_from_the_family(config, listwise):
    # The TFX-native pipeline's node set follows the family's record format (tfx itself is not needed for this).
    from pipelines.tfx import load_pipeline_config
    from pipelines.tfx_native.pipeline import LISTWISE_NODES, POINTWISE_NODES, node_ids

    cfg = load_pipeline_config(os.path.join(ROOT, "configs", config))
    assert node_ids(cfg) == (LISTWISE_NODES if listwise else POINTWISE_NODES)
    cfg.pipeline.family = "nope"
    with pytest.raises(Exception, match="unknown family 'nope'"):
        node_ids(cfg)
