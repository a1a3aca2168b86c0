// The service's configuration: one JSON schema over the environment, validated at start.
// A bad value stops the process with a message naming the variable (env-schema + Ajv).
import { readFileSync } from 'node:fs'
import envSchema from 'env-schema'
import {
  bucketProblem,
  ConfigError,
  DEFAULT_BUCKETS,
  DEFAULT_MAX_BUCKETS,
  DEFAULT_SCHEMA,
  MAX_SCHEMA,
  MIN_SCHEMA,
  type NativeHistogramOptions,
  WORKER_ID_PATTERN,
  type WorkerIdentity,
} from 'fastify-pm2-cluster-metrics'

// The shutdown budget on SIGINT/SIGTERM, which must add up: requests are taken for at most
// DRAIN_ACCEPT_MS, each ends within SLOW_MAX_MS, then the hard stop leaves SHUTDOWN_RESERVE_MS
// to close the app and hand the counts over, all within the grace and PM2's kill_timeout.

/** How long a stopping worker has in all (below PM2's kill_timeout). */
export const SHUTDOWN_GRACE_MS = 4000
/** After this, a stopping worker takes no new request on its open connections. */
export const DRAIN_ACCEPT_MS = 500
/** Kept at the end of the grace to close the app and hand the counts over. */
export const SHUTDOWN_RESERVE_MS = 500
/** When every connection still open is destroyed, so the stop ends within the grace. */
export const HARD_STOP_MS = SHUTDOWN_GRACE_MS - SHUTDOWN_RESERVE_MS
/** The longest a request may take and still finish in a stop: the cap of SLOW_MAX_MS. */
export const LONGEST_REQUEST_MS = HARD_STOP_MS - DRAIN_ACCEPT_MS

/** A bearer token as HTTP carries it: visible ASCII, no spaces, at least 16 characters. */
const TOKEN_PATTERN = '^[\\x21-\\x7E]{16,}$'

export interface Config {
  PORT: number
  HOST: string
  LOG_LEVEL: string
  LOG_REQUESTS: boolean
  SLOW_MAX_MS: number
  METRICS_BUCKETS: string
  METRICS_NATIVE_HISTOGRAMS: boolean
  METRICS_NATIVE_HISTOGRAM_SCHEMA?: number
  METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS?: number
  METRICS_CLUSTER: boolean
  METRICS_GATHER_TIMEOUT_MS: number
  METRICS_GATHER_REUSE_MS: number
  METRICS_SOCKET_DIR?: string
  METRICS_TOKEN?: string
  METRICS_TOKEN_FILE?: string
  METRICS_PORT?: number
  METRICS_HOST?: string
  WORKER_ID?: string
  HTTP_REQUEST_TIMEOUT_MS?: number
  HTTP_HEADERS_TIMEOUT_MS: number
  HTTP_KEEP_ALIVE_TIMEOUT_MS: number
}

export const configSchema = {
  type: 'object',
  properties: {
    PORT: { type: 'integer', minimum: 1, maximum: 65535, default: 5000 },
    HOST: { type: 'string', minLength: 1, default: '0.0.0.0' },
    LOG_LEVEL: {
      type: 'string',
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
    },
    // Fastify's two lines per request ("incoming request", "request completed"): off unless
    // asked, so `info` logs events rather than traffic (the metrics count the traffic).
    LOG_REQUESTS: { type: 'boolean', default: false },
    // Within the shutdown budget, so a stop never cuts off a /slow request it took.
    SLOW_MAX_MS: {
      type: 'integer',
      minimum: 0,
      maximum: LONGEST_REQUEST_MS,
      default: 3000,
    },
    METRICS_BUCKETS: {
      type: 'string',
      // Comma-separated positive numbers in seconds; order is checked in parseBuckets.
      pattern: '^\\s*\\d+(\\.\\d+)?(\\s*,\\s*\\d+(\\.\\d+)?)*\\s*$',
      default: DEFAULT_BUCKETS.join(','),
    },
    // Native histograms beside the classic buckets of the duration histogram (protobuf only).
    METRICS_NATIVE_HISTOGRAMS: { type: 'boolean', default: false },
    METRICS_NATIVE_HISTOGRAM_SCHEMA: { type: 'integer', minimum: MIN_SCHEMA, maximum: MAX_SCHEMA },
    // Each populated bucket is kept per series; far past the default is a memory cost, not detail.
    METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS: { type: 'integer', minimum: 1, maximum: 10000 },
    METRICS_CLUSTER: { type: 'boolean', default: true },
    METRICS_GATHER_TIMEOUT_MS: { type: 'integer', minimum: 10, maximum: 60000, default: 1000 },
    // Scrapes faster than this share one gather: far below any scrape interval, so Prometheus
    // always gets a fresh one, while a storm of scrapers costs one gather per window.
    METRICS_GATHER_REUSE_MS: { type: 'integer', minimum: 0, maximum: 1000, default: 100 },
    METRICS_SOCKET_DIR: { type: 'string', minLength: 1 },
    METRICS_TOKEN: { type: 'string', pattern: TOKEN_PATTERN },
    METRICS_TOKEN_FILE: { type: 'string', minLength: 1 },
    // Serve /metrics on its own port (and host, HOST by default) instead of the public one.
    METRICS_PORT: { type: 'integer', minimum: 1, maximum: 65535 },
    METRICS_HOST: { type: 'string', minLength: 1 },
    // The worker_id label outside PM2's numbering; it names files in the socket directory.
    WORKER_ID: { type: 'string', pattern: WORKER_ID_PATTERN.source },
    // Whole request, headers only, idle keep-alive connection (see README, Reliability).
    HTTP_REQUEST_TIMEOUT_MS: { type: 'integer', minimum: 1000, maximum: 600000 },
    HTTP_HEADERS_TIMEOUT_MS: { type: 'integer', minimum: 1000, maximum: 600000, default: 10000 },
    HTTP_KEEP_ALIVE_TIMEOUT_MS: {
      type: 'integer',
      minimum: 1000,
      maximum: 600000,
      default: 72000,
    },
  },
} as const

