// Shutdown with slow and idle clients: a connection whose client is still sending its headers,
// and an idle keep-alive one, are closed by the drain's deadline, so a stop ends within the
// grace and the process exits 0. Real sockets on 127.0.0.1; no PM2.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import Fastify from 'fastify'
import { freePort, waitFor } from '../../harness/net'
import { killAll } from '../../harness/pm2'
import { ROOT } from '../../harness/stack'
import { ConnectionDrain } from '../../src/lib/connection-drain'

/** A client that sends a request line, then one header byte every `everyMs`, never finishing. */
function slowHeaders(port: number, everyMs: number) {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ')
  const timer = setInterval(() => {
    if (!socket.destroyed) socket.write('a')
  }, everyMs)
  closed.then(() => clearInterval(timer))
  return { socket, closed, stop: () => socket.destroy() }
}

/** A keep-alive connection that served one request and now sits idle. */
async function idleKeepAlive(port: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const socket = await new Promise<Socket>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/health', agent }, (res) => {
      res.resume()
      res.on('end', () => resolve(req.socket as Socket))
    })
    req.on('error', reject)
    req.end()
  })
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  return { closed, stop: () => agent.destroy() }
}

test('the drain closes a client still sending headers and an idle keep-alive one by its deadline', async () => {
  const app = Fastify()
  app.get('/health', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const serverSockets: Socket[] = []
  app.server.on('connection', (socket: Socket) => serverSockets.push(socket))
  // Checks every 50 ms; the slow client sends a byte every 10 ms, so it never looks idle.
  const drain = new ConnectionDrain(app.server, 50)
  const slow = slowHeaders(port, 10)
  const idle = await idleKeepAlive(port)
  try {
    await waitFor('both connections accepted', async () => serverSockets.length === 2)
    await drain.drain({ acceptMs: 300, hardStopMs: 5000 })
    // Closed by the drain itself, not later by Fastify or the header timeout.
    assert.deepEqual(
      serverSockets.map((s) => s.destroyed),
      [true, true],
    )
    await Promise.all([slow.closed, idle.closed])
  } finally {
    slow.stop()
    idle.stop()
    await app.close()
  }
})

test('SIGTERM with a client still sending headers: the server exits 0 within its grace', async () => {
  const port = await freePort()
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'server.js')], {
    env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  let slow: ReturnType<typeof slowHeaders> | undefined
  try {
    await waitFor('the server to listen', async () => {
      const probe = connect(port, '127.0.0.1')
      return new Promise<boolean>((resolve) => {
        probe.on('connect', () => resolve(true)).on('error', () => resolve(false))
      }).finally(() => probe.destroy())
    })
    // One byte every 100 ms: far inside the 10 s header timeout, and never idle for the drain.
    slow = slowHeaders(port, 100)
    await new Promise((resolve) => setTimeout(resolve, 300))
    child.kill('SIGTERM')
    assert.equal(await exited, 0, stderr)
    await slow.closed
  } finally {
    slow?.stop()
    if (child.pid) await killAll([child.pid])
  }
})
