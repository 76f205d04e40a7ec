#!/usr/bin/env python3
"""Checks constrained-decoding outputs with the jsonschema package (independent of lmx).

Usage: validate_json.py CASES.json, where the file holds [{"schema": ..., "output": "..."}].
Prints one line per output that is not JSON or does not validate; exit 1 if any, 2 when
the jsonschema package is missing (Debian: python3-jsonschema).
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("validate_json.py: the python3 jsonschema package is not installed")
    sys.exit(2)

with open(sys.argv[1], encoding="utf-8") as f:
    cases = json.load(f)
bad = 0
for i, case in enumerate(cases):
    try:
        value = json.loads(case["output"])
    except ValueError as e:
        print(f"case {i}: not JSON ({e}): {case['output']!r}")
        bad += 1
        continue
    validator = jsonschema.Draft202012Validator(case["schema"])
    errors = list(validator.iter_errors(value))
    if errors:
        print(f"case {i}: {errors[0].message}: {case['output']!r}")
        bad += 1
print(f"validate_json.py: {len(cases) - bad} of {len(cases)} outputs valid")
sys.exit(1 if bad else 0)
