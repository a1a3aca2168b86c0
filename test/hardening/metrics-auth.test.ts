// Drill: a protected /metrics under real PM2. With a token file, every worker answers 401
// without or with a wrong bearer token and 200 with the right one; a real Prometheus scrapes it
// with `authorization.credentials_file` and fails without. With METRICS_PORT, /metrics moves
// off the public port.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { gaugeValue } from '../helpers/exposition'
import { freePort, httpGet, waitFor } from '../helpers/net'
import { type Pm2App, startPm2App } from '../helpers/pm2'
import { type PrometheusServer, startPrometheus } from '../helpers/prometheus'

const dir = mkdtempSync(join(tmpdir(), 'metrics-auth-'))
const token = randomBytes(24).toString('base64url')
const tokenFile = join(dir, 'metrics-token')
writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 })

const apps: Pm2App[] = []
let prometheus: PrometheusServer | undefined
after(async () => {
  await prometheus?.stop()
  for (const app of apps) await app.stop()
  rmSync(dir, { recursive: true, force: true })
})

const bearer = (value: string) => ({ authorization: `Bearer ${value}` })

test('/metrics with a token file: 401 without or with a wrong token, 200 with it', {
  timeout: 120_000,
}, async (t) => {
  const app = await startPm2App({ instances: 5, env: { METRICS_TOKEN_FILE: tokenFile } })
  apps.push(app)
  const url = `${app.baseUrl}/metrics`
  const wrongSameLength = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`
  const attempts: Array<[string, Record<string, string>, number]> = [
    ['no token', {}, 401],
    ['wrong token, same length', bearer(wrongSameLength), 401],
    ['wrong token, other length', bearer(`${token}x`), 401],
    ['right token, other scheme', { authorization: `Basic ${token}` }, 401],
    ['right token', bearer(token), 200],
  ]
  // Ten rounds on fresh connections, so every worker answers each kind of attempt.
  for (let round = 0; round < 10; round++) {
    for (const [what, headers, expected] of attempts) {
      const res = await httpGet(url, { headers })
      assert.equal(res.status, expected, `${what}: ${res.status}`)
      if (expected === 401) {
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="metrics"')
        assert.equal((JSON.parse(res.body) as { statusCode: number }).statusCode, 401)
        assert.equal(res.body.includes('http_requests_total'), false)
      } else {
        assert.equal(gaugeValue(res.body, 'cluster_metrics_workers_answered'), 5)
      }
    }
  }
  t.diagnostic(`${attempts.length * 10} attempts, each answered as expected`)

  // A real Prometheus: the job with credentials_file is up, the one without gets 401.
  const target = `127.0.0.1:${app.port}`
  prometheus = await startPrometheus(
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: with-token',
      '    authorization:',
      '      type: Bearer',
      `      credentials_file: ${tokenFile}`,
      `    static_configs: [{ targets: ['${target}'] }]`,
      '  - job_name: without-token',
      `    static_configs: [{ targets: ['${target}'] }]`,
      '',
    ].join('\n'),
  )
  const server = prometheus
  const targets = await waitFor('both jobs scraped', async () => {
    const all = await server.targets()
    return all.length === 2 && all.every((x) => x.health !== 'unknown') ? all : undefined
  })
  const byJob = new Map(targets.map((x) => [x.labels.job, x]))
  t.diagnostic(
    `Prometheus: with-token ${byJob.get('with-token')?.health}; without-token ${byJob.get('without-token')?.health} (${byJob.get('without-token')?.lastError})`,
  )
  assert.equal(byJob.get('with-token')?.health, 'up')
  assert.equal(byJob.get('without-token')?.health, 'down')
  assert.match(byJob.get('without-token')?.lastError ?? '', /401/)
  // What Prometheus stored through the token: every worker's gather gauge.
  await waitFor('all 5 workers up in the stored samples', async () => {
    const up = await server.query('sum(cluster_metrics_worker_up{job="with-token"})')
    return up[0]?.value?.[1] === '5'
  })
})

test('METRICS_PORT serves /metrics apart from the public port, still behind the token', {
  timeout: 120_000,
}, async () => {
  const metricsPort = await freePort()
  const app = await startPm2App({
    instances: 2,
    env: { METRICS_PORT: String(metricsPort), METRICS_TOKEN_FILE: tokenFile },
  })
  apps.push(app)
  const metricsUrl = `http://127.0.0.1:${metricsPort}`
  const publicMetrics = await httpGet(`${app.baseUrl}/metrics`, { headers: bearer(token) })
  assert.equal(publicMetrics.status, 404)
  assert.equal((await httpGet(`${metricsUrl}/metrics`)).status, 401)
  const ok = await httpGet(`${metricsUrl}/metrics`, { headers: bearer(token) })
  assert.equal(ok.status, 200)
  assert.equal(gaugeValue(ok.body, 'cluster_metrics_workers_answered'), 2)
  // The metrics port serves nothing else.
  assert.equal((await httpGet(`${metricsUrl}/items/1`)).status, 404)
  assert.equal((await httpGet(`${app.baseUrl}/items/1`)).status, 200)
})
