// The exposition formats side by side, under real PM2 and through the cluster view: for each
// registry size, what one scrape weighs (plain and gzip) and how long its gather takes in
// protobuf, OpenMetrics and the text format. The three are scraped in interleaved rounds on one
// keep-alive connection, so each round's three scrapes meet the same conditions and the same
// answering worker; ratios to the text format are taken within each round.
import { Agent } from 'node:http'
import { gunzipSync } from 'node:zlib'
import { httpGet } from '../../harness/net'
import { PROMETHEUS_ACCEPT } from '../../harness/prometheus-accept'
import { decodeFamilies } from '../../harness/protobuf'
import { type ClusterSettings, type Latency, latency, type RegistryShape, withApp } from './cluster'
import { round, type Spread, spread } from './stats'

export interface FormatsSettings {
  /** Rounds of one scrape in each format, after `warmupRounds` unmeasured ones. */
  rounds: number
  warmupRounds: number
}

export const FORMATS = ['protobuf', 'openmetrics', 'text'] as const
export type FormatName = (typeof FORMATS)[number]

/** What Prometheus 3.5 sends for each: PrometheusProto first, its defaults, text 0.0.4 alone. */
const ACCEPT: Record<FormatName, string> = {
  protobuf: PROMETHEUS_ACCEPT['prometheus-3.5 protobuf first'],
  openmetrics: PROMETHEUS_ACCEPT['prometheus-3.5'],
  text: PROMETHEUS_ACCEPT['prometheus-3.5 text 0.0.4'],
}

export interface FormatFigures {
  contentType: string
  plainBytes: Spread
  gzipBytes: Spread
  gatherMs: Latency
  getMs: Latency
}

export interface FormatRatios {
  plainBytes: Spread
  gzipBytes: Spread
  gatherMsP50: number
}

export interface FormatsRegistryResult {
  registry: RegistryShape
  rounds: number
  formats: Record<FormatName, FormatFigures>
  /** Each format ÷ the text format: bytes round by round, gather time by p50. */
  toText: Record<FormatName, FormatRatios>
}

export interface FormatsResults {
  settings: FormatsSettings
  instances: number
  registries: FormatsRegistryResult[]
}

interface FormatScrape {
  contentType: string
  plainBytes: number
  gzipBytes: number
  gatherMs: number
  getMs: number
}

const GAUGE = 'cluster_metrics_gather_duration_seconds'

/** The gather's own duration, read from the answer in its format. */
function gatherSeconds(format: FormatName, body: Buffer): number {
  if (format === 'protobuf') {
    const family = decodeFamilies(body).find((f) => f.name === GAUGE)
    const value = family?.metric?.[0]?.gauge?.value
    if (value === undefined) throw new Error(`no ${GAUGE} in the protobuf answer`)
    return value
  }
  const match = new RegExp(`^${GAUGE} (\\S+)$`, 'm').exec(body.toString('utf8'))
  if (match === null) throw new Error(`no ${GAUGE} in the ${format} answer`)
  return Number(match[1])
}

async function scrapeIn(baseUrl: string, format: FormatName, agent: Agent): Promise<FormatScrape> {
  const started = performance.now()
  const res = await httpGet(`${baseUrl}/metrics`, {
    agent,
    timeoutMs: 15_000,
    headers: {
      accept: ACCEPT[format],
      'accept-encoding': 'gzip',
      'x-prometheus-scrape-timeout-seconds': '10',
    },
  })
  const getMs = performance.now() - started
  if (res.status !== 200) throw new Error(`GET /metrics in ${format} answered ${res.status}`)
  if (res.headers['content-encoding'] !== 'gzip') throw new Error(`${format}: not gzipped`)
  const plain = gunzipSync(res.rawBody)
  return {
    contentType: String(res.headers['content-type']),
    plainBytes: plain.length,
    gzipBytes: res.rawBody.length,
    gatherMs: gatherSeconds(format, plain) * 1000,
    getMs,
  }
}

async function benchRegistry(
  registry: RegistryShape,
  cluster: ClusterSettings,
  settings: FormatsSettings,
  log: (line: string) => void,
): Promise<FormatsRegistryResult> {
  // Every scrape a gather of its own, as in the cluster bench.
  return withApp(
    cluster,
    registry,
    true,
    async (app) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      const rounds: Array<Record<FormatName, FormatScrape>> = []
      try {
        for (let i = 0; i < settings.warmupRounds + settings.rounds; i++) {
          const round = {} as Record<FormatName, FormatScrape>
          // Each round in another order, so no format always follows the same one.
          for (let k = 0; k < FORMATS.length; k++) {
            const format = FORMATS[(i + k) % FORMATS.length]
            round[format] = await scrapeIn(app.baseUrl, format, agent)
          }
          if (i >= settings.warmupRounds) rounds.push(round)
        }
      } finally {
        agent.destroy()
      }
      const result = summarise(registry, rounds)
      log(
        `formats, ${registry.name}: ` +
          FORMATS.map((f) => {
            const figures = result.formats[f]
            return `${f} ${figures.plainBytes.median} B (${figures.gzipBytes.median} B gzip), gather p50 ${figures.gatherMs.p50} ms`
          }).join('; '),
      )
      return result
    },
    { METRICS_GATHER_REUSE_MS: '0' },
  )
}

function summarise(
  registry: RegistryShape,
  rounds: Array<Record<FormatName, FormatScrape>>,
): FormatsRegistryResult {
  const figures = (format: FormatName): FormatFigures => {
    const scrapes = rounds.map((r) => r[format])
    return {
      contentType: scrapes[0]?.contentType ?? '',
      plainBytes: spread(scrapes.map((s) => s.plainBytes)),
      gzipBytes: spread(scrapes.map((s) => s.gzipBytes)),
      gatherMs: latency(scrapes.map((s) => s.gatherMs)),
      getMs: latency(scrapes.map((s) => s.getMs)),
    }
  }
  const formats = Object.fromEntries(FORMATS.map((f) => [f, figures(f)])) as Record<
    FormatName,
    FormatFigures
  >
  const ratio = (format: FormatName, key: 'plainBytes' | 'gzipBytes') =>
    spread(rounds.map((r) => round(r[format][key] / r.text[key], 3)))
  const toText = Object.fromEntries(
    FORMATS.map((f) => [
      f,
      {
        plainBytes: ratio(f, 'plainBytes'),
        gzipBytes: ratio(f, 'gzipBytes'),
        gatherMsP50: round(formats[f].gatherMs.p50 / formats.text.gatherMs.p50, 3),
      },
    ]),
  ) as Record<FormatName, FormatRatios>
  return { registry, rounds: rounds.length, formats, toText }
}

export async function runFormatsBench(
  cluster: ClusterSettings,
  settings: FormatsSettings,
  log: (line: string) => void,
): Promise<FormatsResults> {
  const registries: FormatsRegistryResult[] = []
  for (const registry of cluster.registries) {
    registries.push(await benchRegistry(registry, cluster, settings, log))
  }
  return { settings, instances: cluster.instances, registries }
}
