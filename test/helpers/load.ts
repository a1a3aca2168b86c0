// Steady HTTP load from autocannon, to 127.0.0.1 only, bounded by count or duration.
import autocannon from 'autocannon'

export interface LoadResult {
  sent: number
  non2xx: number
  errors: number
  timeouts: number
  byStatus: Record<string, number>
}

export interface LoadOptions {
  url: string
  /** Requests per second over all connections. */
  rate: number
  /** Stop after this many requests... */
  amount?: number
  /** ...or after this many seconds. */
  durationSeconds?: number
  connections?: number
}

export function startLoad(options: LoadOptions): { done: Promise<LoadResult>; stop: () => void } {
  if (!/^http:\/\/127\.0\.0\.1[:/]/.test(options.url))
    throw new Error(`load only goes to 127.0.0.1, not ${options.url}`)
  const byStatus: Record<string, number> = {}
  let instance: autocannon.Instance | undefined
  const done = new Promise<LoadResult>((resolve, reject) => {
    instance = autocannon(
      {
        url: options.url,
        connections: options.connections ?? 10,
        overallRate: options.rate,
        ...(options.amount === undefined
          ? { duration: options.durationSeconds ?? 5 }
          : { amount: options.amount }),
        timeout: 10,
      },
      (err, result) => {
        if (err) reject(err)
        else
          resolve({
            sent: result.requests.total,
            non2xx: result.non2xx,
            errors: result.errors,
            timeouts: result.timeouts,
            byStatus,
          })
      },
    )
    instance.on('response', (_client, statusCode) => {
      byStatus[statusCode] = (byStatus[statusCode] ?? 0) + 1
    })
  })
  return { done, stop: () => instance?.stop() }
}
