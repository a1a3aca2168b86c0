// Wires the cluster view into a Fastify app: created with the plugin's registry, started when
// the app is ready (before it listens), closed after its last request so the counts are handed
// to the worker's next process. The cluster code itself knows no Fastify.
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { ClusterView } from '../gather/cluster-view'
import { createSocketPaths, socketDirFor } from '../run-dir/socket-paths'
import type { NativeCarry } from '../succession/native-carry'
import type { MetricsCollector } from './metrics-route'

export interface ClusterOptions {
  /**
   * Names the app's private socket directory and the scope of count handovers: workers with
   * the same key on one host (and uid) gather each other. PM2's app name by default; set it
   * when one host runs two copies of one app (the service uses `<app>-<port>`).
   */
  key?: string
  /** The socket directory itself, instead of one derived from the key. */
  socketDir?: string
  /** Longest wait for the siblings of one scrape, in ms (default 1000). */
  gatherTimeoutMs?: number
  /** A gather that ended less than this many ms ago answers the next scrape (default 0). */
  reuseMs?: number
}

export interface ClusterWiring {
  collect: MetricsCollector
  /** Marks this process as stopping (see ClusterView.beginStop). */
  beginStop(): void
}

export function clusterCollector(
  fastify: FastifyInstance,
  registry: Registry,
  workerId: string,
  appName: string | undefined,
  options: ClusterOptions,
  native?: NativeCarry,
): ClusterWiring {
  const key = options.key ?? appName ?? 'app'
  const view = new ClusterView({
    registry,
    workerId,
    scope: key,
    gatherTimeoutMs: options.gatherTimeoutMs ?? 1000,
    reuseMs: options.reuseMs ?? 0,
    native,
    paths: createSocketPaths(options.socketDir ?? socketDirFor(key), workerId),
    // A worker that missed a gather is logged by the worker that noticed.
    onMissing: (workerIds, budgetMs) =>
      fastify.log.warn({ missing: workerIds, budgetMs }, 'workers missing from the metrics gather'),
    onError: (err) => fastify.log.warn({ err }, 'metrics socket error'),
    log: {
      info: (obj, msg) => fastify.log.info(obj, msg),
      warn: (obj, msg) => fastify.log.warn(obj, msg),
      error: (obj, msg) => fastify.log.error(obj, msg),
    },
  })
  fastify.addHook('onReady', async () => view.start())
  fastify.addHook('onClose', async () => view.close())
  return {
    // The merged bytes as they are: the text is never decoded for a scrape.
    collect: async (scrape) =>
      (await view.gather(scrape.format, scrape.scrapeTimeoutSeconds)).bytes,
    beginStop: () => view.beginStop(),
  }
}
