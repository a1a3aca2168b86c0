// The drain under the traffic a stop meets: answers Fastify sends at once (a 404, a 400), a
// request in flight when the stop begins, a new request on an old keep-alive connection, and a
// request that outlasts the budget. Real sockets on 127.0.0.1, the real app's HTTP options.
import assert from 'node:assert/strict'
import { Agent, type IncomingHttpHeaders, request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { after, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { ConnectionDrain } from '../../src/lib/connection-drain'

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  socket: Socket
}

const uncaught: Error[] = []
const onUncaught = (err: Error) => uncaught.push(err)
process.on('uncaughtException', onUncaught)
after(() => process.off('uncaughtException', onUncaught))

async function startApp(
  idleCheckMs = 50,
): Promise<{ app: FastifyInstance; port: number; drain: ConnectionDrain }> {
  const app = Fastify()
  app.get('/ok', async () => ({ ok: true }))
  app.get('/slow', async (req) => {
    const ms = Number((req.query as { ms?: string }).ms ?? 0)
    await new Promise((resolve) => setTimeout(resolve, ms))
    return { slept: ms }
  })
  app.post('/items', { schema: { body: { type: 'object', required: ['name'] } } }, async () => ({}))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  return { app, port, drain: new ConnectionDrain(app.server, idleCheckMs) }
}

function send(
  port: number,
  agent: Agent,
  path: string,
  options: { method?: string; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        agent,
        method: options.method ?? 'GET',
        headers: options.body ? { 'content-type': 'application/json' } : {},
      },
      (res) => {
        res.resume()
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            socket: req.socket as Socket,
          }),
        )
      },
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

test('answers Fastify sends at once during a drain (404, 400) close their connection and throw nothing', async () => {
  const { app, port, drain } = await startApp()
  const first = new Agent({ keepAlive: true, maxSockets: 1 })
  const second = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    const kept = [await send(port, first, '/ok'), await send(port, second, '/ok')]
    assert.deepEqual(
      kept.map((answer) => answer.headers.connection),
      ['keep-alive', 'keep-alive'],
    )
    const draining = drain.drain({ acceptMs: 2000, hardStopMs: 5000 })
    // Each reuses its kept-alive connection: requests arriving on an old connection mid-drain.
    const notFound = await send(port, first, '/no-such-route')
    const badBody = await send(port, second, '/items', { method: 'POST', body: '{}' })
    assert.deepEqual(
      [notFound, badBody].map((a) => [a.status, a.headers.connection]),
      [
        [404, 'close'],
        [400, 'close'],
      ],
    )
    assert.deepEqual(
      [notFound.socket, badBody.socket],
      kept.map((answer) => answer.socket),
    )
    await draining
    assert.deepEqual(uncaught, [])
  } finally {
    first.destroy()
    second.destroy()
    await app.close()
  }
})

test('a request in flight when the drain starts is answered with Connection: close', async () => {
  const { app, port, drain } = await startApp()
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    await send(port, agent, '/ok')
    const slow = send(port, agent, '/slow?ms=300')
    // The request has reached the server (its connection has read it) before the drain starts.
    await new Promise((resolve) => setTimeout(resolve, 100))
    const draining = drain.drain({ acceptMs: 2000, hardStopMs: 5000 })
    const answer = await slow
    assert.equal(answer.status, 200)
    assert.equal(answer.headers.connection, 'close')
    await draining
  } finally {
    agent.destroy()
    await app.close()
  }
})

test('at acceptMs an idle connection is closed, and a request in flight still ends', async () => {
  // No idle check within the test: only acceptMs can close the idle connection.
  const { app, port, drain } = await startApp(60_000)
  const busy = new Agent({ keepAlive: true, maxSockets: 1 })
  const idle = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    const idleAnswer = await send(port, idle, '/ok')
    const idleClosed = new Promise<void>((resolve) => idleAnswer.socket.once('close', resolve))
    const slow = send(port, busy, '/slow?ms=400')
    await new Promise((resolve) => setTimeout(resolve, 50))
    await drain.drain({ acceptMs: 100, hardStopMs: 5000 })
    await idleClosed
    const answer = await slow
    assert.equal(answer.status, 200)
    assert.equal(answer.headers.connection, 'close')
  } finally {
    busy.destroy()
    idle.destroy()
    await app.close()
  }
})

test('the hard stop cuts a request that outlasts the budget and says how many it cut', async () => {
  const { app, port, drain } = await startApp()
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    const slow = send(port, agent, '/slow?ms=5000').then(
      () => 'answered',
      (err: NodeJS.ErrnoException) => err.code,
    )
    await new Promise((resolve) => setTimeout(resolve, 100))
    let cut = 0
    await drain.drain({ acceptMs: 100, hardStopMs: 300, onHardStop: (n) => (cut = n) })
    // The drain resolved at acceptMs with the slow request still running; the hard stop follows.
    assert.equal(await slow, 'ECONNRESET')
    assert.equal(cut, 1)
  } finally {
    agent.destroy()
    await app.close()
  }
})

/** Blocks the event loop, as a worker busy rendering or writing its handover does. */
function busyFor(ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end);
}

/**
 * A client reuses its kept-alive connection mid-drain at `writeAtMs` while the worker is busy
 * for `busyMs`: a close due in that time (an idle check, or acceptMs) comes due with the
 * request unread, as timers run before the event loop reads sockets. What the client gets.
 */
async function reuseWhileBusy(
  idleCheckMs: number,
  acceptMs: number,
  writeAtMs: number,
  busyMs: number,
): Promise<{ ended: string; received: string }> {
  const { app, port, drain } = await startApp(idleCheckMs)
  const client = connect(port, '127.0.0.1')
  let received = ''
  client.setEncoding('utf8')
  client.on('data', (chunk: string) => {
    received += chunk
  })
  const ended = new Promise<string>((resolve) => {
    client.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
    client.on('close', () => resolve('closed'))
  })
  try {
    client.write('GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\n')
    while (!received.endsWith('{"ok":true}')) await new Promise((resolve) => setTimeout(resolve, 5))
    assert.match(received, /^HTTP\/1\.1 200 OK\r\n/)
    assert.match(received, /\r\nConnection: keep-alive\r\n/i)
    received = ''
    const draining = drain.drain({ acceptMs, hardStopMs: 8000 })
    await new Promise((resolve) => setTimeout(resolve, writeAtMs))
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        client.write('GET /no-such-route HTTP/1.1\r\nHost: localhost\r\n\r\n')
        busyFor(busyMs)
        resolve()
      }),
    )
    const result = { ended: await ended, received }
    await draining
    return result
  } finally {
    client.destroy()
    await app.close()
  }
}

test('a request that reaches an idle connection while the worker is busy is answered with Connection: close, not reset', async () => {
  // One idle check finds the connection idle; the next, a whole interval later, would close
  // it, and comes due while the worker is busy with the request already sent.
  const byIdleCheck = await reuseWhileBusy(300, 5000, 450, 300)
  // acceptMs comes due while the worker is busy with the request already sent.
  const byAcceptMs = await reuseWhileBusy(60_000, 450, 300, 300)
  for (const { ended, received } of [byIdleCheck, byAcceptMs]) {
    assert.equal(ended, 'closed')
    assert.match(received, /^HTTP\/1\.1 404 Not Found\r\n/)
    assert.match(received, /\r\nConnection: close\r\n/i)
  }
  assert.deepEqual(uncaught, [])
})
