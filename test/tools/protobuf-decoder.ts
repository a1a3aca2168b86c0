// An independent decoder for protobuf expositions: protoc's Python code for the official
// metrics.proto (protobuf_decoder.py), in one long-lived child process, asked one answer at a
// time. Its samples are in harness/protobuf.ts' Sample form, to compare with any format.
import { join } from 'node:path'
import type { Sample, SampleExemplar } from '../../harness/protobuf'
import { CLIENT_MODEL_DIR } from '../../harness/tools'
import { PythonChild } from './python-child'

export interface PythonFamily {
  name: string
  help: string
  type: string
  unit: string
  samples: Sample[]
  /** Each histogram metric's fields other than the classic ones, as protobuf's JSON names them. */
  native: Array<Record<string, unknown>>
}

type RawSample = [
  string,
  Record<string, string>,
  string,
  { labels: Record<string, string>; value: string; timestampMs?: number } | null,
]

export class ProtobufDecoder {
  private readonly child = new PythonChild('protobuf decoder', [
    join(__dirname, 'protobuf_decoder.py'),
    CLIENT_MODEL_DIR,
  ])

  /** The families in `bytes`; throws with the decoder's message if it cannot read them. */
  async decode(bytes: Uint8Array): Promise<PythonFamily[]> {
    const answer = await this.child.ask<{
      families?: Array<Omit<PythonFamily, 'samples'> & { samples: RawSample[] }>
    }>({ bytes: Buffer.from(bytes).toString('base64') })
    return (answer.families ?? []).map((family) => ({
      ...family,
      samples: family.samples.map(sampleOf),
    }))
  }

  close(): void {
    this.child.close()
  }
}

/** Python's repr of a double as a number. */
function pythonNumber(text: string): number {
  if (text === 'inf') return Number.POSITIVE_INFINITY
  if (text === '-inf') return Number.NEGATIVE_INFINITY
  if (text === 'nan') return Number.NaN
  return Number(text)
}

/** A sample, `le` and `quantile` written as JavaScript writes the number (as prom-client does). */
function sampleOf([name, labels, value, exemplar]: RawSample): Sample {
  const written = { ...labels }
  for (const magic of ['le', 'quantile']) {
    if (written[magic] === undefined) continue
    const bound = pythonNumber(written[magic])
    written[magic] = bound === Number.POSITIVE_INFINITY ? '+Inf' : String(bound)
  }
  const sample: Sample = { name, labels: written, value: pythonNumber(value) }
  if (exemplar !== null) {
    const one: SampleExemplar = { labels: exemplar.labels, value: pythonNumber(exemplar.value) }
    if (exemplar.timestampMs !== undefined) one.timestampMs = exemplar.timestampMs
    sample.exemplar = one
  }
  return sample
}
