// Hostile acts against the handover under real PM2 (5 workers), read back from what a real
// Prometheus scraping every second stored, against what the clients were answered:
//  - directories planted at two live workers' handover paths, then `pm2 restart`;
//  - a stranger's handover planted for a worker, then `kill -9` of that worker.
// Each loses no count, invents none, exits no process abnormally, and names in the log what
// it moved aside or refused.
import assert from 'node:assert/strict'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { describeTally } from '../../harness/load'
import { waitFor } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import { type PrometheusServer, startPrometheus } from '../../harness/prometheus'
import {
  abnormalExits,
  type Phase,
  type TrafficPhases,
  trafficPhases,
  workerErrors,
} from '../../harness/traffic-phases'
import { writeHandover } from '../../packages/plugin/src/succession/handover'

const JOB = 'webapp'
let app: Pm2App
let prometheus: PrometheusServer
let traffic: TrafficPhases

before(async () => {
  app = await startPm2App({
    instances: 5,
    env: { METRICS_GATHER_TIMEOUT_MS: '5000', METRICS_GATHER_REUSE_MS: '0' },
  })
  prometheus = await startPrometheus(`
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: ${JOB}
    static_configs:
      - targets: ['127.0.0.1:${app.port}']
`)
  traffic = trafficPhases({ app, prometheus, job: JOB, intervalSeconds: 1 })
})
after(async () => {
  await prometheus?.stop()
  await app?.stop()
})

test('directories planted at two live workers’ handover paths: pm2 restart keeps every count', {
  timeout: 300_000,
}, async (t) => {
  const p = await traffic.phase('pm2 restart with directories at handover paths', async () => {
    for (const id of ['0', '1']) {
      const planted = join(app.socketDir, `${id}.handover.json`)
      mkdirSync(planted)
      writeFileSync(join(planted, 'planted'), 'x')
    }
    await app.pm2('restart', app.name)
    await app.waitOnline(5)
  })
  t.diagnostic(describePhase(p))
  assertExact(p)
  assert.equal(p.drops.length, 0, `series reset: ${p.drops}`)
  assert.deepEqual(await inventedSeries(p), [])
  assert.deepEqual(abnormalExits(app), [], workerErrors(app))
  const moved = logEntries().filter((e) => e.msg.startsWith('moved aside what was in the way'))
  assert.deepEqual(
    moved.map((e) => e.path).sort(),
    ['0', '1'].map((id) => join(app.socketDir, `${id}.handover.json`)),
  )
  t.diagnostic(`logged: ${JSON.stringify(moved[0])}`)
})

test('a stranger’s handover planted for a worker, then kill -9 of it: the replacement refuses it and says why', {
  timeout: 300_000,
}, async (t) => {
  const workerId = '1'
  let replacement = 0
  // The kill between two rounds of traffic, once Prometheus has stored all the victim counted:
  // a crash loses what was counted since the last scrape, which is not what is measured here.
  const p = await traffic.phase(
    'kill -9 with a stranger’s handover planted',
    async () => {},
    async () => {
      await traffic.scrapesPass(2)
      const victim = (await app.list()).find((w) => w.workerId === workerId)
      assert.ok(victim)
      writeHandover(join(app.socketDir, `${workerId}.handover.json`), {
        scope: `${app.name}-${app.port}`,
        workerId,
        pid: 4242,
        instance: '4242-0badc0de',
        families: [
          {
            name: 'http_requests_total',
            type: 'counter',
            values: [
              {
                labels: { method: 'GET', route: '/', status_code: '200', worker_id: workerId },
                value: 123_456,
              },
            ],
          },
        ],
      })
      process.kill(victim.pid, 'SIGKILL')
      await waitFor(`worker ${workerId} replaced`, async () => {
        const now = (await app.list()).find((w) => w.workerId === workerId)
        return now !== undefined && now.pid !== victim.pid && now.status === 'online'
      })
      await app.waitOnline(5)
      replacement = (await app.list()).find((w) => w.workerId === workerId)?.pid ?? 0
    },
  )
  t.diagnostic(describePhase(p))
  assertExact(p)
  assert.deepEqual(await inventedSeries(p), [])
  assert.deepEqual(abnormalExits(app), [], workerErrors(app))
  const refused = logEntries().filter(
    (e) => e.pid === replacement && e.msg.startsWith('refused a handover'),
  )
  assert.equal(refused.length, 1, JSON.stringify(refused))
  assert.match(
    String(refused[0].reason),
    /it is from 4242-0badc0de \(pid 4242\), but the link names/,
  )
  t.diagnostic(`logged: ${JSON.stringify(refused[0])}`)
})

/** Counted ÷ answered = 1.000 ± 0.001. */
function assertExact(p: Phase): void {
  assert.ok(p.answered > 0)
  const ratio = p.counted / p.answered
  assert.ok(Math.abs(ratio - 1) <= 0.001, describePhase(p))
}

/** Request series stored in the phase under a worker_id the app does not have. */
async function inventedSeries(p: Phase): Promise<string[]> {
  const seconds = Math.ceil(p.to - p.from) + 1
  const series = await prometheus.query(
    `http_requests_total{job="${JOB}",worker_id!~"[0-4]"}[${seconds}s]`,
    p.to,
  )
  return series.map((s) => JSON.stringify(s.metric))
}

interface LogEntry {
  pid?: number
  msg: string
  [key: string]: unknown
}

/** Every JSON line the workers logged. */
function logEntries(): LogEntry[] {
  const logs = join(app.home, 'logs')
  return readdirSync(logs)
    .filter((name) => name.endsWith('.log'))
    .flatMap((name) => readFileSync(join(logs, name), 'utf8').split('\n'))
    .flatMap((line) => {
      try {
        const entry = JSON.parse(line) as LogEntry
        return typeof entry.msg === 'string' ? [entry] : []
      } catch {
        return []
      }
    })
}

function describePhase(p: Phase): string {
  return `${p.name}: answered ${p.answered}, counted ${p.counted}, ratio ${(p.counted / p.answered).toFixed(4)}; ${p.drops.length} series reset; ${describeTally(p.tally)}`
}
