// Renders docs/per-worker-requests.svg from a real run: the built service under PM2 (5 workers),
// Prometheus with the project's prometheus.yml and rules, a bounded route mix on 127.0.0.1
// (100 req/s, then 250 req/s), and worker 2 killed halfway so PM2 restarts it. The lines are
// the dashboard's own "Request rate per worker and total" and "Workers answering the gather"
// queries, evaluated by that Prometheus. Run: npm run build && npx tsx scripts/render-worker-chart.ts
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sleep, waitFor } from '../harness/net'
import { startPm2App } from '../harness/pm2'
import { type PromSample, startPrometheus } from '../harness/prometheus'
import {
  allPanels,
  driveRouteMix,
  loopbackPrometheusConfig,
  ROOT,
  readDashboard,
  type Substitution,
  substitute,
} from '../harness/stack'

const OUT = join(ROOT, 'docs', 'per-worker-requests.svg')
const PHASES = [
  { rate: 100, seconds: 60 },
  { rate: 250, seconds: 60 },
]
const KILLED_WORKER = '2'
const STEP = 5
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd']

interface Series {
  label: string
  color: string
  points: Array<[number, number]>
  dashed?: boolean
}

async function main() {
  const app = await startPm2App({ instances: 5 })
  const prom = await startPrometheus(loopbackPrometheusConfig(`127.0.0.1:${app.port}`))
  try {
    await waitFor(
      'all 5 workers in a scrape',
      async () =>
        (await prom.query('cluster_metrics_workers_answered{job="webapp"}'))[0]?.value?.[1] === '5',
      { timeoutMs: 60_000, intervalMs: 1000 },
    )
    const start = Date.now() / 1000
    let sent = 0
    let killedAt = 0
    for (const [i, phase] of PHASES.entries()) {
      const load = driveRouteMix(app.baseUrl, phase.rate, phase.seconds)
      if (i === 1) {
        await sleep(15_000)
        const victim = (await app.list()).find((p) => p.workerId === KILLED_WORKER)
        if (victim) {
          killedAt = Date.now() / 1000
          process.kill(victim.pid, 'SIGKILL')
        }
      }
      sent += (await load).requests.total
    }
    const end = Date.now() / 1000 + STEP
    await sleep(STEP * 1000 + 1000)

    const dashboard = readDashboard()
    const panel = (title: string) => {
      const found = allPanels(dashboard).find((p) => p.title === title)
      if (!found?.targets) throw new Error(`no panel ${title}`)
      return found.targets
    }
    const sub: Substitution = {
      variables: { job: 'webapp', instance: '.*', worker: '.*', route: '.*' },
      rateInterval: '20s',
      range: '1800s',
    }
    const range = (expr: string) => prom.queryRange(substitute(expr, sub), start, end, STEP)
    const [perWorker, total] = panel('Request rate per worker and total')
    const [answering] = panel('Workers answering the gather')
    const rates = toSeries(await range(perWorker.expr), (m) => `worker ${m.worker_id}`)
    const totals = toSeries(await range(total.expr), () => 'total').map((s) => ({
      ...s,
      color: '#555',
      dashed: true,
    }))
    const answered = await range(`sum(${substitute(answering.expr, sub)})`)
    const restarts = await prom.query(
      `changes(process_start_time_seconds{job="webapp", worker_id="${KILLED_WORKER}"}[10m])`,
    )

    const svg = render({
      rates: [...rates, ...totals],
      answered: toSeries(answered, () => 'workers answering').map((s) => ({
        ...s,
        color: '#2ca02c',
      })),
      start,
      end,
      killedAt,
      caption: [
        `Measured ${new Date(start * 1000).toISOString().slice(0, 16)}Z on 2 cores: ${sent} requests ` +
          `(${PHASES.map((p) => `${p.rate} req/s for ${p.seconds} s`).join(', then ')}), ` +
          '10 keep-alive connections, 5 PM2 workers, 5 s scrapes.',
        `Worker ${KILLED_WORKER} killed with SIGKILL; restarts Prometheus saw: ` +
          `${restarts[0]?.value?.[1] ?? 'none'}. Legend: peak of each line.`,
      ],
    })
    mkdirSync(join(ROOT, 'docs'), { recursive: true })
    writeFileSync(OUT, svg)
    const last = (s: Series) => s.points.at(-1)?.[1] ?? Number.NaN
    console.log(`wrote ${OUT}`)
    console.log(`requests sent: ${sent}`)
    for (const s of [...rates, ...totals])
      console.log(`${s.label}: last ${last(s).toFixed(1)} req/s`)
  } finally {
    await prom.stop()
    await app.stop()
  }
}

