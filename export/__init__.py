"""SavedModel export for TF Serving: stable signatures, warmup requests, atomic integer versions, validation.

    from export import export_model, validate
    result = export_model(model, "models/ctr", schema, data_dir="data")   # -> models/ctr/<next version>
    report = validate(result.path, model, schema)                         # fresh process, stock ops, 1e-6
    # or validated before it is published (ExportValidationError, nothing published, when a check fails):
    result = export_model(model, "models/ctr", schema, data_dir="data", validate=True)

See :mod:`export.signatures` for the signature table.
"""

from export.exporter import ExportResult, ExportValidationError, export_model
from export.signatures import SignatureSet, task_outputs
from export.validate import ValidationReport, validate
from export.versions import list_versions, publish, remove_stale_staging, staging_dir
from export.warmup import example_from_row, read_records, serialize_rows

__all__ = ["ExportResult", "ExportValidationError", "SignatureSet", "ValidationReport", "example_from_row",
           "export_model", "list_versions", "publish", "read_records", "remove_stale_staging", "serialize_rows",
           "staging_dir", "task_outputs", "validate"]
