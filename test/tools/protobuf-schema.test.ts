// Our protobufjs descriptor of the protobuf exposition against the official schema: the
// metrics.proto of prometheus/client_model as Debian ships it (scripts/fetch-prometheus3.sh),
// parsed by protobufjs' own .proto parser. Every message, field name, number, type, label and
// packing, and every MetricType value, must be the same.
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { Enum, type Field, Namespace, parse, Root, Type } from 'protobufjs'
import { METRICS_PROTO } from '../../harness/tools'
import { schemaRoot } from '../../packages/plugin/src/exposition/protobuf/metrics-schema'

const PACKAGE = 'io.prometheus.client'
const TIMESTAMP_PROTO = '/usr/include/google/protobuf/timestamp.proto'

/** The official files parsed into one root; metrics.proto needs the Timestamp it imports. */
function officialRoot(...files: string[]): Root {
  const root = new Root()
  for (const file of files) {
    assert.ok(existsSync(file), `${file} is missing: run scripts/ensure-test-tools.sh`)
    parse(readFileSync(file, 'utf8'), root, { keepCase: true })
  }
  root.resolveAll()
  return root
}

interface FieldShape {
  id: number
  type: string
  label: 'optional' | 'required' | 'repeated'
  packed: boolean
}

/** Each field of each message in `namespace`, its type named in full when it is not scalar. */
function shapes(root: Root, namespace: string): Record<string, Record<string, FieldShape>> {
  const out: Record<string, Record<string, FieldShape>> = {}
  const found = root.lookup(namespace)
  assert.ok(found instanceof Namespace, `${namespace} is a namespace`)
  for (const nested of found.nestedArray) {
    if (!(nested instanceof Type)) continue
    out[nested.name] = Object.fromEntries(
      nested.fieldsArray.map((field: Field) => [
        field.name,
        {
          id: field.id,
          type: field.resolvedType?.fullName.replace(/^\./, '') ?? field.type,
          label: field.repeated ? 'repeated' : field.required ? 'required' : 'optional',
          packed: field.repeated && field.packed,
        },
      ]),
    )
  }
  return out
}

function enumValues(root: Root, name: string): Record<string, number> {
  const found = root.lookup(name)
  assert.ok(found instanceof Enum, `${name} is an enum`)
  return { ...found.values }
}

test("the descriptor's messages are metrics.proto's, field for field", () => {
  const official = officialRoot(TIMESTAMP_PROTO, METRICS_PROTO)
  const ours = shapes(schemaRoot, PACKAGE)
  const theirs = shapes(official, PACKAGE)
  assert.deepEqual(ours, theirs)
  // The newest schema: native histograms, their exemplars, MetricFamily.unit.
  assert.equal(theirs.Histogram.exemplars.id, 16)
  assert.equal(theirs.MetricFamily.unit.id, 5)
  assert.deepEqual(
    enumValues(schemaRoot, `${PACKAGE}.MetricType`),
    enumValues(official, `${PACKAGE}.MetricType`),
  )
})

test('repeated scalars are unpacked, as proto2 has them (native histogram deltas and counts)', () => {
  const histogram = shapes(schemaRoot, PACKAGE).Histogram
  for (const name of ['negative_delta', 'negative_count', 'positive_delta', 'positive_count']) {
    assert.deepEqual(
      { label: histogram[name].label, packed: histogram[name].packed },
      { label: 'repeated', packed: false },
      name,
    )
  }
})

test('the imported Timestamp is google/protobuf/timestamp.proto’s', () => {
  assert.deepEqual(
    shapes(schemaRoot, 'google.protobuf').Timestamp,
    shapes(officialRoot(TIMESTAMP_PROTO), 'google.protobuf').Timestamp,
  )
})
