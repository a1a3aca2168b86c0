// Part 1 of the bench: CPU per request and latency at a fixed arrival rate, for the four
// single-process variants, in interleaved rounds (A B C D, D C B A, ...), with ratios to bare
// Fastify computed within each round. Then, optionally, saturation throughput with the server
// and the load generator pinned to different cores.
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { forkScript, nextMessage, pinToCpus, stopChild } from './children'
import type { LoadMessage, LoadOptions, LoadRequest, LoadResult } from './load-generator'
import { round, type Spread, spread } from './stats'
import { type ServerMessage, VARIANTS, type Variant } from './variants'

const SERVER_SCRIPT = join(__dirname, '..', 'servers', 'variant-server.ts')
const LOAD_SCRIPT = join(__dirname, 'load-generator.ts')

/** The same mix for every variant: two routes, 200s and a 404 from a matched route. */
export const REQUEST_MIX: LoadRequest[] = [
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/items/2' },
  { method: 'GET', path: '/items/42' },
]

export interface CpuSettings {
  rate: number
  durationS: number
  rounds: number
  warmupS: number
  /** Unmeasured traffic right before each measurement, so the server runs hot when measured. */
  preheatS: number
  connections: number
}

export interface SaturationSettings {
  durationS: number
  rounds: number
  connections: number
}

export interface VariantRound {
  cpuMicrosPerRequest: number
  responses: number
  errors: number
  rps: number
  latencyMs: LoadResult['latencyMs']
}

export interface CpuRound {
  order: Variant[]
  variants: Record<Variant, VariantRound>
  /** CPU per request of each variant ÷ bare Fastify's, in this round. */
  ratioToBare: Record<Variant, number>
  /** Latency of each variant minus bare Fastify's, in this round, in ms. */
  addedLatencyMs: Record<Variant, { p50: number; p99: number }>
}

export interface CpuSummary {
  cpuMicrosPerRequest: Spread
  ratioToBare: Spread
  latencyP50Ms: Spread
  latencyP99Ms: Spread
  addedLatencyP50Ms: Spread
  addedLatencyP99Ms: Spread
}

export interface CpuResults {
  settings: CpuSettings
  requestMix: LoadRequest[]
  rounds: CpuRound[]
  summary: Record<Variant, CpuSummary>
}

export interface SaturationResults {
  settings: SaturationSettings
  label: string
  pinned: { serverCpu: string; loadGeneratorCpu: string } | null
  rounds: Array<{ order: Variant[]; rps: Record<Variant, number> }>
  summary: Record<Variant, { rps: Spread; ratioToBare: Spread }>
}

interface Server {
  variant: Variant
  child: ChildProcess & { pid: number }
  url: string
}

/** Round r runs the variants forwards when r is even, backwards when odd. */
export function roundOrder(r: number): Variant[] {
  return r % 2 === 0 ? [...VARIANTS] : [...VARIANTS].reverse()
}

export class LoadGenerator {
  private constructor(readonly child: ChildProcess & { pid: number }) {}

  static start(): LoadGenerator {
    return new LoadGenerator(forkScript(LOAD_SCRIPT))
  }

  async run(options: LoadOptions): Promise<LoadResult> {
    const answer = nextMessage(
      this.child,
      (m) => {
        const message = m as LoadMessage
        return message.type === 'result' || message.type === 'error' ? message : undefined
      },
      (options.durationS + 60) * 1000,
      'load generator',
    )
    this.child.send({ type: 'run', options } satisfies LoadMessage)
    const message = await answer
    if (message.type === 'error') throw new Error(`load generator: ${message.message}`)
    if (message.type !== 'result') throw new Error('load generator: unexpected answer')
    return message.result
  }

  /** Exactly `count` GETs of `url` on one keep-alive connection; the number answered. */
  async fixed(url: string, count: number, timeoutMs: number): Promise<number> {
    const answer = nextMessage(
      this.child,
      (m) => {
        const message = m as LoadMessage
        return message.type === 'fixed-result' || message.type === 'error' ? message : undefined
      },
      timeoutMs,
      'load generator',
    )
    this.child.send({ type: 'fixed', url, count } satisfies LoadMessage)
    const message = await answer
    if (message.type === 'error') throw new Error(`load generator: ${message.message}`)
    if (message.type !== 'fixed-result') throw new Error('load generator: unexpected answer')
    return message.answered
  }

  stop(): Promise<void> {
    return stopChild(this.child)
  }
}

async function startServer(variant: Variant, execArgv: string[]): Promise<Server> {
  const child = forkScript(SERVER_SCRIPT, [variant], execArgv)
  try {
    const port = await nextMessage(
      child,
      (m) => ((m as ServerMessage).type === 'ready' ? (m as { port: number }).port : undefined),
      60_000,
      `${variant} server start`,
    )
    return { variant, child, url: `http://127.0.0.1:${port}` }
  } catch (err) {
    await stopChild(child)
    throw err
  }
}

async function cpuMicrosOf(server: Server): Promise<number> {
  const answer = nextMessage(
    server.child,
    (m) => ((m as ServerMessage).type === 'usage' ? (m as { cpuMicros: number }) : undefined),
    30_000,
    `${server.variant} usage`,
  )
  server.child.send({ type: 'usage' })
  return (await answer).cpuMicros
}

export interface SingleProcessOptions {
  cpu: CpuSettings
  saturation: SaturationSettings | null
  /** Extra node flags for the servers, e.g. --cpu-prof. */
  serverExecArgv?: string[]
  log: (line: string) => void
}

