// Native histograms switched on the way PM2 users switch a feature on: the built service under
// PM2 (3 workers) starts without them, a real Prometheus 3.5 with native histograms scrapes it
// in protobuf, and `pm2 reload --update-env` with METRICS_NATIVE_HISTOGRAMS=true brings them
// in. Each worker's new process continues series its predecessor recorded in classic buckets
// alone; Prometheus refuses a family that mixes native and classic-only series (the target
// goes down), so every series must have its native half from the first scrape on, with the
// classic counts exact.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { httpGet } from '../../harness/net'
import { type Pm2App, startPm2App } from '../../harness/pm2'
import {
  type PrometheusServer,
  scrapesPass,
  startNativeHistogramPrometheus,
} from '../../harness/prometheus'
import { increaseSince } from '../../harness/traffic-phases'

const WORKERS = 3
const SCRAPE_SECONDS = 1

let app: Pm2App
let prometheus: PrometheusServer

interface Sample {
  metric: Record<string, string>
  value?: [number, string]
  values?: Array<[number, string]>
  histogram?: [number, { count: string }]
  histograms?: Array<[number, { count: string }]>
}

/** The API's raw answer: the harness' query() knows float samples only. */
async function api(params: Record<string, string>): Promise<Sample[]> {
  const res = await httpGet(`${prometheus.url}/api/v1/query?${new URLSearchParams(params)}`)
  const parsed = JSON.parse(res.body) as { status: string; data?: { result?: Sample[] } }
  if (parsed.status !== 'success') throw new Error(res.body)
  return parsed.data?.result ?? []
}

/** Sends `n` requests to `path`; returns how many were answered. */
async function send(path: string, n: number): Promise<number> {
  let answered = 0
  for (let i = 0; i < n; i++)
    if ((await httpGet(`${app.baseUrl}${path}`)).status === 200) answered++
  return answered
}

before(async () => {
  // An empty value removes the variable: native histograms off, the service's default.
  app = await startPm2App({ instances: WORKERS, env: { METRICS_NATIVE_HISTOGRAMS: '' } })
  prometheus = await startNativeHistogramPrometheus(
    [{ name: 'webapp', port: app.port }],
    SCRAPE_SECONDS,
    1,
  )
})
after(async () => {
  await prometheus?.stop()
  await app?.stop()
})

test('native histograms switched on by pm2 reload --update-env: the target stays up, every series is native at once, classic counts exact', {
  timeout: 240_000,
}, async () => {
  const from = await scrapesPass(prometheus, 'webapp', SCRAPE_SECONDS, 1)
  // Series of two routes before the switch, recorded in classic buckets alone.
  let answered = await send('/items/1', 60)
  await send('/', 30)
  await scrapesPass(prometheus, 'webapp', SCRAPE_SECONDS, 2)

  // Why a scrape failed, as Prometheus said it, for the assertion's message.
  const scrapeErrors = new Set<string>()
  const watch = setInterval(() => {
    prometheus.targets().then(
      (targets) => {
        for (const t of targets) if (t.lastError !== '') scrapeErrors.add(t.lastError)
      },
      () => {},
    )
  }, 250)
  app.env.METRICS_NATIVE_HISTOGRAMS = 'true'
  const reloadFrom = Date.now() / 1000
  await app.pm2('reload', app.name, '--update-env')
  await app.waitOnline(WORKERS)
  const reloadTo = Date.now() / 1000
  // After the switch: requests no route matches (a series new to the service, native from its
  // first observation), then a carried route, so that native and carried series meet in one
  // family in that order.
  await send('/nowhere', 10)
  answered += await send('/items/1', 60)
  const switched = await scrapesPass(prometheus, 'webapp', SCRAPE_SECONDS, 1)
  const to = await scrapesPass(prometheus, 'webapp', SCRAPE_SECONDS, 2)
  clearInterval(watch)
  const range = `${Math.round((to - from + 0.5) * 1000)}ms`

  // Prometheus stored every scrape: a refused family takes the whole target down.
  const [up] = await api({ query: `up{job="webapp"}[${range}]`, time: String(to) })
  const down = (up?.values ?? []).filter(([, v]) => v !== '1')
  assert.ok((up?.values ?? []).length > 0)
  assert.deepEqual(
    down,
    [],
    `scrapes with the target down (reload from ${reloadFrom} to ${reloadTo}): ${[...scrapeErrors].join('; ')}`,
  )

  // Every worker's duration series has a native histogram in the first scrape after the
  // switch, whose count is its classic count in that scrape.
  const at = String(switched)
  const native = await api({
    query: `http_request_duration_seconds{job="webapp"} and timestamp(http_request_duration_seconds{job="webapp"}) == ${at}`,
    time: at,
  })
  const classic = await api({
    query: `http_request_duration_seconds_count{job="webapp"}`,
    time: at,
  })
  const key = (m: Record<string, string>) =>
    `${m.worker_id} ${m.method} ${m.route} ${m.status_code}`
  const nativeCounts = new Map(native.map((s) => [key(s.metric), s.histogram?.[1].count]))
  const workers = new Set(classic.map((s) => s.metric.worker_id))
  assert.deepEqual([...workers].sort(), ['0', '1', '2'])
  const missing: string[] = []
  for (const s of classic) {
    const count = nativeCounts.get(key(s.metric))
    if (count !== s.value?.[1])
      missing.push(`${key(s.metric)}: native ${count}, classic ${s.value?.[1]}`)
  }
  assert.deepEqual(missing, [], 'series without a native histogram of their classic count')

  // The classic counts Prometheus stored add up to the requests answered, through the reload.
  const series = await api({
    query: `http_request_duration_seconds_count{job="webapp",route="/items/:id"}[${range}]`,
    time: String(to),
  })
  let counted = 0
  const drops: string[] = []
  for (const s of series) {
    const samples = (s.values ?? []).map(([t, v]) => [Number(t), Number(v)] as const)
    const { delta, resets } = increaseSince(samples, from)
    counted += delta
    for (let i = 0; i < resets; i++) drops.push(JSON.stringify(s.metric))
  }
  assert.deepEqual(drops, [])
  assert.equal(counted, answered)
})
