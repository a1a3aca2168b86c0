// The cluster view under real PM2 with 5 workers: every scrape, whichever worker answers it,
// holds all live workers; dead, hung and restarted workers never fail or stall a scrape.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { Agent } from 'node:http'
import { after, before, describe, test } from 'node:test'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { socketDirFor } from '../../src/cluster/socket-paths'
import { duplicateSeries } from '../helpers/exposition'
import { startLoad } from '../helpers/load'
import { freePort, httpGet, waitFor } from '../helpers/net'
import { killAll, type Pm2App, ROOT, startPm2App } from '../helpers/pm2'

const GATHER_TIMEOUT_MS = 500
const ALL = ['0', '1', '2', '3', '4']

interface Scrape {
  workers: string[]
  requestsByWorker: Map<string, number>
  up: Map<string, number>
  text: string
  ms: number
}

async function scrape(
  app: Pm2App,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
  agent?: Agent,
): Promise<Scrape> {
  const started = performance.now()
  const res = await httpGet(`${app.baseUrl}/metrics`, { headers, timeoutMs, agent })
  const ms = performance.now() - started
  assert.equal(res.status, 200)
  const families = parsePrometheusTextFormat(res.body)
  const workers = new Set<string>()
  const requestsByWorker = new Map<string, number>()
  const up = new Map<string, number>()
  for (const family of families) {
    for (const metric of family.metrics) {
      const id = metric.labels?.worker_id
      if (family.name === 'cluster_metrics_worker_up' && id !== undefined)
        up.set(id, Number(metric.value))
      else if (id !== undefined) workers.add(id)
      if (family.name === 'http_requests_total' && id !== undefined) {
        requestsByWorker.set(id, (requestsByWorker.get(id) ?? 0) + Number(metric.value))
      }
    }
  }
  return { workers: [...workers].sort(), requestsByWorker, up, text: res.body, ms }
}

describe('cluster view under PM2 (5 workers)', () => {
  let app: Pm2App

  before(async () => {
    app = await startPm2App({
      instances: 5,
      env: { METRICS_GATHER_TIMEOUT_MS: String(GATHER_TIMEOUT_MS) },
    })
  })
  after(async () => {
    await app?.stop()
  })

  test('50 consecutive scrapes under load each hold all 5 workers, counters never decrease', async () => {
    const load = startLoad({ url: app.baseUrl, rate: 200, durationSeconds: 60 })
    try {
      await waitFor(
        'load to reach every worker',
        async () => (await scrape(app)).requestsByWorker.size === 5,
      )
      let previous: Map<string, number> | undefined
      for (let i = 0; i < 50; i++) {
        const s = await scrape(app) // a fresh connection each time: lands on different workers
        assert.deepEqual(s.workers, ALL, `scrape ${i}`)
        assert.deepEqual(duplicateSeries(s.text), [], `scrape ${i}`)
        for (const id of ALL) {
          assert.equal(s.up.get(id), 1)
          const now = s.requestsByWorker.get(id) ?? 0
          if (previous)
            assert.ok(
              now >= (previous.get(id) ?? 0),
              `worker ${id} went from ${previous.get(id)} to ${now}`,
            )
        }
        previous = s.requestsByWorker
      }
    } finally {
      load.stop()
      await load.done
    }
  })

  test('the merged output passes promtool check metrics (lint warnings only on prom-client names)', async () => {
    const { text } = await scrape(app)
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
      let output = ''
      child.stdout.on('data', (c: Buffer) => {
        output += c
      })
      child.stderr.on('data', (c: Buffer) => {
        output += c
      })
      child.on('close', (code) => resolve({ code, output }))
      child.stdin.end(text)
    })
    // Exit 3 means lint problems only; a parse error would be exit 1.
    assert.ok(
      result.code === 0 || result.code === 3,
      `promtool exited ${result.code}: ${result.output}`,
    )
    const problems = result.output.split('\n').filter((l) => l.trim() !== '')
    for (const problem of problems) {
      assert.match(
        problem,
        /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/,
      )
    }
  })

  test('kill -9 of one worker: scrapes keep answering with 4, then 5 once PM2 restarts it', async () => {
    // Scrape as Prometheus does, on one keep-alive connection held by a worker that stays up: a
    // new connection could be handed by the cluster primary to the worker being killed.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const answering = JSON.parse((await httpGet(`${app.baseUrl}/`, { agent })).body).worker_id
      const victimId = answering === '2' ? '3' : '2'
      const [victim] = (await app.list()).filter((p) => p.workerId === victimId)
      process.kill(victim.pid, 'SIGKILL')
      const during = await scrape(app, {}, 10_000, agent)
      assert.equal(during.up.get(victimId), 0)
      assert.deepEqual(
        during.workers,
        ALL.filter((id) => id !== victimId),
      )
      assert.match(during.text, /^cluster_metrics_workers_answered 4$/m)
      await waitFor(`worker ${victimId} back`, async () => {
        const s = await scrape(app, {}, 10_000, agent)
        return s.workers.length === 5 && s.up.get(victimId) === 1
      })
      const [restarted] = (await app.list()).filter((p) => p.workerId === victimId)
      assert.notEqual(restarted.pid, victim.pid)
      assert.ok(restarted.restarts >= 1)
    } finally {
      agent.destroy()
    }
  })

  test('SIGSTOP of one worker: other workers answer within the gather timeout with 4', async () => {
    const [victim] = (await app.list()).filter((p) => p.workerId === '3')
    process.kill(victim.pid, 'SIGSTOP')
    try {
      const answered: Scrape[] = []
      // Scrapes routed to the stopped worker itself cannot answer; others must, promptly.
      for (let i = 0; i < 12; i++) {
        try {
          answered.push(await scrape(app, {}, GATHER_TIMEOUT_MS + 2500))
        } catch {
          // the connection was handed to the stopped worker
        }
      }
      assert.ok(answered.length >= 5, `only ${answered.length} of 12 scrapes answered`)
      for (const s of answered) {
        assert.deepEqual(s.workers, ['0', '1', '2', '4'])
        assert.equal(s.up.get('3'), 0)
        assert.ok(s.ms < GATHER_TIMEOUT_MS + 1500, `scrape took ${s.ms.toFixed(0)} ms`)
      }
      // Prometheus' own deadline shortens the gather: half of a 0.4 s scrape timeout.
      const tight = await waitFor('a scrape answered by a live worker', () =>
        scrape(app, { 'X-Prometheus-Scrape-Timeout-Seconds': '0.4' }, 3000),
      )
      assert.match(tight.text, /^cluster_metrics_gather_timeout_seconds 0.2$/m)
      assert.equal(tight.up.get('3'), 0)
    } finally {
      process.kill(victim.pid, 'SIGCONT')
    }
    await waitFor('worker 3 answering again', async () => (await scrape(app)).up.get('3') === 1)
  })
})

