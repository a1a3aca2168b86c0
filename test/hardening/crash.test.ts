// Drill: `kill -9` of one worker under steady load. PM2 starts a new process for that worker id,
// the other workers keep serving, and only the killed worker's connections may see errors
// (at most one request in flight each, autocannon sends one at a time per connection).
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { gaugeValue, requestsByWorker, scrape } from '../helpers/exposition'
import { describeTally, startLoad } from '../helpers/load'
import { waitFor } from '../helpers/net'
import { type Pm2App, startPm2App } from '../helpers/pm2'

const RATE = 200
const LOAD_SECONDS = 15
const CONNECTIONS = 10

let app: Pm2App | undefined
after(async () => {
  await app?.stop()
})

test('kill -9 of one worker under load: PM2 restarts it, the others keep serving', {
  timeout: 150_000,
}, async (t) => {
  app = await startPm2App({ instances: 5 })
  const running = app
  const before = await running.waitOnline(5)
  const victim = before.find((p) => p.workerId === '2')
  assert.ok(victim, 'worker 2 is running')

  const load = startLoad({
    url: running.baseUrl,
    rate: RATE,
    durationSeconds: LOAD_SECONDS,
    connections: CONNECTIONS,
  })
  let loadFinished = false
  const tallyPromise = load.done.finally(() => {
    loadFinished = true
  })
  await waitFor('the load to be answered by worker 2', async () => {
    const served = requestsByWorker(await scrape(running.baseUrl)).get('2') ?? 0
    return served > 0
  })

  process.kill(victim.pid, 'SIGKILL')
  const replacement = await waitFor('PM2 to restart worker 2', async () => {
    const procs = await running.list()
    const next = procs.find((p) => p.workerId === '2' && p.status === 'online')
    return next && next.pid !== victim.pid && next.pid > 0 ? next : undefined
  })
  const recoveredUnderLoad = !loadFinished
  // The new process joins the cluster view: every worker answers the gather again.
  await waitFor('all 5 workers in the metrics gather', async () => {
    const text = await scrape(running.baseUrl)
    return gaugeValue(text, 'cluster_metrics_workers_answered') === 5
  })
  const tally = await tallyPromise
  const after = await running.list()

  const failed = tally.errors + tally.non2xx + tally.unanswered
  t.diagnostic(`load: ${describeTally(tally)}`)
  t.diagnostic(
    `worker 2: pid ${victim.pid} -> ${replacement.pid}, restarts ${victim.restarts} -> ${replacement.restarts}; failed requests ${failed} (bound: ${CONNECTIONS} connections)`,
  )

  assert.equal(recoveredUnderLoad, true, 'PM2 must restart the worker while the load still runs')
  assert.equal(replacement.restarts, victim.restarts + 1)
  // The other four kept their processes: the crash did not take them down.
  for (const p of before.filter((w) => w.workerId !== '2')) {
    assert.equal(after.find((w) => w.workerId === p.workerId)?.pid, p.pid)
  }
  assert.equal(tally.non2xx, 0, describeTally(tally))
  assert.ok(failed <= CONNECTIONS, `more failures than connections: ${describeTally(tally)}`)
  assert.equal(tally.ok, tally.sent - failed)
})
