// The instruction-count bench: each single-process variant under `valgrind --tool=callgrind`,
// warmed up, counters zeroed (`callgrind_control -z`), then exactly N requests on one keep-alive
// connection from the load generator (a separate process on 127.0.0.1), dumped
// (`callgrind_control -d`) and divided. CPU time per request on a shared machine varies by
// ±20 % per round; instructions per request repeat to a fraction of a percent, so they resolve
// what a few hundred nanoseconds of plugin cost cannot.
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { forkScript, nextMessage, stopChild } from './children'
import type { LoadGenerator } from './single-process'
import { round, type Spread } from './stats'
import {
  CALLGRIND_VARIANTS,
  type CallgrindVariant,
  type RunnerMessage,
  type ServerMessage,
} from './variants'

const run = promisify(execFile)
const ROOT = join(__dirname, '..', '..')

/**
 * The project compiled to JavaScript under `buildDir`: the measured servers run without tsx,
 * whose loader thread and esbuild service would otherwise do work inside the measurement.
 * Returns the compiled variant server.
 */
async function compileServer(buildDir: string): Promise<string> {
  await run(
    process.execPath,
    [
      join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      ...['-p', join(ROOT, 'tsconfig.json'), '--noEmit', 'false', '--sourceMap', 'false'],
      ...['--rootDir', ROOT, '--outDir', buildDir],
    ],
    { cwd: ROOT },
  )
  return join(buildDir, 'bench', 'servers', 'variant-server.js')
}

/**
 * The same for every variant. `--smc-check=all-non-file`: V8 writes machine code into
 * anonymous memory, which valgrind must re-translate when it changes. `--instr-atstart=no`:
 * start-up runs uninstrumented (faster); counting starts with the warm-up.
 */
export const VALGRIND_FLAGS = [
  '--quiet',
  '--tool=callgrind',
  '--smc-check=all-non-file',
  '--instr-atstart=no',
]
/**
 * `--predictable` (single-threaded V8: no compiler or GC helper threads, whose work would land
 * in or out of the window by scheduling) and `--predictable-gc-schedule` (heap growth not tied
 * to time); `--expose-gc` for a minor collection before the counters are zeroed, so every run
 * starts from an empty young generation and its collections fall at the same requests.
 * Without these, runs of one variant differed by up to 25 %; with them, three runs of each
 * variant agree within 0.1 % (fastify-metrics within 0.4 %).
 */
export const NODE_FLAGS = ['--predictable', '--predictable-gc-schedule', '--expose-gc']

export interface CallgrindSettings {
  /** Requests before the counters are zeroed (in two halves): every hot function optimised. */
  warmupRequests: number
  /** Requests measured. */
  requests: number
  path: string
  /** Times every variant is measured, each in a fresh process. */
  runs: number
  /** Variants measured at once (the count of instructions does not depend on it). */
  parallel: number
  /** Also write node's perf map, so bench/callgrind-annotate.ts can name JS functions. */
  profile: boolean
}

export interface CallgrindVariantResult {
  /** Instructions per request, one per run. */
  perRequest: number[]
  /** Median over runs, and the spread of runs as a share of it. */
  summary: Spread & { spreadPercent: number }
  /** Median of this variant ÷ median of bare Fastify. */
  ratioToBare: number
}

export interface CallgrindResults {
  settings: CallgrindSettings
  valgrindFlags: string[]
  nodeFlags: string[]
  variants: Record<CallgrindVariant, CallgrindVariantResult>
}

/** Total instructions of a callgrind dump (its `summary:` line). */
export function instructionsOf(dumpFile: string): number {
  const match = /^summary: (\d+)$/m.exec(readFileSync(dumpFile, 'utf8'))
  if (match === null) throw new Error(`no summary line in ${dumpFile}`)
  return Number(match[1])
}

