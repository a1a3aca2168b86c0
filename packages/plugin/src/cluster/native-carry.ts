// The native histograms a worker keeps beside its carried classic histogram, as the cluster view
// sees them: rendered into the protobuf exposition, handed to the next process of the worker
// id with the classic values, and added to by a successor. The plugin implements it; the
// cluster code knows no plugin.
import type { NativeHistogramState } from '../lib/native-histogram'
import type { NativeFor } from './protobuf/render'

/** One series' native histogram in a handover. */
export interface NativeSeries {
  /** The metric's name. */
  name: string
  /** The series' own labels (the metric's label names), as the classic series has them. */
  labels: Record<string, string>
  state: NativeHistogramState
}

export interface NativeCarry {
  nativeFor: NativeFor
  /** Every native histogram's contents, to hand to a successor. */
  states(): NativeSeries[]
  /** Adds a predecessor's histograms; returns how many were left out (not valid, unknown). */
  add(series: readonly NativeSeries[]): number
  /**
   * The native fields of a worker that left, from its handover alone (this worker's own
   * histograms untouched), and how many of its series were left out.
   */
  detached(series: readonly NativeSeries[]): { nativeFor: NativeFor; dropped: number }
}
