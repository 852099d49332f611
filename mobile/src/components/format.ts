/** Dates, labels and percentages as the screens show them. */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function formatDay(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric' });
}

export function percent(p: number | null | undefined): string {
  return p === null || p === undefined ? '—' : `${(p * 100).toFixed(p < 0.1 ? 1 : 0)}%`;
}

export const LESION_LABELS: Record<string, string> = {
  akiec: 'Actinic keratosis / intraepithelial carcinoma',
  bcc: 'Basal cell carcinoma',
  bkl: 'Benign keratosis',
  df: 'Dermatofibroma',
  mel: 'Melanoma',
  nv: 'Melanocytic naevus',
  vasc: 'Vascular lesion',
  other: 'Other',
};

export const STATE_LABELS: Record<string, string> = {
  received: 'Received',
  analysing: 'Analysing',
  analysed: 'AI result ready',
  awaiting_specialist: 'Waiting for dermatologist',
  answered: 'Answered',
  closed: 'Closed',
};

export const TRIAGE_LABELS: Record<string, string> = { urgent: 'Urgent', review: 'Review', routine: 'Routine' };

export const RULE_LABELS: Record<string, string> = {
  malignancy_score: "The AI's malignancy score (from all seven class probabilities) is high enough to act on",
  malignant_probability: 'The AI rates a malignant lesion as likely enough to act on',
  lesion_changed: 'The lesion changed since its last photo',
  clinician_concern_high: "The clinician's level of concern is high",
  low_confidence: 'The AI is not confident about this lesion',
  poor_image_quality: 'A photo did not pass the quality check',
  clinician_requests_specialist: 'The clinician asked for a specialist opinion',
  no_rule_fired: 'No warning sign found by the rules',
};

export const MANAGEMENT_LABELS: Record<string, string> = {
  reassure: 'Reassure, no follow-up needed',
  monitor: 'Monitor and review',
  excise_or_biopsy: 'Excise or biopsy',
  urgent_referral: 'Urgent referral',
};

export function triageTone(level: string | null | undefined): 'danger' | 'warning' | 'success' | 'neutral' {
  return level === 'urgent' ? 'danger' : level === 'review' ? 'warning' : level === 'routine' ? 'success' : 'neutral';
}