export async function runSingleProcessBench(
  options: SingleProcessOptions,
): Promise<{ cpu: CpuResults; saturation: SaturationResults | null }> {
  const { cpu: settings, log } = options
  const servers = new Map<Variant, Server>()
  const load = LoadGenerator.start()
  try {
    const started = await Promise.allSettled(
      VARIANTS.map((variant) => startServer(variant, options.serverExecArgv ?? [])),
    )
    for (const result of started) {
      if (result.status === 'fulfilled') servers.set(result.value.variant, result.value)
    }
    const failed = started.find((result) => result.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
    const serverOf = (variant: Variant) => servers.get(variant) as Server
    const fixedRate = (url: string, durationS: number): LoadOptions => ({
      url,
      requests: REQUEST_MIX,
      connections: settings.connections,
      durationS,
      rate: settings.rate,
    })

    log(`warm-up: ${settings.warmupS} s per variant at ${settings.rate} req/s`)
    for (const variant of VARIANTS)
      await load.run(fixedRate(serverOf(variant).url, settings.warmupS))

    const rounds: CpuRound[] = []
    for (let r = 0; r < settings.rounds; r++) {
      const order = roundOrder(r)
      const variants = {} as Record<Variant, VariantRound>
      for (const variant of order) {
        const server = serverOf(variant)
        // Without this, whichever server ran last (first of the next round) is cheaper: its
        // caches are still warm. A short unmeasured run puts every server in the same state.
        if (settings.preheatS > 0) await load.run(fixedRate(server.url, settings.preheatS))
        const before = await cpuMicrosOf(server)
        const result = await load.run(fixedRate(server.url, settings.durationS))
        const after = await cpuMicrosOf(server)
        if (result.responses === 0) throw new Error(`${variant}: no responses`)
        variants[variant] = {
          cpuMicrosPerRequest: round((after - before) / result.responses),
          responses: result.responses,
          errors: result.errors + result.timeouts,
          rps: round(result.rps, 1),
          latencyMs: result.latencyMs,
        }
      }
      const bare = variants.bare
      const ratioToBare = {} as CpuRound['ratioToBare']
      const addedLatencyMs = {} as CpuRound['addedLatencyMs']
      for (const variant of VARIANTS) {
        const v = variants[variant]
        ratioToBare[variant] = round(v.cpuMicrosPerRequest / bare.cpuMicrosPerRequest, 4)
        addedLatencyMs[variant] = {
          p50: round(v.latencyMs.p50 - bare.latencyMs.p50, 4),
          p99: round(v.latencyMs.p99 - bare.latencyMs.p99, 4),
        }
      }
      rounds.push({ order, variants, ratioToBare, addedLatencyMs })
      log(
        `round ${r + 1}/${settings.rounds} (${order.join(' ')}): ` +
          VARIANTS.map(
            (v) => `${v} ${variants[v].cpuMicrosPerRequest.toFixed(1)} µs ×${ratioToBare[v]}`,
          ).join(', '),
      )
    }

    const summary = {} as Record<Variant, CpuSummary>
    for (const variant of VARIANTS) {
      const of = (pick: (round: CpuRound) => number) => roundSpread(rounds.map(pick))
      summary[variant] = {
        cpuMicrosPerRequest: of((x) => x.variants[variant].cpuMicrosPerRequest),
        ratioToBare: of((x) => x.ratioToBare[variant]),
        latencyP50Ms: of((x) => x.variants[variant].latencyMs.p50),
        latencyP99Ms: of((x) => x.variants[variant].latencyMs.p99),
        addedLatencyP50Ms: of((x) => x.addedLatencyMs[variant].p50),
        addedLatencyP99Ms: of((x) => x.addedLatencyMs[variant].p99),
      }
    }
    const cpu: CpuResults = { settings, requestMix: REQUEST_MIX, rounds, summary }

    const saturation = options.saturation
      ? await runSaturation(options.saturation, servers, load, log)
      : null
    return { cpu, saturation }
  } finally {
    await load.stop()
    await Promise.all([...servers.values()].map((server) => stopChild(server.child)))
  }
}

async function runSaturation(
  settings: SaturationSettings,
  servers: Map<Variant, Server>,
  load: LoadGenerator,
  log: (line: string) => void,
): Promise<SaturationResults> {
  // One core for the server, another for the load generator: otherwise one autocannon on this
  // machine saturates before the server does, and the figure says nothing about the server.
  const pinned = { serverCpu: '0', loadGeneratorCpu: '1' }
  await pinToCpus(load.child.pid, pinned.loadGeneratorCpu)
  for (const server of servers.values()) await pinToCpus(server.child.pid, pinned.serverCpu)
  const rounds: SaturationResults['rounds'] = []
  for (let r = 0; r < settings.rounds; r++) {
    const order = roundOrder(r)
    const rps = {} as Record<Variant, number>
    for (const variant of order) {
      const server = servers.get(variant) as Server
      const result = await load.run({
        url: server.url,
        requests: REQUEST_MIX,
        connections: settings.connections,
        durationS: settings.durationS,
      })
      rps[variant] = round(result.rps, 0)
    }
    rounds.push({ order, rps })
    log(
      `saturation round ${r + 1}/${settings.rounds}: ${VARIANTS.map((v) => `${v} ${rps[v]}`).join(', ')} req/s`,
    )
  }
  const summary = {} as SaturationResults['summary']
  for (const variant of VARIANTS) {
    summary[variant] = {
      rps: roundSpread(rounds.map((x) => x.rps[variant])),
      ratioToBare: roundSpread(rounds.map((x) => x.rps[variant] / x.rps.bare)),
    }
  }
  return {
    settings,
    label:
      'saturation, server pinned to CPU 0 and load generator to CPU 1 (other processes unpinned)',
    pinned,
    rounds,
    summary,
  }
}

function roundSpread(values: number[]): Spread {
  const s = spread(values)
  return { median: round(s.median, 4), min: round(s.min, 4), max: round(s.max, 4) }
}
