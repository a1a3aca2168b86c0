// Type-checked by `npm run typecheck`, never run: `app.metrics.http` takes only writes that
// name every label. Each `@ts-expect-error` fails the check if the call form it marks is
// accepted again.
import Fastify from 'fastify'
// @ts-expect-error a handover's native state is no part of the public entry
import type { NativeHistogramState } from 'fastify-pm2-cluster-metrics'
import { createHttpMetrics } from 'fastify-pm2-cluster-metrics'
import { Registry } from 'prom-client'

const app = Fastify()
const { requestsTotal, requestDuration } = app.metrics.http
const labels = { method: 'GET', route: '/', status_code: '200', worker_id: '0' }

requestsTotal.inc(labels)
requestsTotal.inc(labels, 2)
requestsTotal.inc({ labels, value: 2, exemplarLabels: { trace_id: 'abc' } })
requestsTotal.labels(labels).inc()
requestDuration.observe(labels, 0.1)
requestDuration.observe({ labels, value: 0.1 })
requestDuration.startTimer(labels)()

// @ts-expect-error no labels: an unlabelled series
requestsTotal.inc()
// @ts-expect-error a value alone: an unlabelled series
requestsTotal.inc(2)
// @ts-expect-error the object form without labels: an unlabelled series
requestsTotal.inc({ value: 2 })
// @ts-expect-error a label left out: a series without it
requestsTotal.inc({ method: 'GET', route: '/', status_code: '200' })
// @ts-expect-error no labels for the child: an unlabelled series
requestsTotal.labels().inc()
// @ts-expect-error a value alone: an unlabelled series
requestDuration.observe(0.1)
// @ts-expect-error the object form without labels: an unlabelled series
requestDuration.observe({ value: 0.1 })
// @ts-expect-error a timer without labels: an unlabelled series
requestDuration.startTimer()
// @ts-expect-error a label left out: a series without it
requestDuration.zero({ method: 'GET' })

// The public createHttpMetrics gives the same types, and no native store.
const own = createHttpMetrics(new Registry())
// @ts-expect-error a value alone: an unlabelled series
own.requestsTotal.inc(1)
// @ts-expect-error the native histograms' store is no part of the public types
own.native?.clear()

export type Unused = NativeHistogramState
