"""export: see :mod:`.onnx_export` (its names are re-exported here)."""

from .onnx_export import (
    DEFAULT_OPSET,
    MAX_SIDE,
    ExportResult,
    SegmentationGraph,
    TextGraph,
    check_export_arguments,
    check_opset,
    export_onnx,
    export_segmenter,
    export_text_encoder,
    logits_agreement,
    onnx_session,
    segmenter_parity,
    supported_opsets,
    text_parity,
)

__all__ = [
    "DEFAULT_OPSET",
    "ExportResult",
    "MAX_SIDE",
    "SegmentationGraph",
    "TextGraph",
    "check_export_arguments",
    "check_opset",
    "export_onnx",
    "export_segmenter",
    "export_text_encoder",
    "logits_agreement",
    "onnx_session",
    "segmenter_parity",
    "supported_opsets",
    "text_parity",
]
