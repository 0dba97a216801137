"""Writes all-MiniLM-L6-v2 (a BERT encoder) as an ONNX graph, from the same model.safetensors
and config.json the processor already uses, so ONNX Runtime can run it.

    python minilm_to_onnx.py MODEL_DIR OUTPUT.onnx

Needs numpy and onnx only (no PyTorch). The graph takes input_ids and attention_mask (int64,
[batch, sequence]) and returns sentence_embedding ([batch, hidden], float32): the mean of the
last hidden states over real tokens, L2-normalised -- what sentence-transformers computes with
its Transformer + Pooling(mean) + Normalize modules. Attention is ONNX Runtime's fused
com.microsoft.Attention operator; ONNX Runtime fuses the rest (MatMul+Add, Add+LayerNorm, Gelu)
when it loads the graph. The processor's parity test checks the vectors against
sentence-transformers' (cosine >= 0.999).
"""

import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_len))
        data = handle.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=DTYPES[info["dtype"]])
        tensors[name] = array.reshape(info["shape"]).copy()
    return tensors


def build(model_dir):
    with open(os.path.join(model_dir, "config.json")) as handle:
        config = json.load(handle)
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise SystemExit(f"{model_dir}: expected a BERT model with gelu, got {config}")
    weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    eps = float(config["layer_norm_eps"])

    initializers = []
    nodes = []

    def const(name, array):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, outputs, domain=None, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, domain=domain, **attrs))
        return outputs[0]

    def linear(x, prefix, out):
        weight = const(f"{prefix}.weight_t", weights[f"{prefix}.weight"].T)
        bias = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        product = node("MatMul", [x, weight], [f"{out}.matmul"])
        return node("Add", [product, bias], [out])

    def layer_norm(x, prefix, out):
        scale = const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        bias = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return node("LayerNormalization", [x, scale, bias], [out], axis=-1, epsilon=eps)

    # Embeddings: word + position + token type 0, then LayerNorm.
    word_table = const("word_embeddings", weights["embeddings.word_embeddings.weight"])
    position_table = const("position_embeddings", weights["embeddings.position_embeddings.weight"])
    token_type = const("token_type_0", weights["embeddings.token_type_embeddings.weight"][0])
    words = node("Gather", [word_table, "input_ids"], ["words"], axis=0)
    length = node("Shape", ["input_ids"], ["sequence_length"], start=1, end=2)
    zero = const("zero_1d", np.array([0], dtype=np.int64))
    position_vectors = node(
        "Slice", [position_table, zero, length, zero], ["position_vectors"]
    )
    summed = node("Add", [words, position_vectors], ["embeddings.sum1"])
    summed = node("Add", [summed, token_type], ["embeddings.sum2"])
    x = layer_norm(summed, "embeddings.LayerNorm", "embeddings.out")

    mask_i32 = node("Cast", ["attention_mask"], ["mask_i32"], to=TensorProto.INT32)

    for index in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{index}"
        qkv_weight = np.concatenate(
            [weights[f"{p}.attention.self.{part}.weight"].T for part in ("query", "key", "value")],
            axis=1,
        )
        qkv_bias = np.concatenate(
            [weights[f"{p}.attention.self.{part}.bias"] for part in ("query", "key", "value")]
        )
        attention = node(
            "Attention",
            [x, const(f"{p}.qkv.weight", qkv_weight), const(f"{p}.qkv.bias", qkv_bias), mask_i32],
            [f"{p}.attention"],
            domain="com.microsoft",
            num_heads=heads,
        )
        projected = linear(attention, f"{p}.attention.output.dense", f"{p}.attention.projected")
        residual = node("Add", [projected, x], [f"{p}.attention.residual"])
        x = layer_norm(residual, f"{p}.attention.output.LayerNorm", f"{p}.attention.out")
        inner = linear(x, f"{p}.intermediate.dense", f"{p}.intermediate")
        activated = node("Gelu", [inner], [f"{p}.gelu"], domain="com.microsoft")
        output = linear(activated, f"{p}.output.dense", f"{p}.output")
        residual = node("Add", [output, x], [f"{p}.output.residual"])
        x = layer_norm(residual, f"{p}.output.LayerNorm", f"{p}.out")

    # Mean pooling over real tokens, then L2 normalisation.
    mask_f = node("Cast", ["attention_mask"], ["mask_f32"], to=TensorProto.FLOAT)
    axes_last = const("axes_last", np.array([-1], dtype=np.int64))
    axes_one = const("axes_one", np.array([1], dtype=np.int64))
    mask_3d = node("Unsqueeze", [mask_f, axes_last], ["mask_3d"])
    masked = node("Mul", [x, mask_3d], ["masked"])
    total = node("ReduceSum", [masked, axes_one], ["token_sum"], keepdims=0)
    count = node("ReduceSum", [mask_f, axes_one], ["token_count"], keepdims=1)
    tiny = const("tiny", np.array(1e-9, dtype=np.float32))
    count = node("Max", [count, tiny], ["token_count_safe"])
    mean = node("Div", [total, count], ["mean"])
    squared = node("Mul", [mean, mean], ["mean_squared"])
    norm_sq = node("ReduceSum", [squared, axes_last], ["norm_squared"], keepdims=1)
    norm = node("Sqrt", [norm_sq], ["norm"])
    floor = const("norm_floor", np.array(1e-12, dtype=np.float32))
    norm = node("Max", [norm, floor], ["norm_safe"])
    node("Div", [mean, norm], ["sentence_embedding"])

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        producer_name="rtfm minilm_to_onnx.py",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: minilm_to_onnx.py MODEL_DIR OUTPUT.onnx")
    model = build(sys.argv[1])
    temporary = sys.argv[2] + ".partial"
    onnx.save(model, temporary)
    os.replace(temporary, sys.argv[2])


if __name__ == "__main__":
    main()
