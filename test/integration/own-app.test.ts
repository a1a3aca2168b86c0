// The plugin in someone else's app: a minimal Fastify service that imports this package by its
// name (not internal paths), under real PM2 with 3 workers, answers /metrics with all of them.
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { gaugeValue, parseExposition, scrape } from '../../harness/exposition'
import { httpGet, waitFor } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import { socketDirFor } from '../../packages/plugin/src/cluster/socket-paths'

let app: Pm2App
before(async () => {
  app = await startPm2App({
    instances: 3,
    ecosystem: join(__dirname, '..', 'fixtures', 'own-app', 'ecosystem.config.js'),
    env: { METRICS_SOCKET_DIR: '' },
  })
})
after(async () => {
  await app?.stop()
  // The plugin's default socket directory, keyed by the app name.
  if (app) rmSync(socketDirFor(app.name), { recursive: true, force: true })
})

test('an app built from the public entry point shows every PM2 worker in /metrics', {
  timeout: 60_000,
}, async () => {
  for (let i = 0; i < 30; i++)
    assert.equal((await httpGet(`${app.baseUrl}/orders/${i}`)).status, 200)
  const text = await waitFor('all 3 workers in the gather', async () => {
    const body = await scrape(app.baseUrl)
    return gaugeValue(body, 'cluster_metrics_workers_answered') === 3 ? body : undefined
  })
  const families = parseExposition(text)
  const requests = families.find((f) => f.name === 'http_requests_total')?.metrics ?? []
  const orders = requests.filter((m) => m.labels?.route === '/orders/:id')
  assert.equal(
    orders.reduce((sum, m) => sum + Number(m.value), 0),
    30,
  )
  const started = families.find((f) => f.name === 'process_start_time_seconds')?.metrics ?? []
  assert.deepEqual(started.map((m) => m.labels?.worker_id).sort(), ['0', '1', '2'])
})
