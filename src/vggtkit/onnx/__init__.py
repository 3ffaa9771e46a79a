"""ONNX export of VGGT models (:func:`export_onnx`) and an onnxruntime-backed model with the PyTorch model's call
surface (:class:`OnnxVGGT`). The onnx, onnxscript and onnxruntime packages are imported only when used
(``pip install 'vggtkit[onnx]'``)."""

from vggtkit.onnx.export import ONNX_DTYPES, OnnxExportOptions, export_onnx
from vggtkit.onnx.metadata import OnnxModelInfo
from vggtkit.onnx.runtime import OnnxVGGT

__all__ = ["ONNX_DTYPES", "OnnxExportOptions", "OnnxModelInfo", "OnnxVGGT", "export_onnx"]
