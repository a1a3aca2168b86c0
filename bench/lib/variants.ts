// The four single-process servers the CPU-per-request bench compares, in round order.
export const VARIANTS = [
  'bare',
  'plugin',
  'plugin-http-only',
  'fastify-metrics-histogram',
  'fastify-metrics-defaults',
] as const

export type Variant = (typeof VARIANTS)[number]

export const VARIANT_LABELS: Record<Variant, string> = {
  bare: 'bare Fastify',
  plugin: 'Fastify + this plugin, as the service runs it (counter + histogram + process metrics)',
  'plugin-http-only': 'Fastify + this plugin, HTTP metrics only (defaultMetrics: false)',
  'fastify-metrics-histogram': 'Fastify + fastify-metrics, histogram only',
  'fastify-metrics-defaults':
    'Fastify + fastify-metrics, defaults (histogram + summary + process metrics)',
}

export function isVariant(value: string): value is Variant {
  return (VARIANTS as readonly string[]).includes(value)
}

/** Messages between the bench runner and a variant server, over the IPC channel. */
export type ServerMessage =
  | { type: 'ready'; port: number }
  | { type: 'usage'; cpuMicros: number; rssBytes: number }

export type RunnerMessage = { type: 'usage' } | { type: 'close' }
