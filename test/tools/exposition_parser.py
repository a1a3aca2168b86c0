"""Parses expositions with the official Python client's parsers, for the exposition tests.

One JSON request a line on stdin, {"format": "openmetrics" | "prometheus", "text": ...}; one
JSON answer a line on stdout: {"families": [...]} or {"error": "..."}. The OpenMetrics parser
is strict (one block per family, no blank line, a final # EOF, valid histograms); the text
format parser is lax but keeps every sample with its labels.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus


def family(metric):
    return {
        "name": metric.name,
        "help": metric.documentation,
        "type": metric.type,
        "unit": metric.unit,
        # Values as text, so that JSON carries every float exactly.
        "samples": [[s.name, s.labels, repr(float(s.value))] for s in metric.samples],
    }


for line in sys.stdin:
    request = json.loads(line)
    parse = parse_openmetrics if request["format"] == "openmetrics" else parse_prometheus
    try:
        answer = {"families": [family(m) for m in parse(request["text"])]}
    except Exception as error:  # any parse failure is the answer, not a crash
        answer = {"error": f"{type(error).__name__}: {error}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
