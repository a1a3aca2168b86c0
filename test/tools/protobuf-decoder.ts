// An independent decoder for protobuf expositions: protoc's Python code for the official
// metrics.proto (protobuf_decoder.py), in one long-lived child process, asked one answer at a
// time. Its samples are in harness/protobuf.ts' Sample form, to compare with any format.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Sample, SampleExemplar } from '../../harness/protobuf'
import { CLIENT_MODEL_DIR } from '../../harness/tools'

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

// Debian's interpreter, where python3-protobuf installs; a PATH python3 may be another.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

export class ProtobufDecoder {
  private readonly child: ChildProcessWithoutNullStreams
  private readonly answers: AsyncIterator<string>
  private queue: Promise<unknown> = Promise.resolve()

  constructor() {
    this.child = spawn(PYTHON, [join(__dirname, 'protobuf_decoder.py'), CLIENT_MODEL_DIR])
    this.child.stderr.setEncoding('utf8')
    let stderr = ''
    this.child.stderr.on('data', (chunk: string) => {
      stderr += chunk
    })
    this.child.on('exit', (code) => {
      if (code !== 0 && code !== null)
        process.stderr.write(`protobuf decoder exited ${code}: ${stderr}`)
    })
    this.answers = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]()
  }

  /** The families in `bytes`; throws with the decoder's message if it cannot read them. */
  decode(bytes: Uint8Array): Promise<PythonFamily[]> {
    const next = this.queue.then(async () => {
      this.child.stdin.write(
        `${JSON.stringify({ bytes: Buffer.from(bytes).toString('base64') })}\n`,
      )
      const { value, done } = await this.answers.next()
      if (done) throw new Error('protobuf decoder exited')
      const answer = JSON.parse(value) as {
        families?: Array<Omit<PythonFamily, 'samples'> & { samples: RawSample[] }>
        error?: string
      }
      if (answer.error !== undefined) throw new Error(`protobuf decoder: ${answer.error}`)
      return (answer.families ?? []).map((family) => ({
        ...family,
        samples: family.samples.map(sampleOf),
      }))
    })
    this.queue = next.catch(() => undefined)
    return next
  }

  close(): void {
    this.child.stdin.end()
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
