// Junk traffic against the real app on a loopback port: thousands of requests to unique random
// paths, odd methods, overlong URLs and headers, malformed or oversized bodies. Each gets its
// 4xx with a JSON body, the app keeps answering, and /metrics grows by a bounded set of series,
// never one per path.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { test } from 'node:test'
import { parseExposition, scrape, seriesKeys } from '../../harness/exposition'
import { httpGet } from '../../harness/net'
import { build, listenOnLoopback } from '../helper'

const UNIQUE_PATHS = 2000
const CONCURRENCY = 16
const ODD_METHODS = ['PROPFIND', 'MKCOL', 'PURGE', 'TRACE', 'DELETE', 'PATCH', 'LOCK', 'FOO']
const ROUTES = ['/', '/items/:id', '/items', '/slow', '/error', '/health', '__unmatched__']

interface JunkCase {
  what: string
  status: number
  send: () => Promise<{ status: number; headers: Record<string, unknown>; body: string }>
}

/** One raw request on its own connection, for what Node's client refuses to send. */
function rawRequest(port: number, data: string) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>(
    (resolve, reject) => {
      const socket = connect(port, '127.0.0.1')
      let text = ''
      socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')))
      socket.on('data', (chunk) => {
        text += chunk.toString('latin1')
      })
      socket.on('error', reject)
      socket.on('close', () => {
        const [head, body = ''] = text.split('\r\n\r\n')
        const [statusLine, ...lines] = head.split('\r\n')
        const headers: Record<string, unknown> = {}
        for (const line of lines) {
          const i = line.indexOf(':')
          headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim()
        }
        resolve({ status: Number(statusLine.split(' ')[1]), headers, body })
      })
      socket.end(data)
    },
  )
}

async function pool<T>(items: T[], concurrency: number, run: (item: T) => Promise<void>) {
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await run(items[next++])
    }),
  )
}

test('junk traffic gets JSON 4xx answers, crashes nothing and adds bounded series', async (t) => {
  const app = await build(t)
  const running = await listenOnLoopback(app)
  const base = running.url
  // One ordinary request per route kind first, so the baseline has the normal series.
  await httpGet(`${base}/`)
  const seriesBefore = new Set(seriesKeys(parseExposition(await scrape(base))))

  const marker = `junk${randomBytes(4).toString('hex')}`
  const json = { 'content-type': 'application/json' }
  const cases: JunkCase[] = []
  for (let i = 0; i < UNIQUE_PATHS; i++) {
    cases.push({
      what: 'unique path',
      status: 404,
      send: () => httpGet(`${base}/${marker}/${randomBytes(6).toString('hex')}?q=${i}`),
    })
  }
  for (const method of ODD_METHODS) {
    for (let i = 0; i < 25; i++) {
      cases.push({
        what: `method ${method}`,
        // Methods Node's parser does not know are refused before routing, with 400.
        status: method === 'FOO' ? 400 : 404,
        send: () => httpGet(`${base}/${marker}/${method}/${i}`, { method }),
      })
    }
  }
  const repeat = (what: string, status: number, send: JunkCase['send'], times = 25) => {
    for (let i = 0; i < times; i++) cases.push({ what, status, send })
  }
  repeat('URL of 9 KiB', 414, () => httpGet(`${base}/${marker}/${'u'.repeat(9 * 1024)}`))
  repeat('URL of 20 KiB', 431, () => httpGet(`${base}/${marker}/${'u'.repeat(20 * 1024)}`))
  repeat('header of 20 KiB', 431, () =>
    httpGet(`${base}/`, { headers: { 'x-junk': 'h'.repeat(20 * 1024) } }),
  )
  repeat('malformed JSON', 400, () =>
    httpGet(`${base}/items`, { method: 'POST', headers: json, body: '{"name": "apple",' }),
  )
  repeat('JSON of the wrong shape', 400, () =>
    httpGet(`${base}/items`, { method: 'POST', headers: json, body: '{"colour":"red"}' }),
  )
  repeat('unsupported media type', 415, () =>
    httpGet(`${base}/items`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
      body: '<item/>',
    }),
  )
  repeat('body of 100 KiB', 413, () =>
    httpGet(`${base}/items`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ name: 'n'.repeat(100 * 1024) }),
    }),
  )
  repeat('bad parameter', 400, () => httpGet(`${base}/items/not-a-number`))
  repeat('bad percent-encoding', 400, () => httpGet(`${base}/${marker}/%zz`))
  repeat('no Host header', 400, () =>
    rawRequest(running.port, `GET /${marker} HTTP/1.1\r\nConnection: close\r\n\r\n`),
  )
  repeat('CONNECT', 405, () =>
    rawRequest(running.port, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n'),
  )
  repeat('TLS bytes on the plain port', 400, () =>
    rawRequest(running.port, '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03junk\r\n\r\n'),
  )

  const wrong: string[] = []
  const tally = new Map<string, number>()
  await pool(cases, CONCURRENCY, async (junk) => {
    let problem: string | undefined
    try {
      const res = await junk.send()
      const type = String(res.headers['content-type'] ?? '')
      const body = type.startsWith('application/json')
        ? (JSON.parse(res.body) as { statusCode?: number })
        : undefined
      if (res.status !== junk.status) problem = `status ${res.status}`
      else if (body?.statusCode !== junk.status) problem = `body ${res.body.slice(0, 80)}`
    } catch (err) {
      problem = String(err)
    }
    tally.set(junk.what, (tally.get(junk.what) ?? 0) + 1)
    if (problem !== undefined) wrong.push(`${junk.what} (expected ${junk.status}): ${problem}`)
  })

  const text = await scrape(base)
  const families = parseExposition(text)
  const seriesAfter = seriesKeys(families)
  const added = seriesAfter.filter((key) => !seriesBefore.has(key))
  const httpFamily = families.find((f) => f.name === 'http_requests_total')
  const routes = new Set(httpFamily?.metrics.map((m) => m.labels?.route))
  const methods = new Set(httpFamily?.metrics.map((m) => m.labels?.method))

  t.diagnostic(
    `junk requests: ${cases.length} (${UNIQUE_PATHS} unique paths), wrong answers: ${wrong.length}`,
  )
  t.diagnostic(
    `series: ${seriesBefore.size} before, ${seriesAfter.length} after (+${added.length}); routes ${[...routes].join(' ')}; methods ${[...methods].join(' ')}`,
  )

  assert.deepEqual(wrong.slice(0, 10), [])
  assert.equal((await httpGet(`${base}/health`)).status, 200)
  // Not one label value carries a path that was sent.
  assert.equal(text.includes(marker), false, 'a junk path leaked into a label')
  for (const route of routes) assert.ok(ROUTES.includes(route ?? ''), `route label ${route}`)
  // Bounded: at most one series per (method, route, status) kind of junk sent, far below one
  // per unique path.
  assert.ok(added.length <= (ODD_METHODS.length + 6) * 6, `${added.length} new series`)
})
