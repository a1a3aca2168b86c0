// Faults under real PM2 with 5 workers: a worker killed with SIGKILL under load, a worker that
// hangs (SIGSTOP), and two apps on one host. Scrapes always answer, name the missing worker,
// and never mix apps.
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { Agent } from 'node:http'
import { after, before, describe, test } from 'node:test'
import { parseExposition } from '../../harness/exposition'
import { describeTally, startKeepAliveLoad } from '../../harness/load'
import { httpGet, waitFor } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import { socketDirFor } from '../../packages/plugin/src/run-dir/socket-paths'

const ALL = ['0', '1', '2', '3', '4']
const CONNECTIONS = 10
/** Bounds of the scrapes from a kill to the worker's new process answering. */
const RESTART_WAIT_MS = 60_000
const MAX_SCRAPES = 5000

interface Scrape {
  expected: number
  answered: number
  up: Map<string, number>
  started: Map<string, number>
  timeoutSeconds: number
}

async function scrape(app: Pm2App, headers: Record<string, string> = {}, agent?: Agent) {
  const res = await httpGet(`${app.baseUrl}/metrics`, { headers, agent, timeoutMs: 10_000 })
  assert.equal(res.status, 200)
  const families = parseExposition(res.body)
  const values = (name: string) =>
    new Map(
      (families.find((f) => f.name === name)?.metrics ?? []).map((m) => [
        m.labels?.worker_id ?? '',
        Number(m.value),
      ]),
    )
  const gauge = (name: string) => values(name).get('') ?? Number.NaN
  return {
    expected: gauge('cluster_metrics_workers_expected'),
    answered: gauge('cluster_metrics_workers_answered'),
    up: values('cluster_metrics_worker_up'),
    started: values('process_start_time_seconds'),
    timeoutSeconds: gauge('cluster_metrics_gather_timeout_seconds'),
  } satisfies Scrape
}

