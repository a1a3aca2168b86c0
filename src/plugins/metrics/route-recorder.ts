// Records one route's requests. Each route gets its own recorder when it is registered, so the
// hot path knows its route template without asking Fastify, and finds its label children in a
// small map keyed by method and status code: nothing is allocated once a series exists.
import type { HttpMetrics } from './http-metrics'

/** Status recorded for requests the client aborted before a response was sent (as nginx does). */
export const CLIENT_CLOSED_STATUS = 499

/** Methods that keep their own `method` label on the unmatched route. */
export const COMMON_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
])

/**
 * The `method` label of every other method on the unmatched route: Node accepts 34 methods,
 * and junk ones must not multiply the series. A route registered for such a method (e.g.
 * PROPFIND) keeps its own method label.
 */
export const OTHER_METHOD = 'OTHER'

/** The `method` label of a request that matched no route. */
export function unmatchedMethodLabel(method: string): string {
  return COMMON_METHODS.has(method) ? method : OTHER_METHOD
}

interface SeriesChildren {
  inc: () => void
  observe: (seconds: number) => void
}

export class RouteRecorder {
  private readonly byMethod = new Map<string, Map<number, SeriesChildren>>()

  constructor(
    private readonly metrics: HttpMetrics,
    readonly route: string,
    private readonly workerId: string,
    /** Maps a request's method to its label; the unmatched route bounds them. */
    private readonly methodLabel: (method: string) => string = (method) => method,
  ) {}

  record(method: string, statusCode: number, seconds: number): void {
    const children = this.childrenFor(method, statusCode)
    children.inc()
    children.observe(seconds)
  }

  private childrenFor(method: string, statusCode: number): SeriesChildren {
    let byStatus = this.byMethod.get(method)
    if (byStatus === undefined) {
      byStatus = new Map()
      this.byMethod.set(method, byStatus)
    }
    let children = byStatus.get(statusCode)
    if (children === undefined) {
      children = this.createChildren(method, statusCode)
      byStatus.set(statusCode, children)
    }
    return children
  }

  /** A request the client abandoned: counted, but it has no response time to observe. */
  recordAborted(method: string): void {
    this.childrenFor(method, CLIENT_CLOSED_STATUS).inc()
  }

  private createChildren(method: string, statusCode: number): SeriesChildren {
    const labels = {
      method: this.methodLabel(method),
      route: this.route,
      status_code: String(statusCode),
      worker_id: this.workerId,
    }
    const counter = this.metrics.requestsTotal.labels(labels)
    const histogram = this.metrics.requestDuration.labels(labels)
    return { inc: () => counter.inc(), observe: (seconds) => histogram.observe(seconds) }
  }
}
