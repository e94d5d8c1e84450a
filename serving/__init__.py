"""Serving of tfrec's exported SavedModels over TF Serving's gRPC API.

* ``serving.server``: :class:`~serving.server.ModelServer`, a local PredictionService and ModelService that
  loads versioned SavedModels from a base path (or a models.config) the way TF Serving does (``tfrec serve``).
* ``serving.client``: :class:`~serving.client.PredictionClient`, for this server and stock TF Serving alike
  (``tfrec predict``).
* ``serving.config``: models.config, batching parameters and monitoring config files for TF Serving.
* ``serving.manager`` (versions and policies), ``serving.loader`` (one loaded version), ``serving.handlers``
  (request validation and answers), ``serving.limits`` (rows and elements a request may claim),
  ``serving.workers`` (the threads that answer calls), ``serving.errors`` (status codes), ``serving.wire`` (the
  client's PredictRequest bytes).

The modules import TensorFlow and gRPC; ``import serving`` alone imports neither.
"""