describe('faults under PM2 (5 workers)', () => {
  let app: Pm2App
  before(async () => {
    // Every scrape a new gather: a scrape right after a fault must not be answered from the
    // last gather before it (the reuse window is tested in process). A generous deadline: on a
    // loaded machine a live worker must never look missing; the deadline's own effect is the
    // Prometheus header case below.
    app = await startPm2App({
      instances: 5,
      env: { METRICS_GATHER_TIMEOUT_MS: '5000', METRICS_GATHER_REUSE_MS: '0' },
    })
  })
  after(async () => {
    await app?.stop()
  })

  test('kill -9 under load: the worker stays expected, down until PM2 restarts it', {
    timeout: 120_000,
  }, async (t) => {
    // Scrape as Prometheus does, on one keep-alive connection held by a worker that stays up:
    // a new connection could be handed by the cluster primary to the worker being killed.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const load = startKeepAliveLoad({
      url: app.baseUrl,
      rate: 200,
      durationSeconds: 60,
      connections: CONNECTIONS,
    })
    try {
      const answering = JSON.parse((await httpGet(`${app.baseUrl}/`, { agent })).body).worker_id
      const victimId = answering === '2' ? '3' : '2'
      const procs = await app.list()
      const victim = procs.find((p) => p.workerId === victimId)
      assert.ok(victim)
      assert.equal((await scrape(app, {}, agent)).up.get(victimId), 1)
      process.kill(victim.pid, 'SIGKILL')
      // Back to back from the kill until the victim answers again, which only a new process can
      // (the killed one runs no more code): the scrapes before are those PM2 had not yet
      // restarted it for.
      const scrapes: Scrape[] = []
      const deadline = Date.now() + RESTART_WAIT_MS
      let back: Scrape | undefined
      while (back === undefined) {
        assert.ok(
          Date.now() < deadline && scrapes.length < MAX_SCRAPES,
          `worker ${victimId}'s new process not in the gather after ${scrapes.length} scrapes`,
        )
        const s = await scrape(app, {}, agent)
        scrapes.push(s)
        if (s.up.get(victimId) === 1) back = s
      }
      // Once back, it stays up, as the same new process.
      const afterRestart: Scrape[] = []
      for (let i = 0; i < 10; i++) afterRestart.push(await scrape(app, {}, agent))
      load.stop()
      const tally = await load.done
      const down = scrapes.filter((s) => s.up.get(victimId) === 0)
      t.diagnostic(
        `${scrapes.length} scrapes until back, ${down.length} with worker ${victimId} down; load: ${describeTally(tally)}`,
      )

      for (const s of scrapes) {
        assert.equal(s.expected, 5)
        assert.deepEqual([...s.up.keys()].sort(), ALL)
        // Whoever did not answer is reported down, never left out.
        assert.equal([...s.up.values()].filter((v) => v === 1).length, s.answered)
        // The live workers always answer within the generous deadline.
        for (const id of ALL.filter((w) => w !== victimId)) assert.equal(s.up.get(id), 1, id)
      }
      // PM2 had not restarted it yet: scrapes saw it expected and down.
      assert.ok(down.length > 0, `no scrape of ${scrapes.length} saw worker ${victimId} down`)
      for (const s of down) assert.equal(s.answered, 4)
      for (const s of afterRestart) {
        assert.equal(s.expected, 5)
        assert.equal(s.answered, 5)
        assert.equal(s.up.get(victimId), 1)
        assert.equal(s.started.get(victimId), back.started.get(victimId))
      }
      assert.equal(back.answered, 5)
      const after = await app.list()
      const restarted = after.find((w) => w.workerId === victimId)
      assert.notEqual(restarted?.pid, victim.pid, 'PM2 started a new process for the worker')
      assert.equal(restarted?.restarts, victim.restarts + 1)
      for (const p of procs.filter((w) => w.workerId !== victimId)) {
        assert.equal(after.find((w) => w.workerId === p.workerId)?.pid, p.pid)
      }
      // Only requests in flight on the killed worker's connections can fail: one per connection.
      assert.equal(tally.non2xx, 0, describeTally(tally))
      assert.ok(tally.errors + tally.unanswered <= CONNECTIONS, describeTally(tally))
    } finally {
      load.stop()
      agent.destroy()
    }
  })

  test('a hung worker (SIGSTOP): scrapes answer by the deadline without it', {
    timeout: 120_000,
  }, async () => {
    // Scrapes on one keep-alive connection held by a live worker, as Prometheus scrapes.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const answering = JSON.parse((await httpGet(`${app.baseUrl}/`, { agent })).body).worker_id
    const victimId = answering === '3' ? '1' : '3'
    const [victim] = (await app.list()).filter((p) => p.workerId === victimId)
    process.kill(victim.pid, 'SIGSTOP')
    try {
      for (let i = 0; i < 5; i++) {
        const s = await scrape(app, {}, agent)
        assert.equal(s.expected, 5)
        assert.equal(s.answered, 4)
        assert.equal(s.up.get(victimId), 0)
      }
      // Prometheus' own deadline shortens the gather: half of a 0.4 s scrape timeout.
      const tight = await scrape(app, { 'X-Prometheus-Scrape-Timeout-Seconds': '0.4' }, agent)
      assert.equal(tight.timeoutSeconds, 0.2)
      assert.equal(tight.up.get(victimId), 0)
    } finally {
      process.kill(victim.pid, 'SIGCONT')
    }
    await waitFor(`worker ${victimId} answering again`, async () => {
      return (await scrape(app, {}, agent)).up.get(victimId) === 1
    })
    agent.destroy()
  })
})

test('two PM2 apps on one host never answer for each other', { timeout: 120_000 }, async () => {
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
      rmSync(socketDirFor(`${b.name}-${b.port}`), { recursive: true, force: true })
    }
  } finally {
    await a.stop()
    rmSync(socketDirFor(`${a.name}-${a.port}`), { recursive: true, force: true })
  }
})
