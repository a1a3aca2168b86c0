// A real parser for both exposition formats: the official Python client's, in one long-lived
// child process (Debian's python3-prometheus-client), asked one text at a time.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { TextFormat } from '../../packages/plugin/src/cluster/exposition'

export interface ParsedFamily {
  name: string
  help: string
  type: string
  unit: string
  /** [sample name, labels, value] in text order. */
  samples: Array<[string, Record<string, string>, string]>
}

// Debian's interpreter, where python3-prometheus-client installs; a PATH python3 may be another.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

export class ExpositionParser {
  private readonly child: ChildProcessWithoutNullStreams
  private readonly answers: AsyncIterator<string>
  private queue: Promise<unknown> = Promise.resolve()

  constructor() {
    this.child = spawn(PYTHON, [join(__dirname, 'exposition_parser.py')])
    this.child.stderr.setEncoding('utf8')
    let stderr = ''
    this.child.stderr.on('data', (chunk: string) => {
      stderr += chunk
    })
    this.child.on('exit', (code) => {
      if (code !== 0 && code !== null)
        process.stderr.write(`exposition parser exited ${code}: ${stderr}`)
    })
    this.answers = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]()
  }

  /** The families in `text`; throws with the parser's message if it rejects the text. */
  parse(text: string, format: TextFormat): Promise<ParsedFamily[]> {
    const next = this.queue.then(async () => {
      this.child.stdin.write(`${JSON.stringify({ format, text })}\n`)
      const { value, done } = await this.answers.next()
      if (done) throw new Error('exposition parser exited')
      const answer = JSON.parse(value) as { families?: ParsedFamily[]; error?: string }
      if (answer.error !== undefined) throw new Error(`${format} parser: ${answer.error}`)
      return answer.families as ParsedFamily[]
    })
    this.queue = next.catch(() => undefined)
    return next
  }

  close(): void {
    this.child.stdin.end()
  }
}