describe('outside the cluster', () => {
  test('standalone (node dist/server.js): /metrics serves the process itself, at once', async () => {
    const port = await freePort()
    const child = spawn(process.execPath, ['dist/server.js'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    })
    try {
      await waitFor(
        'standalone server',
        async () => (await httpGet(`http://127.0.0.1:${port}/health`)).status === 200,
      )
      await httpGet(`http://127.0.0.1:${port}/`)
      const res = await httpGet(`http://127.0.0.1:${port}/metrics`, { timeoutMs: 2000 })
      assert.equal(res.status, 200)
      assert.match(
        res.body,
        /^http_requests_total\{method="GET",route="\/",status_code="200",worker_id="0"\} 1$/m,
      )
      assert.doesNotMatch(res.body, /cluster_metrics_/)
    } finally {
      if (child.pid) await killAll([child.pid])
    }
  })

  test('two PM2 apps on one host never answer for each other', async () => {
    // Default socket directories: keyed by app name and port.
    const a = await startPm2App({ instances: 2, name: 'alpha', env: { METRICS_SOCKET_DIR: '' } })
    try {
      const b = await startPm2App({ instances: 3, name: 'beta', env: { METRICS_SOCKET_DIR: '' } })
      try {
        for (let i = 0; i < 10; i++) await httpGet(`${a.baseUrl}/items/1`)
        const fromA = (await httpGet(`${a.baseUrl}/metrics`)).body
        const fromB = (await httpGet(`${b.baseUrl}/metrics`)).body
        assert.match(fromA, /^cluster_metrics_workers_answered 2$/m)
        assert.match(fromB, /^cluster_metrics_workers_answered 3$/m)
        const itemsIn = (text: string) =>
          text
            .split('\n')
            .filter((l) => l.startsWith('http_requests_total{method="GET",route="/items/:id"'))
            .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
        assert.equal(itemsIn(fromA), 10)
        assert.equal(itemsIn(fromB), 0)
      } finally {
        await b.stop()
        rmSync(socketDirFor(b.name, b.port), { recursive: true, force: true })
      }
    } finally {
      await a.stop()
      rmSync(socketDirFor(a.name, a.port), { recursive: true, force: true })
    }
  })
})
