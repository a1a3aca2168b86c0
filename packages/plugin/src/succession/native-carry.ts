// The native histograms a worker keeps beside its carried classic histogram, as the cluster view
// sees them: rendered into the protobuf exposition, handed to the next process of the worker
// id with the classic values, and added to by a successor. The plugin implements it; the
// cluster code knows no plugin.

import type { NativeFor } from '../exposition/protobuf/render'
import type { NativeHistogramState } from '../lib/native-histogram'
import type { CarriedFamily } from './carried-family'

/** One series' native histogram in a handover. */
export interface NativeSeries {
  /** The metric's name. */
  name: string
  /** The series' own labels (the metric's label names), as the classic series has them. */
  labels: Record<string, string>
  state: NativeHistogramState
}

export interface NativeCarry {
  /**
   * The native histograms as they are now: called in the same tick as the registry's values
   * are read, so that a render's native and classic values describe the same observations.
   */
  snapshot(): NativeFor
  /** Every native histogram's contents, to hand to a successor. */
  states(): NativeSeries[]
  /**
   * Adds a predecessor's histograms, so that each classic series carried from `families` has a
   * native histogram of exactly its observations (made from its classic buckets where the
   * handover has none that fits); returns how many of `series` were left out.
   */
  add(series: readonly NativeSeries[], families: readonly CarriedFamily[]): number
  /**
   * The native fields of a worker that left, from its handover alone (this worker's own
   * histograms untouched), completed from its classic families as `add` does, and how many of
   * its series were left out.
   */
  detached(
    series: readonly NativeSeries[],
    families: readonly CarriedFamily[],
  ): { nativeFor: NativeFor; dropped: number }
}
