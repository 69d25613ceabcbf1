"""export: see :mod:`.onnx_export` (its names are re-exported here)."""

from .onnx_export import (
    DEFAULT_OPSET,
    ExportResult,
    SegmentationGraph,
    TextGraph,
    export_onnx,
    export_segmenter,
    export_text_encoder,
    logits_agreement,
    onnx_session,
    segmenter_parity,
    text_parity,
)

__all__ = [
    "DEFAULT_OPSET",
    "ExportResult",
    "SegmentationGraph",
    "TextGraph",
    "export_onnx",
    "export_segmenter",
    "export_text_encoder",
    "logits_agreement",
    "onnx_session",
    "segmenter_parity",
    "text_parity",
]
