"""Validates JSON payloads against a JSON Schema with the reference Python implementation
(`jsonschema`, installed by scripts/seed_clients.sh), so RTFM's published schemas are checked by
a validator that is not ours.

    validate.py SCHEMA_FILE < payloads.jsonl

prints one line per payload: `valid`, or `invalid: <the first error>`.
"""

import json
import sys

from jsonschema.validators import validator_for


def main(schema_path):
    with open(schema_path, encoding="utf-8") as schema_file:
        schema = json.load(schema_file)
    # The draft the schema names in "$schema".
    cls = validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    for line in sys.stdin:
        if not line.strip():
            continue
        errors = sorted(validator.iter_errors(json.loads(line)), key=lambda error: error.path)
        print("valid" if not errors else f"invalid: {errors[0].message}")


if __name__ == "__main__":
    main(sys.argv[1])
