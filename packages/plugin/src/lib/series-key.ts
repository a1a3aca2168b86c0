/**
 * One key per sample name and label set: the same whatever the labels' order, and the same for
 * 200 and "200" (they render alike). `sample` is '' where the labels alone name the series.
 */
export function seriesKey(
  sample: string | undefined,
  labels: Readonly<Record<string, unknown>>,
): string {
  let key = sample ?? ''
  for (const name of Object.keys(labels).sort()) key += `\u0000${name}\u0001${String(labels[name])}`
  return key
}
