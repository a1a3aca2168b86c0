"""Decodes protobuf expositions with protoc's Python code for the official metrics.proto.

An independent decoder for the protobuf tests: protoc (Debian's protobuf-compiler) compiles
client_model's io/prometheus/client/metrics.proto, and Debian's python3-protobuf parses each
length-delimited MetricFamily with it. Nothing here shares code with protobufjs.

Started with the client_model include root as its argument. One JSON request a line on stdin,
{"bytes": "<base64>"}; one JSON answer a line on stdout: {"families": [...]} or {"error": "..."}.
Each family holds its name, help, type and unit, and its samples as the text format writes
them (a histogram's buckets, +Inf from the count when absent, _sum and _count; a summary's
quantiles, _sum and _count), each metric read from the field its family's type names, as
Prometheus reads it. Numbers are Python's repr of the double, so JSON carries them exactly.
"""
import base64
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf.json_format import MessageToDict

PROTO = "io/prometheus/client/metrics.proto"


def compile_schema(client_model_root):
    out = tempfile.mkdtemp(prefix="metrics-proto-")
    subprocess.run(
        ["protoc", f"-I{client_model_root}", "-I/usr/include", f"--python_out={out}", PROTO],
        check=True,
    )
    # Loaded by path: the generated package is named `io`, which is also Python's own module.
    path = Path(out) / "io/prometheus/client/metrics_pb2.py"
    spec = importlib.util.spec_from_file_location("prometheus_metrics_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pb = compile_schema(sys.argv[1])
T = pb.MetricType


def read_varint(data, at):
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def families_of(data):
    at = 0
    while at < len(data):
        length, at = read_varint(data, at)
        if at + length > len(data):
            raise ValueError("a message runs past the end")
        family = pb.MetricFamily()
        family.ParseFromString(data[at : at + length])
        at += length
        yield family


def num(value):
    return repr(float(value))


def exemplar_of(message, has):
    if not has:
        return None
    exemplar = {"labels": {l.name: l.value for l in message.label}, "value": num(message.value)}
    if message.HasField("timestamp"):
        timestamp = message.timestamp
        exemplar["timestampMs"] = timestamp.seconds * 1000 + timestamp.nanos // 1_000_000
    return exemplar


def count_of(float_count, integer_count):
    """A float count overrides the integer one when above zero (metrics.proto)."""
    return float_count if float_count > 0 else integer_count


def samples_of(family):
    samples = []
    name = family.name

    def add(sample, labels, value, exemplar=None, **magic):
        samples.append([sample, {**labels, **magic}, num(value), exemplar])

    for metric in family.metric:
        labels = {l.name: l.value for l in metric.label}
        if family.type == T.COUNTER:
            c = metric.counter
            add(name, labels, c.value, exemplar_of(c.exemplar, c.HasField("exemplar")))
        elif family.type == T.GAUGE:
            add(name, labels, metric.gauge.value)
        elif family.type == T.UNTYPED:
            add(name, labels, metric.untyped.value)
        elif family.type == T.SUMMARY:
            s = metric.summary
            for q in s.quantile:
                add(name, labels, q.value, quantile=num(q.quantile))
            add(f"{name}_sum", labels, s.sample_sum)
            add(f"{name}_count", labels, s.sample_count)
        elif family.type in (T.HISTOGRAM, T.GAUGE_HISTOGRAM):
            h = metric.histogram
            count = count_of(h.sample_count_float, h.sample_count)
            saw_inf = False
            for b in h.bucket:
                cumulative = count_of(b.cumulative_count_float, b.cumulative_count)
                saw_inf = saw_inf or b.upper_bound == float("inf")
                exemplar = exemplar_of(b.exemplar, b.HasField("exemplar"))
                add(f"{name}_bucket", labels, cumulative, exemplar, le=num(b.upper_bound))
            if not saw_inf:
                add(f"{name}_bucket", labels, count, le=num(float("inf")))
            add(f"{name}_sum", labels, h.sample_sum)
            add(f"{name}_count", labels, count)
    return samples


def native_of(family):
    """Each histogram metric's native-histogram fields, as the official message holds them."""
    if family.type not in (T.HISTOGRAM, T.GAUGE_HISTOGRAM):
        return []
    native = []
    for metric in family.metric:
        h = metric.histogram
        fields = MessageToDict(h, preserving_proto_field_name=True)
        for classic in ("sample_count", "sample_count_float", "sample_sum", "bucket"):
            fields.pop(classic, None)
        native.append(fields)
    return native


def family_of(family):
    return {
        "name": family.name,
        "help": family.help,
        "type": T.Name(family.type).lower(),
        "unit": family.unit,
        "samples": samples_of(family),
        "native": native_of(family),
    }


for line in sys.stdin:
    request = json.loads(line)
    try:
        data = base64.b64decode(request["bytes"])
        answer = {"families": [family_of(f) for f in families_of(data)]}
    except Exception as error:  # any decoding failure is the answer, not a crash
        answer = {"error": f"{type(error).__name__}: {error}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
