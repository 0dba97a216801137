"""Writes an int8 copy of the processor's ONNX graph: ONNX Runtime's dynamic quantization
(the weights of every MatMul and fused Attention as signed 8-bit integers with one scale per
output channel, activations quantized at run time). Per-channel scales keep the vectors close
to float32's (cosine to sentence-transformers' on the 12 reference sentences: lowest 0.965,
mean 0.991; one scale per tensor: 0.871 / 0.952, at the same speed). Used with EMBEDDING_PRECISION=int8; the README's Benchmarks section has what it
costs in retrieval quality and what it gains in speed and memory.

    python quantize_int8.py MODEL.onnx OUTPUT.onnx

Deterministic: the same input and pinned onnx/onnxruntime give the same bytes (model.sh checks
the sha256).
"""

import sys

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic


def main():
    source, target = sys.argv[1], sys.argv[2]
    quantize_dynamic(
        source,
        target,
        weight_type=QuantType.QInt8,
        per_channel=True,
        # The fused com.microsoft.Attention nodes defeat shape inference; their weights are
        # float32 like everything else in the graph.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


if __name__ == "__main__":
    main()
