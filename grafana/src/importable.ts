// The dashboard in the form grafana.com dashboards are published in: Grafana's "Import
// dashboard" reads `__inputs` to ask for a Prometheus data source, writes its uid wherever
// `${DS_PROMETHEUS}` stands (here: the `datasource` variable's default), and checks `__requires`.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import { buildDashboard } from './dashboard'

/**
 * The oldest Grafana release the dashboard is written for (the SDK's schema and panel options):
 * `__requires` asks for it on import. The compose stack runs Grafana 12.
 */
export const GRAFANA_VERSION = '11.6.0'
export const DATASOURCE_INPUT = 'DS_PROMETHEUS'

const PANEL_NAMES: Record<string, string> = {
  bargauge: 'Bar gauge',
  stat: 'Stat',
  timeseries: 'Time series',
}

interface Requirement {
  type: 'grafana' | 'datasource' | 'panel'
  id: string
  name: string
  version: string
}

export interface ImportableDashboard extends dashboard.Dashboard {
  __inputs: Array<{
    name: string
    label: string
    description: string
    type: 'datasource'
    pluginId: string
    pluginName: string
  }>
  __requires: Requirement[]
}

export function buildImportableDashboard(): ImportableDashboard {
  const placeholder = `\${${DATASOURCE_INPUT}}`
  const built = buildDashboard({
    datasource: { selected: true, text: placeholder, value: placeholder },
  })
  const panelTypes = [
    ...new Set(
      (built.panels ?? [])
        .map((panel) => panel.type)
        .filter((type) => type !== 'row')
        .sort(),
    ),
  ]
  return {
    __inputs: [
      {
        name: DATASOURCE_INPUT,
        label: 'Prometheus',
        description: 'The Prometheus that scrapes the service',
        type: 'datasource',
        pluginId: 'prometheus',
        pluginName: 'Prometheus',
      },
    ],
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: GRAFANA_VERSION },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      ...panelTypes.map(
        (id): Requirement => ({ type: 'panel', id, name: PANEL_NAMES[id] ?? id, version: '' }),
      ),
    ],
    ...built,
  }
}

export function importableDashboardJson(): string {
  return `${JSON.stringify(buildImportableDashboard(), null, 2)}\n`
}
