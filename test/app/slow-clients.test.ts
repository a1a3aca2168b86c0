// Slow and idle clients against the real app on a loopback port. Connections that trickle their
// headers (slowloris) or body, or sit idle, are closed by the server's own timeouts, while the
// app keeps answering everyone else. Short timeouts keep it brief; production uses the defaults.
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, test } from 'node:test'
import { httpGet, waitFor } from '../../harness/net'
import { build, listenOnLoopback } from '../helper'

const SLOW_HEADERS = 150
const SLOW_BODIES = 20
const IDLE = 20
const SILENT = 20

const sockets: Socket[] = []
after(() => {
  for (const socket of sockets) socket.destroy()
})

interface Watched {
  kind: string
  closed: boolean
  firstResponse: string
}

/** Opens a connection that writes `first`, then one more byte every 300 ms until closed. */
function trickle(port: number, kind: string, first: string, drip?: string): Watched {
  const watched: Watched = { kind, closed: false, firstResponse: '' }
  const socket = connect(port, '127.0.0.1')
  sockets.push(socket)
  socket.on('error', () => {})
  socket.on('data', (chunk) => {
    watched.firstResponse ||= chunk.toString('latin1').split('\r\n')[0]
  })
  socket.on('close', () => {
    watched.closed = true
    clearInterval(timer)
  })
  if (first) socket.write(first)
  const timer = setInterval(() => {
    if (drip && !socket.destroyed) socket.write(drip)
  }, 300)
  return watched
}

test('slow and idle connections are closed by the server, the service keeps answering', {
  timeout: 120_000,
}, async (t) => {
  const app = await build(t, {
    HTTP_HEADERS_TIMEOUT_MS: '2000',
    HTTP_REQUEST_TIMEOUT_MS: '4000',
    HTTP_KEEP_ALIVE_TIMEOUT_MS: '2000',
    SLOW_MAX_MS: '1000',
  })
  const { port, url } = await listenOnLoopback(app)

  const watched: Watched[] = []
  for (let i = 0; i < SLOW_HEADERS; i++) {
    watched.push(trickle(port, 'slow headers', 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'a'))
  }
  for (let i = 0; i < SLOW_BODIES; i++) {
    const head = 'POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
    watched.push(trickle(port, 'slow body', `${head}Content-Length: 1000\r\n\r\n{"name":"`, 'a'))
  }
  for (let i = 0; i < SILENT; i++) watched.push(trickle(port, 'silent', ''))
  for (let i = 0; i < IDLE; i++) {
    watched.push(trickle(port, 'idle keep-alive', 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n'))
  }

  // While they hold their connections, everyone else is served.
  let served = 0
  for (let i = 0; i < 20; i++) {
    const res = await httpGet(`${url}/items/1`)
    assert.equal(res.status, 200)
    served++
  }

  await waitFor(
    'the server to close every slow or idle connection',
    async () => watched.every((w) => w.closed),
    { timeoutMs: 60_000, intervalMs: 250 },
  )
  const byKind = new Map<string, string[]>()
  for (const w of watched) byKind.set(w.kind, [...(byKind.get(w.kind) ?? []), w.firstResponse])
  const summary = [...byKind]
    .map(
      ([kind, firsts]) =>
        `${kind}: ${firsts.length} closed, first lines ${[...new Set(firsts)].join(' / ') || '(none)'}`,
    )
    .join('; ')
  t.diagnostic(`${summary}; normal requests served meanwhile: ${served}`)

  // Trickled headers and bodies are cut off with 408; idle keep-alive connections simply end
  // after their answer; silent ones get 408 too once the header timeout passes.
  assert.ok(byKind.get('slow headers')?.every((line) => line.startsWith('HTTP/1.1 408')))
  assert.ok(byKind.get('slow body')?.every((line) => line.startsWith('HTTP/1.1 408')))
  assert.ok(byKind.get('idle keep-alive')?.every((line) => line.startsWith('HTTP/1.1 200')))
  assert.ok(byKind.get('silent')?.every((line) => line.startsWith('HTTP/1.1 408')))
  assert.equal((await httpGet(`${url}/health`)).status, 200)
})
