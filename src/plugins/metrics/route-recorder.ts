// Records one route's requests. Each route gets its own recorder when it is registered, so the
// hot path knows its route template without asking Fastify, and finds its label children in a
// small map keyed by method and status code: nothing is allocated once a series exists.
import type { HttpMetrics } from './http-metrics'

/** Status recorded for requests the client aborted before a response was sent (as nginx does). */
export const CLIENT_CLOSED_STATUS = 499

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
      method,
      route: this.route,
      status_code: String(statusCode),
      worker_id: this.workerId,
    }
    const counter = this.metrics.requestsTotal.labels(labels)
    const histogram = this.metrics.requestDuration.labels(labels)
    return { inc: () => counter.inc(), observe: (seconds) => histogram.observe(seconds) }
  }
}
