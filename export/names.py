"""The stable names of tfrec's SavedModel signatures and their tensors (what TF Serving clients rely on;
:mod:`export.signatures` documents them), shared by the signatures and the warmup records."""

SERVING_DEFAULT = "serving_default"
PREDICT_RAW = "predict_raw"
CLASSIFICATION = "classification"
REGRESSION = "regression"

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

EXAMPLES_KEY = "examples"  # serving_default's input
INPUTS_KEY = "inputs"  # Classify / Regress input (TF Serving's fixed name)
SCORES_KEY, CLASSES_KEY, OUTPUTS_KEY = "scores", "classes", "outputs"
CLASS_LABELS = ("0", "1")
DEFAULT_TASK = "ctr"
