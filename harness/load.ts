// Steady HTTP load for tests, to 127.0.0.1 only, bounded in count and time, with an honest
// tally of what failed: autocannon (fixed rate over a fixed set of connections), or Node's own
// keep-alive agent (a client that honours `Connection: close`).
import { Agent, request } from 'node:http'
import type { Socket } from 'node:net'
import autocannon from 'autocannon'

export interface LoadOptions {
  url: string
  /** Requests per second over all connections. */
  rate: number
  durationSeconds: number
  connections?: number
  path?: string
  /** Paths sent in turn instead of `path` (keep-alive load only). */
  paths?: readonly string[]
}

export interface LoadTally {
  /** Requests the load was asked to send (autocannon's own `requests.sent` over-counts). */
  sent: number
  /** Responses received, by status code. */
  statuses: Map<number, number>
  ok: number
  /** Responses with a status other than 2xx. */
  non2xx: number
  /** Connection errors and timeouts (each is a request that got no response). */
  errors: number
  timeouts: number
  /** Error codes of the connection errors, e.g. ECONNRESET. */
  errorCodes: Map<string, number>
  /** Requests with neither a response nor an error: lost on a connection without a trace. */
  unanswered: number
}

export interface RunningLoad {
  done: Promise<LoadTally>
  stop(): void
}

/** One client connection of a keep-alive load. */
export interface ClientConnection {
  /** The client's port: with the server's port, it names the connection on both sides. */
  localPort: number | undefined
  /** Responses received on it. */
  answered: number
  open: boolean
}

export interface KeepAliveLoad extends RunningLoad {
  /** Every connection the load has opened so far, in order. */
  connections(): readonly ClientConnection[]
}

/** Steady load at a fixed rate for a bounded time, to 127.0.0.1 only. */
export function startLoad(options: LoadOptions): RunningLoad {
  const target = new URL(options.path ?? '/', options.url)
  if (target.hostname !== '127.0.0.1') throw new Error(`load only to 127.0.0.1, not ${target}`)
  const statuses = new Map<number, number>()
  const errorCodes = new Map<string, number>()
  // A fixed number of requests rather than a duration: autocannon then waits for every answer,
  // so a request lost on a closing connection shows up as a timeout instead of vanishing.
  const amount = Math.round(options.rate * options.durationSeconds)
  let settle: (result: autocannon.Result) => void = () => {}
  let fail: (err: unknown) => void = () => {}
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    settle = resolve
    fail = reject
  })
  const instance = autocannon(
    {
      url: target.toString(),
      connections: options.connections ?? 10,
      overallRate: options.rate,
      amount,
      timeout: 10,
    },
    (err, result) => (err ? fail(err) : settle(result)),
  )
  instance.on('response', (_client, statusCode) => {
    statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1)
  })
  instance.on('reqError', (err: NodeJS.ErrnoException) => {
    const code = err.code ?? err.message
    errorCodes.set(code, (errorCodes.get(code) ?? 0) + 1)
  })
  const done = finished.then((result): LoadTally => {
    const answered = [...statuses.values()].reduce((a, b) => a + b, 0)
    const ok = [...statuses].filter(([s]) => s >= 200 && s < 300).reduce((a, [, n]) => a + n, 0)
    return {
      sent: amount,
      statuses,
      ok,
      non2xx: answered - ok,
      errors: result.errors,
      timeouts: result.timeouts,
      errorCodes,
      unanswered: amount - answered - result.errors,
    }
  })
  return { done, stop: () => instance.stop() }
}

/**
 * Steady load from Node's own HTTP client: a keep-alive agent with up to `connections` sockets,
 * used in turn (fifo), one request every 1/rate s for a bounded time. Unlike autocannon, which
 * writes its next request the moment a response ends, this client honours `Connection: close`,
 * as browsers, proxies and Prometheus do, so it shows what such clients see during a reload.
 * It records each connection it opens and the responses received on it: a connection is served
 * by one process, so a test can tell which answers came from a process it killed.
 */
