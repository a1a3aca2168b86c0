// What one Prometheus spends per series of this service: a real Prometheus (Debian's) scrapes
// PODS pods' worth of the PM2 app's real /metrics (5 workers, after a route mix), served as
// PODS targets that differ by their `pod` label, every 5 s for MINUTES minutes; counters move
// at every scrape so chunks compress as they would in production. Writes the figures into
// docs/capacity.md (between the prometheus-memory markers).
// Run: node --import tsx test/stack/measure-prometheus-memory.ts
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { scrape } from '../../harness/exposition'
import { freePort, httpGet, sleep } from '../../harness/net'
import { ROOT, startPm2App } from '../../harness/pm2'
import { startPrometheus } from '../../harness/prometheus'
import { driveRouteMix } from '../../harness/stack'

const PODS = 100
const MINUTES = 4
const DOC = join(ROOT, 'docs', 'capacity.md')

async function exposition(): Promise<string> {
  const app = await startPm2App({ instances: 5 })
  try {
    await driveRouteMix(app.baseUrl, 100, 10)
    return await scrape(app.baseUrl)
  } finally {
    await app.stop()
  }
}

async function main() {
  const text = await exposition()
  const lines = text.split('\n')
  const series = lines.filter((l) => l !== '' && !l.startsWith('#')).length
  let scrapes = 0
  // Every sample moves by the scrape count: a counter-like series per line.
  const server = createServer((_req, res) => {
    scrapes++
    const body = lines
      .map((l) => {
        if (l === '' || l.startsWith('#')) return l
        const cut = l.lastIndexOf(' ')
        const value = Number(l.slice(cut + 1))
        return Number.isFinite(value) ? `${l.slice(0, cut)} ${value + scrapes}` : l
      })
      .join('\n')
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body)
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const groups = Array.from(
    { length: PODS },
    (_, i) => `      - targets: ['127.0.0.1:${port}']\n        labels: { pod: 'webapp-${i}' }\n`,
  ).join('')
  const prom = await startPrometheus(
    'global:\n  scrape_interval: 5s\n  scrape_timeout: 4s\nscrape_configs:\n' +
      `  - job_name: webapp\n    static_configs:\n${groups}`,
  )
  try {
    // Prometheus' own /metrics, read directly.
    const self = async (name: string) => {
      const own = (await httpGet(`${prom.url}/metrics`)).body
      const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(own)
      if (!match) throw new Error(`no ${name} in Prometheus' own metrics`)
      return Number(match[1])
    }
    const empty = await self('process_resident_memory_bytes')
    let rss = 0
    let heap = 0
    for (let s = 0; s < MINUTES * 60; s += 10) {
      await sleep(10_000)
      rss = Math.max(rss, await self('process_resident_memory_bytes'))
      heap = Math.max(heap, await self('go_memstats_heap_inuse_bytes'))
    }
    const head = await self('prometheus_tsdb_head_series')
    const figures = {
      pods: PODS,
      seriesPerPod: series,
      minutes: MINUTES,
      headSeries: head,
      rssBytes: rss,
      heapInuseBytes: heap,
      emptyRssBytes: empty,
    }
    console.log(JSON.stringify(figures))
    const kib = (b: number) => (b / 1024).toFixed(1)
    const { version } = (
      JSON.parse((await httpGet(`${prom.url}/api/v1/status/buildinfo`)).body) as {
        data: { version: string }
      }
    ).data
    const block = [
      `Measured ${new Date().toISOString().slice(0, 16)}Z with Prometheus ${version} (Debian) on 2 cores: ` +
        `${PODS} targets of ${series} series each (the app's real /metrics, 5 workers, after a ` +
        `route mix), 5 s scrapes for ${MINUTES} minutes:`,
      '',
      '| head series | resident memory | Go heap in use | per series (RSS) | per series (heap) |',
      '| --- | --- | --- | --- | --- |',
      `| ${head} | ${(rss / 2 ** 20).toFixed(0)} MiB | ${(heap / 2 ** 20).toFixed(0)} MiB | ` +
        `${kib(rss / head)} KiB | ${kib(heap / head)} KiB |`,
    ].join('\n')
    const doc = readFileSync(DOC, 'utf8')
    const markers = /(<!-- prometheus-memory:start -->)[\s\S]*?(<!-- prometheus-memory:end -->)/
    if (!markers.test(doc)) throw new Error(`${DOC} has no prometheus-memory block`)
    writeFileSync(DOC, doc.replace(markers, `$1\n${block}\n$2`))
    console.log(block)
  } finally {
    await prom.stop()
    server.close()
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
