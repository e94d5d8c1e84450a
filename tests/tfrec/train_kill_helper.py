"""Test helper (not a test): trains the tiny dataset; with --kill-at E B it SIGKILLs itself at epoch E, batch B."""

import json
import os
import signal
import sys

from tfrec.devices import configure_cpu_replicas

configure_cpu_replicas(2)

import tf_keras as keras  # noqa: E402

from tfrec.config import load_config  # noqa: E402
from tfrec.train import train  # noqa: E402


class _Kill(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


class _Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []
        self.steps = []
        self.start_iterations = None

    def on_train_begin(self, logs=None):
        self.start_iterations = int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch + 1)
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


def main(argv):
    data_dir, model_dir = argv[0], argv[1]
    cfg = load_config(None, [f"data.dir={data_dir}", f"train.model_dir={model_dir}", "train.epochs=4",
                             "model.dnn_hidden_units=[16, 8]", "data.batch_size=64", "train.save_every_steps=2",
                             "train.log_every_seconds=0", "train.early_stop_patience=10"])
    extra = [_Record()]
    if "--kill-at" in argv:
        i = argv.index("--kill-at")
        extra.append(_Kill(int(argv[i + 1]), int(argv[i + 2])))
    result = train(cfg, printer=lambda _: None, extra_callbacks=extra)
    rec = extra[0]
    print(json.dumps({"epochs_in_this_run": len(rec.epochs), "first_epoch_in_this_run": rec.epochs[0],
                      "steps_per_epoch_in_this_run": rec.steps, "start_iterations": rec.start_iterations,
                      "iterations": int(result.model.optimizer.iterations.numpy())}))


if __name__ == "__main__":
    main(sys.argv[1:])
