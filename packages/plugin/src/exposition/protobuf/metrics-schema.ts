// The Prometheus protobuf exposition's messages, as a protobufjs reflection descriptor: the
// schema of `io/prometheus/client/metrics.proto` in prometheus/client_model (proto2, with the
// native-histogram fields, `MetricFamily.unit` and `Histogram.exemplars`), plus the one message
// it imports, `google/protobuf/timestamp.proto`'s Timestamp. Field names, numbers, types and
// labels are the official file's; test/cluster/protobuf-schema.test.ts compares them with that
// file as Debian ships it. Repeated scalars are unpacked, as proto2 has them by default.
import { Root, type Type } from 'protobufjs/light'

type FieldType =
  | 'double'
  | 'int32'
  | 'int64'
  | 'uint32'
  | 'uint64'
  | 'sint32'
  | 'sint64'
  | 'string'
  | 'MetricType'
  | 'LabelPair'
  | 'Exemplar'
  | 'Quantile'
  | 'Bucket'
  | 'BucketSpan'
  | 'Gauge'
  | 'Counter'
  | 'Summary'
  | 'Untyped'
  | 'Histogram'
  | 'Metric'
  | 'google.protobuf.Timestamp'

interface FieldDescriptor {
  type: FieldType
  id: number
  rule?: 'repeated'
}

const optional = (type: FieldType, id: number): FieldDescriptor => ({ type, id })
const repeated = (type: FieldType, id: number): FieldDescriptor => ({ type, id, rule: 'repeated' })
const TIMESTAMP = 'google.protobuf.Timestamp'

/** `io.prometheus.client`'s messages, field by field as metrics.proto declares them. */
export const CLIENT_MESSAGES: Record<string, Record<string, FieldDescriptor>> = {
  LabelPair: { name: optional('string', 1), value: optional('string', 2) },
  Gauge: { value: optional('double', 1) },
  Counter: {
    value: optional('double', 1),
    exemplar: optional('Exemplar', 2),
    created_timestamp: optional(TIMESTAMP, 3),
  },
  Quantile: { quantile: optional('double', 1), value: optional('double', 2) },
  Summary: {
    sample_count: optional('uint64', 1),
    sample_sum: optional('double', 2),
    quantile: repeated('Quantile', 3),
    created_timestamp: optional(TIMESTAMP, 4),
  },
  Untyped: { value: optional('double', 1) },
  Histogram: {
    sample_count: optional('uint64', 1),
    sample_count_float: optional('double', 4),
    sample_sum: optional('double', 2),
    bucket: repeated('Bucket', 3),
    created_timestamp: optional(TIMESTAMP, 15),
    schema: optional('sint32', 5),
    zero_threshold: optional('double', 6),
    zero_count: optional('uint64', 7),
    zero_count_float: optional('double', 8),
    negative_span: repeated('BucketSpan', 9),
    negative_delta: repeated('sint64', 10),
    negative_count: repeated('double', 11),
    positive_span: repeated('BucketSpan', 12),
    positive_delta: repeated('sint64', 13),
    positive_count: repeated('double', 14),
    exemplars: repeated('Exemplar', 16),
  },
  Bucket: {
    cumulative_count: optional('uint64', 1),
    cumulative_count_float: optional('double', 4),
    upper_bound: optional('double', 2),
    exemplar: optional('Exemplar', 3),
  },
  BucketSpan: { offset: optional('sint32', 1), length: optional('uint32', 2) },
  Exemplar: {
    label: repeated('LabelPair', 1),
    value: optional('double', 2),
    timestamp: optional(TIMESTAMP, 3),
  },
  Metric: {
    label: repeated('LabelPair', 1),
    gauge: optional('Gauge', 2),
    counter: optional('Counter', 3),
    summary: optional('Summary', 4),
    untyped: optional('Untyped', 5),
    histogram: optional('Histogram', 7),
    timestamp_ms: optional('int64', 6),
  },
  MetricFamily: {
    name: optional('string', 1),
    help: optional('string', 2),
    type: optional('MetricType', 3),
    metric: repeated('Metric', 4),
    unit: optional('string', 5),
  },
}

/** `io.prometheus.client.MetricType`. */
export const METRIC_TYPE = {
  COUNTER: 0,
  GAUGE: 1,
  SUMMARY: 2,
  UNTYPED: 3,
  HISTOGRAM: 4,
  GAUGE_HISTOGRAM: 5,
} as const

/** `google/protobuf/timestamp.proto`'s Timestamp, the only imported message. */
export const TIMESTAMP_FIELDS: Record<string, FieldDescriptor> = {
  seconds: optional('int64', 1),
  nanos: optional('int32', 2),
}

// A message without `edition` is read as proto3 by protobufjs (implicit presence, packed).
const fieldsOf = (fields: Record<string, FieldDescriptor>) => ({ edition: 'proto2', fields })

/** The schema as a protobufjs root: `io.prometheus.client.*` and `google.protobuf.Timestamp`. */
export const schemaRoot: Root = Root.fromJSON({
  nested: {
    io: {
      nested: {
        prometheus: {
          nested: {
            client: {
              nested: {
                MetricType: { edition: 'proto2', values: METRIC_TYPE },
                ...Object.fromEntries(
                  Object.entries(CLIENT_MESSAGES).map(([name, fields]) => [name, fieldsOf(fields)]),
                ),
              },
            },
          },
        },
      },
    },
    google: { nested: { protobuf: { nested: { Timestamp: fieldsOf(TIMESTAMP_FIELDS) } } } },
  },
})

/** The message the exposition is made of, length-delimited one after another. */
export const MetricFamilyType: Type = schemaRoot.lookupType('io.prometheus.client.MetricFamily')

/** The exposition's media type, as Prometheus asks for it and client_golang answers. */
export const PROTOBUF_CONTENT_TYPE =
  'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'
