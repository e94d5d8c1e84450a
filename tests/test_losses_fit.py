"""Every KDD 2024 loss trains DCN V2 through ``tfrec train``'s driver (config -> strategy -> fit) for a few steps.

The loss is chosen by name in the config, as a YAML file would; training runs on 2 replicas with the loss's
``pairing="global"`` where it has one, and the combined losses report each component in the history.
"""

import inspect
import math

import pytest

from tfrec.config import load_config
from tfrec.losses import base as losses_base
from tfrec.train import train

from loss_probe import SPECS

DCN_LOSSES = sorted(n for n in SPECS if n != "pwiser")  # PWiseR needs click and conversion labels (multi-task)


@pytest.mark.parametrize("name", DCN_LOSSES)
def test_loss_trains_dcn_v2(tiny_dataset, tmp_path, name):
    params, _ = SPECS[name]
    cls = losses_base._lookup(name)
    if "pairing" in inspect.signature(cls.__init__).parameters:
        params = {**params, "pairing": "global"}
    # The smallest DCN V2 (one cross layer, dim 4): the cost of a case is its graph's tracing, not its steps.
    overrides = [f"data.dir={tiny_dataset}", f"train.model_dir={tmp_path}", "model.dnn_hidden_units=[16, 8]",
                 "model.num_cross_layers=1", "model.embedding_dim=4", "train.save_every_steps=0",
                 "data.batch_size=64", "data.eval_batch_size=128", "data.shuffle_buffer=0", "train.epochs=1",
                 "train.steps_per_epoch=3", "train.log_every_seconds=0", f"loss.name={name}",
                 f"loss.params={params!r}"]
    if name == "jrc":
        overrides.append("model.head=jrc")
    result = train(load_config(None, overrides), printer=lambda _: None)
    history = result.history
    assert result.summary["train_steps"] == 3
    assert all(math.isfinite(v) for v in history["loss"] + history["val_loss"])
    for component in cls.components:
        assert f"{component}_loss" in history, (component, sorted(history))
