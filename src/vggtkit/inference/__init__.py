"""How a forward pass runs: the caller's options, the execution plan the models follow, and running for inference.

This package is a leaf: it imports torch and :mod:`vggtkit.utils` only, never a model.
"""

from vggtkit.inference.options import InferenceOptions
from vggtkit.inference.plan import ExecutionPlan, ModelDims, plan_inference
from vggtkit.inference.run import as_options, infer, weights_nbytes

__all__ = [
    "ExecutionPlan",
    "InferenceOptions",
    "ModelDims",
    "as_options",
    "infer",
    "plan_inference",
    "weights_nbytes",
]
