// Records one route's requests. Each route gets its own recorder when it is registered, so the
// hot path knows its route template without asking Fastify, and finds its series in a small
// map keyed by method and status code: nothing is allocated once a series exists.
import type { HttpMetrics } from './http-metrics'
import { NativeRequestSeries } from './native-histograms'
import { RequestSeries } from './request-series'
import { traceIdOf } from './traceparent'

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

export class RouteRecorder {
  private readonly byMethod = new Map<string, Map<number, RequestSeries>>()

  constructor(
    private readonly metrics: HttpMetrics,
    readonly route: string,
    private readonly workerId: string,
    /** Maps a request's method to its label; the unmatched route bounds them. */
    private readonly methodLabel: (method: string) => string = (method) => method,
  ) {}

  // The series of the previous request: most requests to a route repeat its method and status.
  private lastMethod = ''
  private lastStatusCode = 0
  private lastSeries: RequestSeries | undefined

  record(method: string, statusCode: number, seconds: number): void {
    let series = this.lastSeries
    if (series === undefined || method !== this.lastMethod || statusCode !== this.lastStatusCode) {
      series = this.seriesFor(method, statusCode)
      this.lastMethod = method
      this.lastStatusCode = statusCode
      this.lastSeries = series
    }
    series.record(seconds)
  }

  /**
   * A request that may carry a `traceparent` header: recorded with its trace id as exemplar
   * when the header is valid, as any other request when not. The hot path calls `record` for
   * requests without the header, and this only for those with one.
   */
  recordTraced(method: string, statusCode: number, seconds: number, traceparent: unknown): void {
    const traceId = traceIdOf(traceparent)
    if (traceId === undefined) this.record(method, statusCode, seconds)
    else this.seriesFor(method, statusCode).recordTraced(seconds, { trace_id: traceId })
  }

  /** A request the client abandoned: counted, but it has no response time to observe. */
  recordAborted(method: string, traceparent?: unknown): void {
    const series = this.seriesFor(method, CLIENT_CLOSED_STATUS)
    const traceId = traceIdOf(traceparent)
    if (traceId === undefined) series.count()
    else series.countTraced({ trace_id: traceId })
  }

  private seriesFor(method: string, statusCode: number): RequestSeries {
    const series = this.byMethod.get(method)?.get(statusCode)
    return series ?? this.createSeries(method, statusCode)
  }

  private createSeries(method: string, statusCode: number): RequestSeries {
    let byStatus = this.byMethod.get(method)
    if (byStatus === undefined) {
      byStatus = new Map()
      this.byMethod.set(method, byStatus)
    }
    const labels = {
      method: this.methodLabel(method),
      route: this.route,
      status_code: String(statusCode),
      worker_id: this.workerId,
    }
    const { requestsTotal, requestDuration, native } = this.metrics
    const series =
      native === undefined
        ? new RequestSeries(requestsTotal, requestDuration, labels)
        : new NativeRequestSeries(
            requestsTotal,
            requestDuration,
            labels,
            native.histogramFor(labels),
          )
    byStatus.set(statusCode, series)
    return series
  }
}
