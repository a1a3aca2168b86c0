// The load generator, a child process of the bench runner so that it can be pinned to a core
// apart from the server. It runs autocannon on request (IPC) and answers with its own
// latency percentiles: autocannon's histogram keeps whole milliseconds, too coarse here, so
// every response time is kept at full resolution from its 'response' events.
import { Agent, request } from 'node:http'
import autocannon from 'autocannon'
import { percentile } from './stats'

export interface LoadRequest {
  method: 'GET' | 'POST'
  path: string
}

export interface LoadOptions {
  url: string
  requests: LoadRequest[]
  connections: number
  durationS: number
  /** Fixed arrival rate in requests per second for all connections; omit to saturate. */
  rate?: number
}

export interface LoadResult {
  responses: number
  errors: number
  timeouts: number
  non2xx: number
  statusCodes: Record<string, number>
  durationS: number
  rps: number
  latencyMs: { p50: number; p90: number; p99: number; max: number }
}

export type LoadMessage =
  | { type: 'run'; options: LoadOptions }
  | { type: 'fixed'; url: string; count: number }
  | { type: 'result'; result: LoadResult }
  | { type: 'fixed-result'; answered: number }
  | { type: 'error'; message: string }

/**
 * Exactly `count` GETs of `url`, one after another on one keep-alive connection: the same
 * work for every server, whatever its speed (the instruction-count bench runs under valgrind).
 * Resolves with the number answered 2xx; rejects on any other answer.
 */
export async function runFixed(url: string, count: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  let answered = 0
  try {
    for (let i = 0; i < count; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(url, { agent }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
          res.on('error', reject)
        })
        req.on('error', reject)
        req.end()
      })
      if (status < 200 || status > 299) throw new Error(`GET ${url} answered ${status}`)
      answered++
    }
  } finally {
    agent.destroy()
  }
  return answered
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = []
  const statusCodes: Record<string, number> = {}
  const started = performance.now()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationS,
        overallRate: options.rate,
        requests: options.requests,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    )
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      latencies.push(responseTimeMs)
      statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1
    })
  })
  const durationS = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  return {
    responses: latencies.length,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
    durationS,
    rps: latencies.length / durationS,
    latencyMs: {
      p50: percentile(latencies, 0.5),
      p90: percentile(latencies, 0.9),
      p99: percentile(latencies, 0.99),
      max: latencies.at(-1) ?? Number.NaN,
    },
  }
}

if (require.main === module) {
  if (process.send === undefined) throw new Error('start me with an IPC channel (fork)')
  process.on('message', (message: LoadMessage | { type: 'close' }) => {
    if (message.type === 'close') process.exit(0)
    if (message.type === 'fixed') {
      runFixed(message.url, message.count).then(
        (answered) => process.send?.({ type: 'fixed-result', answered } satisfies LoadMessage),
        (err: Error) =>
          process.send?.({ type: 'error', message: err.message } satisfies LoadMessage),
      )
      return
    }
    if (message.type !== 'run') return
    runLoad(message.options).then(
      (result) => process.send?.({ type: 'result', result } satisfies LoadMessage),
      (err: Error) => process.send?.({ type: 'error', message: err.message } satisfies LoadMessage),
    )
  })
  process.on('disconnect', () => process.exit(0))
}
