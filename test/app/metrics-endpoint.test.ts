// /metrics as the built app serves it, in process: behind a token read from a file, on its own
// port with METRICS_PORT, standalone outside PM2. A real Prometheus scraping it through the
// token is test/tools/metrics-token-scrape.test.ts.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { buildApp } from '../../src/app'
import { ConfigError, loadConfig } from '../../src/config'
import { build } from '../helper'

const dir = mkdtempSync(join(tmpdir(), 'metrics-endpoint-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const token = randomBytes(24).toString('base64url')
const tokenFile = join(dir, 'metrics-token')
// A trailing newline, as `echo token > file` writes it.
writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 })
const bearer = (value: string) => ({ authorization: `Bearer ${value}` })

test('standalone, /metrics is this process alone, with worker_id and no gather', async (t) => {
  const app = await build(t)
  await app.inject('/items/1')
  const res = await app.inject('/metrics')
  assert.equal(res.statusCode, 200)
  assert.match(
    res.body,
    /^http_requests_total\{method="GET",route="\/items\/:id",status_code="200",worker_id="0"\} 1$/m,
  )
  assert.match(res.body, /^process_start_time_seconds\{worker_id="0"\} \d+$/m)
  assert.doesNotMatch(res.body, /cluster_metrics_/)
})

test('the service passes its WORKER_ID setting to the plugin as its worker id', async (t) => {
  const app = await build(t, { WORKER_ID: 'web-a' })
  assert.equal(app.metrics.workerId, 'web-a')
  await app.inject('/items/1')
  const res = await app.inject('/metrics')
  assert.match(res.body, /^http_requests_total\{.*worker_id="web-a"\} 1$/m)
  assert.match(res.body, /^process_start_time_seconds\{worker_id="web-a"\} \d+$/m)
})

test('under cluster mode, a socket directory that cannot serve fails the build naming METRICS_SOCKET_DIR', async () => {
  const notADir = join(dir, 'not-a-dir')
  writeFileSync(notADir, '')
  const identity = { workerId: '0', clusterMode: true, appName: 'web', instances: 2 }
  await assert.rejects(
    buildApp(loadConfig({ METRICS_SOCKET_DIR: notADir }), { identity, logger: false }),
    (err: Error) =>
      err instanceof ConfigError && /^cannot start: METRICS_SOCKET_DIR \(/.test(err.message),
  )
})

test('requests the router rejects are counted under the unmatched route', async (t) => {
  const app = await build(t)
  assert.equal((await app.inject('/nope%')).statusCode, 400)
  const res = await app.inject('/metrics')
  assert.match(
    res.body,
    /^http_requests_total\{method="GET",route="__unmatched__",status_code="400",worker_id="0"\} 1$/m,
  )
})

test('with a token file: 401 without or with a wrong token, 200 with it', async (t) => {
  const app = await build(t, { METRICS_TOKEN_FILE: tokenFile })
  const wrongSameLength = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`
  const attempts: Array<[string, Record<string, string>, number]> = [
    ['no token', {}, 401],
    ['wrong token, same length', bearer(wrongSameLength), 401],
    ['wrong token, other length', bearer(`${token}x`), 401],
    ['right token, other scheme', { authorization: `Basic ${token}` }, 401],
    ['right token', bearer(token), 200],
  ]
  for (const [what, headers, expected] of attempts) {
    const res = await app.inject({ url: '/metrics', headers })
    assert.equal(res.statusCode, expected, what)
    assert.equal(res.body.includes('http_requests_total'), expected === 200, what)
  }
  // The token guards /metrics only.
  assert.equal((await app.inject('/items/1')).statusCode, 200)
})

test('METRICS_PORT serves /metrics apart from the public port, still behind the token', async (t) => {
  const app = await build(t, { METRICS_PORT: '9', METRICS_TOKEN_FILE: tokenFile })
  assert.equal((await app.inject({ url: '/metrics', headers: bearer(token) })).statusCode, 404)
  const metricsServer = app.metricsServer
  assert.ok(metricsServer)
  assert.equal((await metricsServer.inject('/metrics')).statusCode, 401)
  const ok = await metricsServer.inject({ url: '/metrics', headers: bearer(token) })
  assert.equal(ok.statusCode, 200)
  assert.match(ok.body, /^# TYPE http_requests_total counter$/m)
  // The metrics server serves nothing else.
  assert.equal((await metricsServer.inject('/items/1')).statusCode, 404)
})
