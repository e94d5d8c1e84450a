"""SavedModel export for TF Serving: stable signatures, warmup requests, atomic integer versions, validation.

    from export import export_model, validate
    result = export_model(model, "models/ctr", schema, data_dir="data")   # -> models/ctr/<next version>
    report = validate(result.path, model, schema)                         # fresh process, stock ops, 1e-6

See :mod:`export.signatures` for the signature table.
"""

from export.exporter import ExportResult, export_model
from export.signatures import SignatureSet, task_outputs
from export.validate import ValidationReport, validate
from export.versions import list_versions, publish, staging_dir
from export.warmup import example_from_row, read_records, serialize_rows

__all__ = ["ExportResult", "SignatureSet", "ValidationReport", "example_from_row", "export_model", "list_versions",
           "publish", "read_records", "serialize_rows", "staging_dir", "task_outputs", "validate"]