function toSeries(samples: PromSample[], label: (m: Record<string, string>) => string): Series[] {
  return samples
    .map((sample, i) => ({
      label: label(sample.metric),
      color: COLORS[Number(sample.metric.worker_id ?? i) % COLORS.length],
      points: (sample.values ?? [])
        .map(([t, v]) => [t, Number(v)] as [number, number])
        .filter(([, v]) => Number.isFinite(v)),
    }))
    .sort((a, b) => a.label.localeCompare(b.label))
}

const peak = (s: Series) => Math.max(...s.points.map(([, v]) => v)).toFixed(1)

const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;')

function render(input: {
  rates: Series[]
  answered: Series[]
  start: number
  end: number
  killedAt: number
  caption: string[]
}): string {
  const width = 960
  const left = 60
  const right = 210
  const plotWidth = width - left - right
  const x = (t: number) => left + ((t - input.start) / (input.end - input.start)) * plotWidth
  const parts: string[] = []
  let top = 40

  const chart = (title: string, series: Series[], height: number, yMax: number, ticks: number) => {
    const y = (v: number) => top + height - (v / yMax) * height
    parts.push(`<text x="${left}" y="${top - 10}" class="title">${esc(title)}</text>`)
    for (let i = 0; i <= ticks; i++) {
      const v = (yMax / ticks) * i
      parts.push(
        `<line x1="${left}" x2="${left + plotWidth}" y1="${y(v)}" y2="${y(v)}" class="grid"/>`,
        `<text x="${left - 6}" y="${y(v) + 4}" class="axis" text-anchor="end">${+v.toFixed(1)}</text>`,
      )
    }
    for (let t = 0; t <= input.end - input.start; t += 30) {
      parts.push(
        `<text x="${x(input.start + t)}" y="${top + height + 16}" class="axis" text-anchor="middle">${t}s</text>`,
      )
    }
    if (input.killedAt > 0) {
      const kx = x(input.killedAt)
      parts.push(
        `<line x1="${kx}" x2="${kx}" y1="${top}" y2="${top + height}" class="kill"/>`,
        `<text x="${kx + 4}" y="${top + 12}" class="axis">worker ${KILLED_WORKER} killed</text>`,
      )
    }
    series.forEach((s, i) => {
      const d = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
      parts.push(
        `<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
        `<rect x="${left + plotWidth + 14}" y="${top + i * 18}" width="12" height="3" fill="${s.color}"/>`,
        `<text x="${left + plotWidth + 32}" y="${top + i * 18 + 5}" class="legend">${esc(s.label)}: ${peak(s)}</text>`,
      )
    })
    top += height + 60
  }

  const rateMax = Math.max(...input.rates.flatMap((s) => s.points.map(([, v]) => v)), 1)
  chart(
    'Requests per second, per worker and total (the dashboard query)',
    input.rates,
    240,
    Math.ceil(rateMax / 50) * 50,
    4,
  )
  chart('Workers answering the cluster-view gather', input.answered, 90, 5, 5)
  const height = top + 10 + (input.caption.length - 1) * 15
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    '<style>.title{font-size:14px;font-weight:bold}.axis{font-size:11px;fill:#555}.legend{font-size:12px}.grid{stroke:#e5e5e5}.kill{stroke:#d62728;stroke-dasharray:3 3}</style>',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...parts,
    ...input.caption.map(
      (line, i) =>
        `<text x="${left}" y="${height - 12 - (input.caption.length - 1 - i) * 15}" class="axis">${esc(line)}</text>`,
    ),
    '</svg>',
    '',
  ].join('\n')
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
