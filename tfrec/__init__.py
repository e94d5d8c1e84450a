"""tfrec: ranking-aware losses, CTR / multi-task / pre-ranking models, TFRecord pipelines and TF Serving export.

The library is importable without Apache Beam or gRPC; TensorFlow is imported by the modules that need it.
"""

__version__ = "0.1.0"
