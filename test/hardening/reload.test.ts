// Drill: `pm2 reload` of the 5-worker app under steady load. Every request must be answered
// with a 2xx (no failed request, no connection error), and the /metrics scrapes taken while
// workers are replaced must never repeat a label set nor show a worker's counter flip back.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { duplicateSeries, gaugeValue, requestsByWorker, scrape } from '../helpers/exposition'
import { describeTally, startKeepAliveLoad } from '../helpers/load'
import { sleep, waitFor } from '../helpers/net'
import { type Pm2App, startPm2App } from '../helpers/pm2'

const RATE = 200
const LOAD_SECONDS = 25
const CONNECTIONS = 10

let app: Pm2App | undefined
after(async () => {
  await app?.stop()
})

test('pm2 reload under 200 req/s drops no request and keeps every scrape consistent', {
  timeout: 180_000,
}, async (t) => {
  app = await startPm2App({ instances: 5 })
  const running = app
  const before = await running.waitOnline(5)
  const oldPids = new Set(before.map((p) => p.pid))

  let answered = 0
  const load = startKeepAliveLoad({
    url: running.baseUrl,
    path: '/items/1',
    rate: RATE,
    durationSeconds: LOAD_SECONDS,
    connections: CONNECTIONS,
  })
  let loadFinished = false
  const tallyPromise = load.done.finally(() => {
    loadFinished = true
  })
  // Wait until the load really flows before reloading.
  await waitFor('the load to be answered', async () => {
    const text = await scrape(running.baseUrl)
    answered = [...requestsByWorker(text).values()].reduce((a, b) => a + b, 0)
    return answered >= RATE
  })

  // Scrape continuously while the workers are replaced.
  const scrapes: string[] = []
  const scrapeErrors: string[] = []
  let scraping = true
  const scraper = (async () => {
    while (scraping) {
      try {
        scrapes.push(await scrape(running.baseUrl))
      } catch (err) {
        scrapeErrors.push(String(err))
      }
      await sleep(100)
    }
  })()

  await running.pm2('reload', running.name)
  const reloaded = await running.waitOnline(5)
  const reloadEndedUnderLoad = !loadFinished
  // A few scrapes after the reload, once every new worker answers the gather.
  await waitFor('a full gather from the new workers', async () => {
    const text = scrapes.at(-1)
    return text !== undefined && gaugeValue(text, 'cluster_metrics_workers_answered') === 5
  })
  scraping = false
  await scraper
  const tally = await tallyPromise

  const duplicates = scrapes.flatMap((text, i) =>
    duplicateSeries(text).map((key) => `scrape ${i}: ${key}`),
  )
  // Per worker id, the sequence of its http_requests_total across scrapes: a new process after
  // reload may start lower once; going down twice means old and new processes alternate.
  const sequences = new Map<string, number[]>()
  for (const text of scrapes) {
    for (const [worker, value] of requestsByWorker(text)) {
      sequences.set(worker, [...(sequences.get(worker) ?? []), value])
    }
  }
  const flipFlops: string[] = []
  for (const [worker, values] of sequences) {
    const drops = values.filter((v, i) => i > 0 && v < values[i - 1]).length
    if (drops > 1) flipFlops.push(`worker ${worker}: ${values.join(' ')}`)
  }
  const answeredCounts = scrapes.map((text) => gaugeValue(text, 'cluster_metrics_workers_answered'))

  t.diagnostic(`load: ${describeTally(tally)}`)
  t.diagnostic(
    `scrapes during reload: ${scrapes.length}, failed ${scrapeErrors.length}, duplicate label sets ${duplicates.length}, flip-flops ${flipFlops.length}, workers answered min ${Math.min(...answeredCounts.map((n) => n ?? 0))}`,
  )

  assert.equal(reloadEndedUnderLoad, true, 'the reload must finish while the load still runs')
  assert.equal(
    reloaded.every((p) => !oldPids.has(p.pid)),
    true,
    'every worker was replaced',
  )
  assert.equal(tally.errors, 0, `connection errors: ${describeTally(tally)}`)
  assert.equal(tally.non2xx, 0, `non-2xx answers: ${describeTally(tally)}`)
  assert.equal(tally.unanswered, 0, `requests lost: ${describeTally(tally)}`)
  assert.equal(tally.ok, tally.sent)
  assert.deepEqual(scrapeErrors, [])
  assert.ok(scrapes.length >= 10, `only ${scrapes.length} scrapes during the reload`)
  assert.deepEqual(duplicates, [])
  assert.deepEqual(flipFlops, [])
  assert.deepEqual([...sequences.keys()].sort(), ['0', '1', '2', '3', '4'])
})
