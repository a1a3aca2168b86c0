// The metrics client the app has: prom-client 15.1 or its successor @prometheus-io/client 0.16,
// both optional peers of this package. Each is loaded with this module's own `require`, which
// finds the app's copy (a peer is installed beside this package, never under it), so the plugin
// never loads a second copy: two copies are two sets of classes and two global registries, and
// metrics made with one are invisible to a registry of the other. Every registry, counter,
// gauge and histogram the plugin makes comes from the client of the registry it records into.
import type * as PromClient from 'prom-client'
import {
  type ClientInternals,
  internalsProblems,
  promClientInternals,
  prometheusIoInternals,
} from './prom-client-internals'

export type ClientName = 'prom-client' | '@prometheus-io/client'

/** The client the plugin records with: its classes, and how to read its internals. */
export interface MetricsClient {
  name: ClientName
  /** The installed version, as its package.json says. */
  version: string
  Registry: typeof PromClient.Registry
  Counter: typeof PromClient.Counter
  Gauge: typeof PromClient.Gauge
  Histogram: typeof PromClient.Histogram
  collectDefaultMetrics: typeof PromClient.collectDefaultMetrics
  prometheusContentType: string
  openMetricsContentType: string
  internals: ClientInternals
}

/** The clients in the order chosen when the app has both and gives no registry. */
const SUPPORTED: ReadonlyArray<{ name: ClientName; range: string; internals: ClientInternals }> = [
  { name: 'prom-client', range: '~15.1.3', internals: promClientInternals },
  { name: '@prometheus-io/client', range: '^0.16.1', internals: prometheusIoInternals },
]

let installed: readonly MetricsClient[] | undefined

/** The supported clients the app has installed, each loaded once, in SUPPORTED's order. */
export function installedClients(): readonly MetricsClient[] {
  installed ??= SUPPORTED.flatMap(({ name, internals }) => {
    const module = loadIfInstalled(name)
    return module === undefined ? [] : [clientOfModule(name, module, internals)]
  })
  return installed
}

/**
 * The client to record with: the one whose `Registry` made `registry`, or without a registry,
 * the one installed (prom-client if both are: with no registry given, only the plugin's own
 * metrics live in the registry it makes, so either serves). Throws naming what to install or
 * why the registry cannot be recorded into.
 */
export function clientFor(registry?: unknown): MetricsClient {
  const clients = installedClients()
  if (clients.length === 0) {
    throw new Error(
      `fastify-pm2-cluster-metrics needs a metrics client: install ${SUPPORTED.map(
        (client) => `${client.name}@${client.range}`,
      ).join(' or ')}; neither can be loaded from ${__dirname}`,
    )
  }
  if (registry === undefined) return checked(clients[0])
  const client = clients.find((candidate) => registry instanceof candidate.Registry)
  if (client === undefined) {
    throw new TypeError(
      `metrics registry is not a Registry of the ${clients
        .map((candidate) => `${candidate.name} ${candidate.version}`)
        .join(' or ')} this app loads: it comes from another client or another copy of it, ` +
        'whose metrics this plugin could not record into. Make it with the installed client, ' +
        'and keep one copy of it in the app.',
    )
  }
  return checked(client)
}

/** The client whose classes made `registryOrMetric` (a registry, counter, gauge or histogram). */
export function clientOf(registryOrMetric: object): MetricsClient {
  for (const client of installedClients()) {
    if (
      registryOrMetric instanceof client.Registry ||
      registryOrMetric instanceof client.Counter ||
      registryOrMetric instanceof client.Histogram ||
      registryOrMetric instanceof client.Gauge
    ) {
      return client
    }
  }
  return clientFor(registryOrMetric)
}

const verified = new Set<MetricsClient>()

/**
 * The client, once its internals read as the plugin expects (checked on first use, at
 * registration): an untested release that moved them is named rather than misread.
 */
function checked(client: MetricsClient): MetricsClient {
  if (verified.has(client)) return client
  const problems = internalsProblems(client)
  if (problems.length > 0) {
    throw new Error(
      `fastify-pm2-cluster-metrics cannot read ${client.name} ${client.version}: ${problems.join(
        '; ',
      )}. It supports ${SUPPORTED.map((supported) => `${supported.name}@${supported.range}`).join(
        ' and ',
      )}.`,
    )
  }
  verified.add(client)
  return client
}

function loadIfInstalled(name: ClientName): Record<string, unknown> | undefined {
  try {
    return require(name) as Record<string, unknown>
  } catch (error) {
    const code = (error as { code?: unknown }).code
    // Missing itself: not installed. Anything else (a dependency of it missing, a syntax error
    // on an old Node) is the app's to see.
    if (code === 'MODULE_NOT_FOUND' && String((error as Error).message).includes(`'${name}'`)) {
      return undefined
    }
    throw error
  }
}

function clientOfModule(
  name: ClientName,
  module: Record<string, unknown>,
  internals: ClientInternals,
): MetricsClient {
  return {
    name,
    version: versionOf(name),
    Registry: module.Registry as typeof PromClient.Registry,
    Counter: module.Counter as typeof PromClient.Counter,
    Gauge: module.Gauge as typeof PromClient.Gauge,
    Histogram: module.Histogram as typeof PromClient.Histogram,
    collectDefaultMetrics: module.collectDefaultMetrics as typeof PromClient.collectDefaultMetrics,
    prometheusContentType: module.prometheusContentType as string,
    openMetricsContentType: module.openMetricsContentType as string,
    internals,
  }
}

function versionOf(name: ClientName): string {
  try {
    return String((require(`${name}/package.json`) as { version?: unknown }).version)
  } catch {
    return 'of unknown version'
  }
}
