// docs/performance.md: how the bench measures, then the latest full run's figures, written by
// `npm run bench` so the document never holds figures typed by hand.

const METHOD = `# Performance

\`npm run bench\` measures, in one run and side by side, what the metrics plugin and the cluster
view cost; a full run rewrites this document with its figures. Raw results go to the ignored
\`bench/results/\`.

## How it measures

- **Instructions per request** (the headline CPU figure). CPU time on a shared 2-core machine
  varies by ±20 % from round to round; instruction counts repeat within 0.1 %. Each
  single-process variant (bare Fastify, this plugin as the service runs it, HTTP metrics only, a
  naive counter and histogram hook, fastify-metrics) runs under
  \`valgrind --tool=callgrind\`; after a warm-up the counters are zeroed, a fixed number of
  \`GET /\` requests are sent from a separate process over one keep-alive connection, the
  counters are dumped and divided. Every variant runs with the same flags
  ([\`bench/lib/callgrind.ts\`](../bench/lib/callgrind.ts)).
- **CPU time per request** at a fixed arrival rate, in interleaved rounds, ratios taken within
  each round, read from each server's own \`process.cpuUsage()\`.
- **The cluster view** under real PM2, for three registry sizes per worker (the service's own,
  about 1,100 and about 5,000 series): the gather time the service reports, the whole GET as a
  client sees it, bytes on the wire with and without gzip, idle and under steady traffic,
  against a **floor**: every worker must render its own registry once and the workers share the
  machine's cores, so no gather can beat the workers' own \`/metrics\` (cluster view off, same
  registry) times the number of workers, divided by the cores. Scrapes are made as Prometheus
  makes them (OpenMetrics, gzip, one keep-alive connection).
- **Memory**: the median worker RSS with the cluster view on minus off, after the same traffic
  with one scrape a second.
- **Concurrent scrapers**: 20 Prometheus-like scrapers, and 50 anonymous ones (text format, no
  gzip, a new connection per scrape), each scraping back to back, beside steady service traffic
  whose p99 latency is compared with the same traffic without scrapes. Each worker's RSS is
  read before the burst, every 250 ms during it (its peak), right after and after settling;
  \`npm run bench -- --storm-only\` runs the 20-scraper burst alone, with the cluster view on
  and then off, settling 60 s.
- **What a scrape costs** (its own section below): each goal for a scrape's cost with the
  cluster view on and off, same registry, traffic and scrapers. The RSS the cluster view keeps
  at one scrape a second (about 1,100 and about 5,000 series per worker); 20 scrapers for 10 s
  and 50 for 30 s beside 200 req/s of service traffic (each worker's RSS before, its peak, and
  60 s after; the service's p99 during ÷ quiet); 20 scrapers against the service's own
  registry beside 100 req/s; three bursts of 20 scrapers for 10 s, 30 s apart, with no other
  traffic (mean worker RSS after each); the whole GET ÷ the floor; the gather idle. After
  settling, the workers' own heap gauges say how much of their RSS V8's heap holds, and their
  CPU time how much of the two cores they took. Reading it: RSS that grows with V8's heap is
  JavaScript heap V8 keeps after the burst; RSS that grows while the heap does not is memory
  outside it (the allocator's freed pages, zlib and socket buffers). The service's requests
  run on the same event loops and cores as the scrapes: the workers' cores say whether the
  service waits behind their CPU or behind a render holding one event loop (the scrapers, the
  load generator and PM2 take the rest of the two cores).
  \`npm run bench -- --scrape-cost-only\` runs these parts alone (about 20 minutes) and rewrites
  that section only; \`--parts storm-20,bursts\` (any of registries, storm-20, storm-50,
  service, bursts) runs some of them, without the document.
- **Exposition formats**: the same registries through the cluster view, scraped in protobuf,
  OpenMetrics and the text format as Prometheus 3.5 asks for each (gzip, one keep-alive
  connection), in interleaved rounds: bytes plain and gzipped, and the gather time, with each
  format's ratio to the text format taken within each round
  ([\`bench/lib/formats.ts\`](../bench/lib/formats.ts)).

## Latest full run

`

const SCRAPE_COST_HEADING = '## What a scrape costs'

/** The whole document; `scrapeCost` is the scrape-cost section's body, when measured. */
export function performanceDocument(summary: string, scrapeCost: string | null = null): string {
  const doc = `${METHOD}${summary.trim()}\n`
  return scrapeCost === null ? doc : withScrapeCostSection(doc, scrapeCost)
}

/** `doc` with the method above its latest full run as this file now describes it. */
export function withCurrentMethod(doc: string): string {
  const start = doc.indexOf('\n## Latest full run\n\n')
  if (start === -1) return doc
  return `${METHOD}${doc.slice(start + '\n## Latest full run\n\n'.length)}`
}

/** `doc` with its scrape-cost section replaced by `body` (added at the end when missing). */
export function withScrapeCostSection(doc: string, body: string): string {
  const section = `${SCRAPE_COST_HEADING}\n\n${body.trim()}\n`
  const start = doc.indexOf(`\n${SCRAPE_COST_HEADING}\n`)
  if (start === -1) return `${doc.trimEnd()}\n\n${section}`
  const next = doc.indexOf('\n## ', start + 1)
  const rest = next === -1 ? '' : `\n${doc.slice(next + 1)}`
  return `${doc.slice(0, start + 1)}${section}${rest}`
}