export { ConfigError }

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  let config: Config
  try {
    config = envSchema<Config>({ schema: configSchema, data: env, dotenv: false })
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${(err as Error).message}`)
  }
  parseBuckets(config.METRICS_BUCKETS)
  nativeHistogramsOf(config)
  if (config.METRICS_PORT !== undefined && config.METRICS_PORT === config.PORT) {
    throw new ConfigError('invalid configuration: METRICS_PORT must differ from PORT')
  }
  const requestTimeout = requestTimeoutMs(config)
  if (requestTimeout <= config.SLOW_MAX_MS) {
    throw new ConfigError(
      'invalid configuration: HTTP_REQUEST_TIMEOUT_MS must be greater than SLOW_MAX_MS',
    )
  }
  if (config.HTTP_HEADERS_TIMEOUT_MS > requestTimeout) {
    throw new ConfigError(
      'invalid configuration: HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS',
    )
  }
  return config
}

/** Longest time a whole request may take: set, or 30 s and always above the slowest /slow. */
export function requestTimeoutMs(config: Config): number {
  return config.HTTP_REQUEST_TIMEOUT_MS ?? Math.max(30_000, config.SLOW_MAX_MS + 5_000)
}

/** Histogram buckets from `METRICS_BUCKETS`, checked as the metrics plugin checks them. */
export function parseBuckets(value: string): number[] {
  const buckets = value.split(',').map((part) => Number(part.trim()))
  const problem = bucketProblem(buckets)
  if (problem !== undefined) {
    throw new ConfigError(`invalid configuration: METRICS_BUCKETS ${problem}`)
  }
  return buckets
}

/**
 * The metrics plugin's `nativeHistograms` option from `METRICS_NATIVE_HISTOGRAMS` and its two
 * settings; a setting without the switch is refused rather than silently ignored.
 */
export function nativeHistogramsOf(config: Config): false | NativeHistogramOptions {
  if (!config.METRICS_NATIVE_HISTOGRAMS) {
    for (const name of [
      'METRICS_NATIVE_HISTOGRAM_SCHEMA',
      'METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS',
    ] as const) {
      if (config[name] !== undefined) {
        throw new ConfigError(
          `invalid configuration: ${name} is set but METRICS_NATIVE_HISTOGRAMS is not true`,
        )
      }
    }
    return false
  }
  return {
    schema: config.METRICS_NATIVE_HISTOGRAM_SCHEMA ?? DEFAULT_SCHEMA,
    maxBuckets: config.METRICS_NATIVE_HISTOGRAM_MAX_BUCKETS ?? DEFAULT_MAX_BUCKETS,
  }
}

/**
 * This process' `worker_id`: `WORKER_ID` if set, else the one PM2 gives it. Under PM2's cluster
 * mode with more than one instance, one `WORKER_ID` would give every worker the same id and
 * merge their series, so it is refused.
 */
export function workerIdOf(config: Config, identity: WorkerIdentity): string {
  if (config.WORKER_ID === undefined) return identity.workerId
  if (identity.clusterMode && identity.instances !== 1) {
    throw new ConfigError(
      'invalid configuration: WORKER_ID would give every PM2 worker the same id; unset it (PM2 numbers the workers) or run one instance',
    )
  }
  return config.WORKER_ID
}

/**
 * The bearer token protecting /metrics, from `METRICS_TOKEN` or the file named by
 * `METRICS_TOKEN_FILE` (for secrets managers); `undefined` leaves /metrics open.
 */
export function resolveMetricsToken(config: Config): string | undefined {
  if (config.METRICS_TOKEN && config.METRICS_TOKEN_FILE) {
    throw new ConfigError(
      'invalid configuration: set METRICS_TOKEN or METRICS_TOKEN_FILE, not both',
    )
  }
  if (config.METRICS_TOKEN_FILE) {
    let token: string
    try {
      token = readFileSync(config.METRICS_TOKEN_FILE, 'utf8').trim()
    } catch (err) {
      throw new ConfigError(
        `invalid configuration: METRICS_TOKEN_FILE cannot be read: ${(err as Error).message}`,
      )
    }
    if (!new RegExp(TOKEN_PATTERN).test(token)) {
      throw new ConfigError(
        'invalid configuration: METRICS_TOKEN_FILE must hold one token of at least 16 visible characters, without spaces',
      )
    }
    return token
  }
  return config.METRICS_TOKEN
}
