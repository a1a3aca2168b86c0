// The last counts of workers that left for good (pm2 scale down, a stop of some of them). Such
// a worker writes its handover like any stopping process, but no successor takes it, so what
// it counted after Prometheus' last scrape of it would never be stored. Until a process of that
// worker id takes the handover, or it is too old to continue anything, the answering worker
// renders it under the departed worker's id: the next scrape stores those final values, and
// the series end there (stale), as a stopped process' series do.
import { lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Registry, RegistryContentType } from 'prom-client'
import type { Exposition, ExpositionFormat } from '../exposition/exposition-format'
import type { RenderedPart } from '../exposition/exposition-merge'
import { renderRegistry } from '../exposition/exposition-render'
import type { NativeFor } from '../exposition/protobuf/render'
import { clientFor } from '../lib/metrics-client'
import { defaultLabelsOf } from '../lib/prom-client-internals'
import { type SocketPaths, workerIdOfHandover } from '../run-dir/socket-paths'
import { CarriedMetrics } from './carried-metrics'
import {
  type Handover,
  handoverOwnerMismatch,
  handoverTimeProblem,
  readHandoverFile,
} from './handover'
import type { NativeCarry } from './native-carry'
import type { SuccessionLog } from './succession'

export interface DepartedWorkersOptions {
  paths: SocketPaths
  scope: string
  /** The worker's own registry: its default labels, and the carried metrics' definitions. */
  registry: Registry<RegistryContentType>
  carried: CarriedMetrics
  /** This worker's native histograms, if it keeps any: a departed worker's are rendered too. */
  native?: NativeCarry
  log: SuccessionLog
}

/** What a departed worker's handover renders from. */
interface Departed {
  registry: Registry<RegistryContentType>
  nativeFor?: NativeFor
}

/** One handover file as last read, known by its inode, size and mtime. */
interface Read {
  identity: string
  /** What to render it from, or why it is not rendered. */
  departed: Departed | string
  /** Its time is judged at each render: a clock stepped back makes no refusal last. */
  handover?: Handover
  /** Each format rendered once: text, or protobuf's bytes. */
  renders: Map<ExpositionFormat, Promise<Exposition>>
}

export class DepartedWorkers {
  private readonly reads = new Map<string, Read>()

  constructor(private readonly options: DepartedWorkersOptions) {}

  /**
   * The final values of every worker id not in `expected` that left a handover no process has
   * taken, each rendered in `format` as its own part. A file is read and rendered once; it is
   * never changed here (a successor may still take it).
   */
  async render(expected: ReadonlySet<string>, format: ExpositionFormat): Promise<RenderedPart[]> {
    const { dir } = this.options.paths
    const parts: RenderedPart[] = []
    const present = new Set<string>()
    for (const name of readdirSync(dir)) {
      const workerId = workerIdOfHandover(name)
      if (workerId === undefined || expected.has(workerId)) continue
      present.add(name)
      const read = this.read(name, workerId)
      if (read === undefined || typeof read.departed === 'string') continue
      // Too old now (a successor would refuse it too, and Prometheus has its final values), or
      // dated in the future.
      if (read.handover === undefined || handoverTimeProblem(read.handover) !== undefined) continue
      let body = read.renders.get(format)
      if (body === undefined) {
        body = renderRegistry(read.departed.registry, format, {
          nativeFor: read.departed.nativeFor,
        })
        read.renders.set(format, body)
      }
      parts.push({ workerId, body: await body })
    }
    for (const name of this.reads.keys()) if (!present.has(name)) this.reads.delete(name)
    return parts
  }

  /** The file `name` as read before if unchanged since, else read now; `undefined` if gone. */
  private read(name: string, workerId: string): Read | undefined {
    const path = join(this.options.paths.dir, name)
    const stat = lstatSync(path, { throwIfNoEntry: false })
    if (stat === undefined) return undefined
    const identity = `${stat.ino}:${stat.size}:${stat.mtimeMs}`
    const known = this.reads.get(name)
    if (known?.identity === identity) return known
    let read: Read
    try {
      const handover = readHandoverFile(path)
      read = {
        identity,
        departed: this.departedFrom(handover, workerId),
        handover,
        renders: new Map(),
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined // taken meanwhile
      read = { identity, departed: String(err), renders: new Map() }
    }
    this.reads.set(name, read)
    if (typeof read.departed === 'string') {
      this.options.log.warn(
        { departed_worker_id: workerId, reason: read.departed },
        'not serving the handover of a worker that left',
      )
    } else {
      this.options.log.info(
        { departed_worker_id: workerId },
        'serving the last counts of a worker that left, until a process of it takes them',
      )
    }
    return read
  }

  /**
   * A registry holding `handover`'s values alone, with its native histograms if this worker
   * keeps them too, or why it cannot be rendered.
   */
  private departedFrom(handover: Handover, workerId: string): Departed | string {
    const mismatch = handoverOwnerMismatch(handover, this.options.scope, workerId)
    if (mismatch !== undefined) return mismatch
    const registry = new (clientFor(this.options.registry).Registry)<RegistryContentType>()
    // The departed worker's series carry its worker_id, as its own registry rendered them.
    registry.setDefaultLabels({ ...defaultLabelsOf(this.options.registry), worker_id: workerId })
    this.options.carried.defineIn(registry)
    const carried = new CarriedMetrics(registry, this.options.carried.names())
    const incompatibility = carried.incompatibility(handover.families)
    if (incompatibility !== undefined) return incompatibility
    const { dropped, reasons } = carried.add(handover.families)
    if (dropped > 0) {
      this.options.log.warn(
        { departed_worker_id: workerId, dropped, reasons },
        'left series out of a departed worker’s handover that this process’ metrics no longer define',
      )
    }
    // A series whose native histogram is missing or left out has one made from its classic
    // buckets: Prometheus refuses a family that mixes native and classic-only series.
    const native = this.options.native?.detached(handover.native ?? [], handover.families)
    if (native !== undefined && native.dropped > 0) {
      this.options.log.warn(
        { departed_worker_id: workerId, dropped: native.dropped },
        'left native histograms out of a departed worker’s handover',
      )
    }
    return { registry, nativeFor: native?.nativeFor }
  }
}