async function measureOnce(
  serverScript: string,
  variant: CallgrindVariant,
  settings: CallgrindSettings,
  load: LoadGenerator,
  outFile: string,
  log: (line: string) => void,
): Promise<number> {
  const nodeFlags = settings.profile ? [...NODE_FLAGS, '--perf-basic-prof'] : NODE_FLAGS
  const child = forkScript(serverScript, [variant], nodeFlags, {
    execPath: 'valgrind',
    wrapperArgs: [...VALGRIND_FLAGS, `--callgrind-out-file=${outFile}`],
  })
  try {
    const port = await nextMessage(
      child,
      (m) => ((m as ServerMessage).type === 'ready' ? (m as { port: number }).port : undefined),
      300_000,
      `${variant} under callgrind, start`,
    )
    const url = `http://127.0.0.1:${port}${settings.path}`
    // Requests under callgrind take tens of times longer than natively.
    const timeoutMs = (requests: number) => 60_000 + requests * 100
    await run('callgrind_control', ['--instr=on', String(child.pid)])
    const minorGc = async () => {
      const collected = nextMessage(
        child,
        (m) => ((m as ServerMessage).type === 'gc-done' ? true : undefined),
        60_000,
        `${variant} gc`,
      )
      child.send({ type: 'gc' } satisfies RunnerMessage)
      await collected
    }
    // Two halves, each ended by a minor collection. The first collection makes V8 revise its
    // allocation decisions and re-optimise much of the hot path (about 3,000 requests of
    // compiling); the second half runs that out. The window still holds the two or three late
    // optimisations node also makes natively in those requests (--trace-opt), as it should.
    const half = Math.ceil(settings.warmupRequests / 2)
    for (let i = 0; i < 2; i++) {
      await load.fixed(url, half, timeoutMs(half))
      await minorGc()
    }
    await run('callgrind_control', ['-z', String(child.pid)])
    const answered = await load.fixed(url, settings.requests, timeoutMs(settings.requests))
    await run('callgrind_control', ['-d', String(child.pid)])
    if (settings.profile) {
      log(
        `  annotate: node --import tsx bench/callgrind-annotate.ts ${outFile}.1 /tmp/perf-${child.pid}.map`,
      )
    }
    return instructionsOf(`${outFile}.1`) / answered
  } finally {
    await stopChild(child, 60_000)
  }
}

export async function runCallgrindBench(
  settings: CallgrindSettings,
  startLoad: () => LoadGenerator,
  outDir: string,
  log: (line: string) => void,
): Promise<CallgrindResults> {
  mkdirSync(outDir, { recursive: true })
  // Inside the repository, so the compiled code finds node_modules.
  const serverScript = await compileServer(join(outDir, 'build'))
  const jobs = Array.from({ length: settings.runs }, (_, r) =>
    CALLGRIND_VARIANTS.map((variant) => ({ variant, r })),
  ).flat()
  const perRequest = Object.fromEntries(
    CALLGRIND_VARIANTS.map((v) => [v, [] as number[]]),
  ) as Record<CallgrindVariant, number[]>
  // A few workers, each with its own load generator, take jobs in order.
  const queue = [...jobs]
  const worker = async () => {
    const load = startLoad()
    try {
      for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
        const { variant, r } = job
        const value = await measureOnce(
          serverScript,
          variant,
          settings,
          load,
          join(outDir, `${variant}-run${r + 1}.out`),
          log,
        )
        perRequest[variant][r] = value
        log(
          `callgrind run ${r + 1}/${settings.runs}, ${variant}: ${Math.round(value)} instructions per request`,
        )
      }
    } finally {
      await load.stop()
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, settings.parallel) }, worker))

  const medianOf = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b)
    const mid = sorted.length >> 1
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  }
  const bare = medianOf(perRequest.bare)
  const variants = {} as CallgrindResults['variants']
  for (const variant of CALLGRIND_VARIANTS) {
    const values = perRequest[variant]
    const median = medianOf(values)
    const min = Math.min(...values)
    const max = Math.max(...values)
    variants[variant] = {
      perRequest: values.map((v) => round(v, 0)),
      summary: {
        median: round(median, 0),
        min: round(min, 0),
        max: round(max, 0),
        spreadPercent: round(((max - min) / median) * 100, 3),
      },
      ratioToBare: round(median / bare, 4),
    }
  }
  return {
    settings,
    valgrindFlags: VALGRIND_FLAGS,
    nodeFlags: NODE_FLAGS,
    variants,
  }
}
