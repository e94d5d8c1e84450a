"""The CombineFns of the row pipelines, now in :mod:`pipelines.common.combiners` (re-exported here)."""

from pipelines.common.combiners import (BUFFER_ROWS, MergeAccumulatorsFn, PipelineStatsFn, ReasonCountFn,  # noqa: F401
                                        RowsInFn, ScaleCombineFn, SplitCountFn, TrainStatsFn, VocabAccumulator,
                                        VocabCombineFn, vocabulary)
