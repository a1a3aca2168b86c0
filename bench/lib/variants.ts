// The single-process servers the benches compare: the CPU-time bench runs VARIANTS in round
// order, the instruction-count bench runs CALLGRIND_VARIANTS.
export const VARIANTS = [
  'bare',
  'plugin',
  'plugin-http-only',
  'fastify-metrics-histogram',
  'fastify-metrics-defaults',
] as const

export type Variant = (typeof VARIANTS)[number]

/**
 * Bare, this plugin three ways (native histograms on: what they add to a request), the
 * simplest hand-written hook, and fastify-metrics' lightest.
 */
export const CALLGRIND_VARIANTS = [
  'bare',
  'plugin',
  'plugin-http-only',
  'plugin-native',
  'naive-hook',
  'fastify-metrics-histogram',
] as const

export type CallgrindVariant = (typeof CALLGRIND_VARIANTS)[number]

/** Every server variant/servers/variant-server.ts can start. */
export type ServerVariant = Variant | CallgrindVariant

export const VARIANT_LABELS: Record<ServerVariant, string> = {
  bare: 'bare Fastify',
  plugin: 'Fastify + this plugin, as the service runs it (counter + histogram + process metrics)',
  'plugin-http-only': 'Fastify + this plugin, HTTP metrics only (defaultMetrics: false)',
  'plugin-native':
    'Fastify + this plugin as the service runs it, with native histograms (schema 3, ≤ 160 buckets)',
  'naive-hook':
    'Fastify + a naive global onResponse hook (prom-client counter + histogram, labels per request)',
  'fastify-metrics-histogram': 'Fastify + fastify-metrics, histogram only',
  'fastify-metrics-defaults':
    'Fastify + fastify-metrics, defaults (histogram + summary + process metrics)',
}

export function isServerVariant(value: string): value is ServerVariant {
  return value in VARIANT_LABELS
}

/** Messages between the bench runner and a variant server, over the IPC channel. */
export type ServerMessage =
  | { type: 'ready'; port: number }
  | { type: 'usage'; cpuMicros: number; rssBytes: number }
  | { type: 'gc-done' }

export type RunnerMessage = { type: 'usage' } | { type: 'gc' } | { type: 'close' }
