// One long-lived Python child process asked one JSON line at a time, answering one JSON line
// each, in order; an answer with `error` becomes a thrown Error. The exposition parser and the
// protobuf decoder are both such children.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'

// Debian's interpreter, where python3-prometheus-client and python3-protobuf install; a PATH
// python3 may be another.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

export class PythonChild {
  private readonly child: ChildProcessWithoutNullStreams
  private readonly answers: AsyncIterator<string>
  private queue: Promise<unknown> = Promise.resolve()

  /** `what` names the child in its errors. */
  constructor(
    private readonly what: string,
    args: string[],
  ) {
    this.child = spawn(PYTHON, args)
    this.child.stderr.setEncoding('utf8')
    let stderr = ''
    this.child.stderr.on('data', (chunk: string) => {
      stderr += chunk
    })
    this.child.on('exit', (code) => {
      if (code !== 0 && code !== null) process.stderr.write(`${what} exited ${code}: ${stderr}`)
    })
    this.answers = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]()
  }

  /** Sends `request`; its answer, after every earlier request's. */
  ask<Answer>(request: unknown): Promise<Answer> {
    const next = this.queue.then(async () => {
      this.child.stdin.write(`${JSON.stringify(request)}\n`)
      const { value, done } = await this.answers.next()
      if (done) throw new Error(`${this.what} exited`)
      const answer = JSON.parse(value) as Answer & { error?: string }
      if (answer.error !== undefined) throw new Error(`${this.what}: ${answer.error}`)
      return answer
    })
    this.queue = next.catch(() => undefined)
    return next
  }

  close(): void {
    this.child.stdin.end()
  }
}
