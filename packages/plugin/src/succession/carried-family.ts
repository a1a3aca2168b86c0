// A carried family as a handover file holds it: a counter's or a histogram's final values, series
// by series, as the previous process of a worker rendered them.
import type { Labels } from '../lib/prom-client-internals'

export interface CarriedValue {
  /** Sample name for histograms (`_bucket`, `_sum`, `_count`); absent for counters. */
  metricName?: string
  labels: Labels
  value: number
}

export interface CarriedFamily {
  name: string
  type: 'counter' | 'histogram'
  values: CarriedValue[]
}
