/** The collector's own counters, shown on /metrics in Prometheus text format. */
export interface IngestCounters {
  batches: { stored: number; duplicate: number }
  samples: number
  rejected: Record<string, number>
  unavailable: number
}

export const newIngestCounters = (): IngestCounters => ({
  batches: { stored: 0, duplicate: 0 },
  samples: 0,
  rejected: {},
  unavailable: 0,
})

export function prometheusText(counters: IngestCounters): string {
  const lines = [
    '# HELP tally_ingest_batches_total Agent batches acknowledged, by outcome.',
    '# TYPE tally_ingest_batches_total counter',
    `tally_ingest_batches_total{outcome="stored"} ${counters.batches.stored}`,
    `tally_ingest_batches_total{outcome="duplicate"} ${counters.batches.duplicate}`,
    '# HELP tally_ingest_samples_total Host samples stored.',
    '# TYPE tally_ingest_samples_total counter',
    `tally_ingest_samples_total ${counters.samples}`,
    '# HELP tally_ingest_rejected_total Ingest requests refused with a 4xx, by reason.',
    '# TYPE tally_ingest_rejected_total counter',
    ...Object.entries(counters.rejected).map(
      ([reason, n]) => `tally_ingest_rejected_total{reason="${reason}"} ${n}`,
    ),
    '# HELP tally_ingest_unavailable_total Ingest requests answered 503 because the store failed.',
    '# TYPE tally_ingest_unavailable_total counter',
    `tally_ingest_unavailable_total ${counters.unavailable}`,
  ]
  return `${lines.join('\n')}\n`
}
