#!/usr/bin/env bash
# Installs the Python packages the tests use to stand in for others: the Kafka client the
# seed's Python services use, in each version a mixed deployment may run (kafka-python 2.0.2 as
# the seed's requirements pin it, and the current 3.x), and the reference JSON Schema validator
# (jsonschema) that checks the schemas RTFM publishes. Each goes into a folder of its own under
# $RTFM_CACHE_DIR/seed-clients/ (`pip install --target`, no virtualenv needed; the tests put it
# on PYTHONPATH). Prints nothing but errors; idempotent.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

VERSIONS=(2.0.2 3.0.12)
require_tools python3
for version in "${VERSIONS[@]}"; do
  target="$RTFM_CACHE_DIR/seed-clients/kafka-python-$version"
  [ -f "$target/.complete" ] && continue
  rm -rf "$target"; mkdir -p "$target"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$target" \
      "kafka-python==$version" >&2 \
    || die "could not install kafka-python==$version from PyPI"
  touch "$target/.complete"
done
target="$RTFM_CACHE_DIR/seed-clients/jsonschema-4.23.0"
if [ ! -f "$target/.complete" ]; then
  rm -rf "$target"; mkdir -p "$target"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      --no-warn-conflicts --target "$target" "jsonschema==4.23.0" >&2 \
    || die "could not install jsonschema==4.23.0 from PyPI"
  touch "$target/.complete"
fi