export function startKeepAliveLoad(options: LoadOptions): KeepAliveLoad {
  const target = new URL(options.path ?? '/', options.url)
  if (target.hostname !== '127.0.0.1') throw new Error(`load only to 127.0.0.1, not ${target}`)
  const agent = new Agent({
    keepAlive: true,
    maxSockets: options.connections ?? 10,
    scheduling: 'fifo',
  })
  const statuses = new Map<number, number>()
  const errorCodes = new Map<string, number>()
  const amount = Math.round(options.rate * options.durationSeconds)
  let issued = 0
  let errors = 0
  let timeouts = 0
  let stopped = false
  const pending: Promise<void>[] = []
  const targets = (options.paths ?? [options.path ?? '/']).map((path) => new URL(path, options.url))
  const connections: ClientConnection[] = []
  const bySocket = new WeakMap<Socket, ClientConnection>()
  const connectionOf = (socket: Socket) => {
    let connection = bySocket.get(socket)
    if (connection === undefined) {
      const created = { localPort: socket.localPort, answered: 0, open: true }
      connection = created
      bySocket.set(socket, created)
      connections.push(created)
      socket.once('connect', () => {
        created.localPort = socket.localPort
      })
      socket.once('close', () => {
        created.open = false
      })
    }
    return connection
  }
  const one = (n: number) =>
    new Promise<void>((resolve) => {
      const url = targets[n % targets.length]
      let connection: ClientConnection | undefined
      const req = request(url, { agent, timeout: 10_000 }, (res) => {
        res.resume()
        res.on('end', () => {
          const status = res.statusCode ?? 0
          statuses.set(status, (statuses.get(status) ?? 0) + 1)
          if (connection !== undefined) connection.answered++
          resolve()
        })
      })
      req.on('socket', (socket) => {
        connection = connectionOf(socket)
      })
      req.on('timeout', () => {
        timeouts++
        req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }))
      })
      req.on('error', (err: NodeJS.ErrnoException) => {
        errors++
        const code = err.code ?? err.message
        errorCodes.set(code, (errorCodes.get(code) ?? 0) + 1)
        resolve()
      })
      req.end()
    })
  const started = performance.now()
  const done = new Promise<void>((resolve) => {
    const tick = () => {
      // Catch up to the schedule: the timer may fire late on a busy machine.
      const due = Math.min(
        amount,
        Math.floor(((performance.now() - started) / 1000) * options.rate) + 1,
      )
      while (!stopped && issued < due) {
        pending.push(one(issued))
        issued++
      }
      if (stopped || issued >= amount) resolve()
      else setTimeout(tick, 5)
    }
    tick()
  })
    .then(() => Promise.all(pending))
    .then((): LoadTally => {
      agent.destroy()
      const answered = [...statuses.values()].reduce((a, b) => a + b, 0)
      const ok = [...statuses].filter(([s]) => s >= 200 && s < 300).reduce((a, [, n]) => a + n, 0)
      return {
        sent: issued,
        statuses,
        ok,
        non2xx: answered - ok,
        errors,
        timeouts,
        errorCodes,
        unanswered: issued - answered - errors,
      }
    })
  return {
    done,
    stop: () => {
      stopped = true
    },
    connections: () => connections,
  }
}

export function describeTally(t: LoadTally): string {
  const codes = [...t.statuses].map(([s, n]) => `${s}:${n}`).join(' ')
  const errs = [...t.errorCodes].map(([c, n]) => `${c}:${n}`).join(' ')
  return `sent ${t.sent}, 2xx ${t.ok}, non-2xx ${t.non2xx} [${codes}], errors ${t.errors} (timeouts ${t.timeouts}) [${errs}], unanswered ${t.unanswered}`
}

/** A mix of the demo routes: 200s, 201s, 404s (matched and unmatched), 500s and slow ones. */
export const ROUTE_MIX: autocannon.Request[] = [
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/items/1' },
  { method: 'GET', path: '/items/2' },
  { method: 'GET', path: '/items/99' },
  {
    method: 'POST',
    path: '/items',
    headers: { 'content-type': 'application/json' },
    body: '{"name":"fig"}',
  },
  { method: 'GET', path: '/slow?ms=20' },
  { method: 'GET', path: '/error' },
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/no-such-route' },
  { method: 'GET', path: '/health' },
]

/** Bounded load on 127.0.0.1 only: `rate` req/s for `seconds`, cycling through ROUTE_MIX. */
export function driveRouteMix(
  baseUrl: string,
  rate: number,
  seconds: number,
  connections = 10,
): Promise<autocannon.Result> {
  return startRouteMix(baseUrl, rate, seconds, connections).done
}

/**
 * The same load, stoppable: it ends after `seconds` at the latest, or at `stop()`, whichever
 * comes first; `done` resolves with autocannon's result either way.
 */
export function startRouteMix(
  baseUrl: string,
  rate: number,
  seconds: number,
  connections = 10,
): { done: Promise<autocannon.Result>; stop(): void } {
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(baseUrl)) {
    throw new Error(`load only goes to 127.0.0.1, not ${baseUrl}`)
  }
  let instance: autocannon.Instance | undefined
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: baseUrl,
        connections,
        overallRate: rate,
        duration: seconds,
        timeout: 10,
        requests: ROUTE_MIX,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    )
  })
  return { done, stop: () => instance?.stop() }
}
