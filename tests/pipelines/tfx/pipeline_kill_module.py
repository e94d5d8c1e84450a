"""Test Trainer module (not a test): tfrec's run_fn, SIGKILLed once at a global step; records each start step.

``fn_args.custom_config["user"]``: ``kill_at_step`` (global step), ``marker`` (file created just before the kill;
once it exists the run is not killed again), ``record`` (JSON list of the optimizer step at each train start).
"""

import json
import os
import signal

import tf_keras as keras

from tfrec.trainer_module import run_fn as tfrec_run_fn


class _KillOnce(keras.callbacks.Callback):
    def __init__(self, user):
        super().__init__()
        self.user = user

    def on_train_begin(self, logs=None):
        path = self.user["record"]
        starts = json.load(open(path)) if os.path.exists(path) else []
        starts.append(int(self.model.optimizer.iterations.numpy()))
        with open(path, "w") as f:
            json.dump(starts, f)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step >= self.user["kill_at_step"] and not os.path.exists(self.user["marker"]):
            open(self.user["marker"], "w").close()
            os.kill(os.getpid(), signal.SIGKILL)


def run_fn(fn_args):
    tfrec_run_fn(fn_args, extra_callbacks=[_KillOnce(fn_args.custom_config["user"])])
