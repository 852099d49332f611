/**
 * Every API error shown to a person goes through `describeError`: the API's `type` becomes a sentence a
 * clinician understands. Raw JSON, status codes and stack traces never reach the screen.
 */
import { ApiError, NetworkError } from './client';

const SENTENCES: Record<string, string> = {
  bad_request: 'The request could not be processed. Check what you entered and try again.',
  not_authenticated: 'Please sign in to continue.',
  invalid_token: 'Your session has ended. Please sign in again.',
  session_expired: 'Your session has ended. Please sign in again; anything you had not sent is kept.',
  invalid_credentials: 'The e-mail, password or authenticator code is not right.',
  totp_required: 'Enter the 6-digit code from your authenticator app.',
  forbidden: 'Your account is not allowed to do this.',
  not_found: 'This record was not found. It may have been removed, or belong to another clinic.',
  conflict: 'Someone else changed this record at the same time. It has been reloaded: check it and try again.',
  precondition_failed: 'This case changed since you opened it. It has been reloaded: check it and try again.',
  consent_required: 'The patient has not given the consent this needs. Record their consent first.',
  payload_too_large: 'The photo is too large to upload. Retake it or choose a smaller one.',
  too_large: 'The photo is too large to upload. Retake it or choose a smaller one.',
  unsupported_media_type: 'This file type is not accepted. Use a JPEG, PNG or HEIC photo.',
  unsupported_format: 'This file type is not accepted. Use a JPEG, PNG or HEIC photo.',
  not_an_image: 'The file is not a photo. Use a JPEG, PNG or HEIC photo.',
  empty: 'The photo is empty. Take it again.',
  corrupt: 'The photo is damaged. Take it again.',
  truncated: 'The photo did not upload completely. Try again.',
  trailing_data: 'The photo file is damaged. Take it again.',
  animated: 'Animated images are not accepted. Use a still photo.',
  decompression_bomb: 'The photo is too large to process. Retake it at a normal size.',
  too_small: 'The photo is too small to assess. Move closer and retake it.',
  validation_error: 'Some of the details are missing or not valid. Check the highlighted fields.',
  account_locked: 'This account is locked after too many failed attempts. Wait a few minutes or ask an administrator to unlock it.',
  too_many_requests: 'Too many attempts. Wait a moment and try again.',
  service_unavailable: 'The service is busy or under maintenance. Try again in a minute.',
  storage_unavailable: 'Image storage is unavailable right now. Try again in a minute.',
  storage_error: 'The image could not be stored. Try again.',
  blob_not_found: 'This image is no longer available.',
  erased: "This patient's data has been erased.",
  gone: "This patient's data has been erased.",
  header_too_large: 'The request was too large for the server. Sign out, sign in again and retry.',
  sso_refused: 'Your hospital account could not sign you in to DermaLink. Ask your administrator to check your account, then try again.',
  audit_chain_broken: 'The audit log failed its integrity check, so nothing more can be recorded. Contact your administrator.',
  decryption_failed: 'This record could not be opened. Contact your administrator.',
  internal_error: 'Something went wrong on our side. Try again; if it keeps happening, contact support.',
};

export const OFFLINE_SENTENCE = 'No connection to DermaLink. Check the network and try again.';

function waitWords(seconds: number): string {
  if (seconds < 90) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minutes`;
}

/** One plain sentence for any error thrown by an API call. */
export function describeError(error: unknown): string {
  if (error instanceof NetworkError) return OFFLINE_SENTENCE;
  if (error instanceof ApiError) {
    const wait = error.retryAfter;
    if (wait && (error.type === 'too_many_requests' || error.type === 'account_locked')) {
      return `${SENTENCES[error.type]} You can try again in ${waitWords(wait)}.`;
    }
    const sentence = SENTENCES[error.type];
    if (sentence) return sentence;
    if (error.status >= 500) return SENTENCES.internal_error;
    return SENTENCES.bad_request;
  }
  return SENTENCES.internal_error;
}

/** Field-level messages from a 422 `validation_error` (`detail` is pydantic's list), keyed by field name. */
export function fieldErrors(error: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!(error instanceof ApiError) || !Array.isArray(error.detail)) return out;
  for (const item of error.detail as { loc?: unknown[]; msg?: string }[]) {
    const field = item.loc?.[item.loc.length - 1];
    if (typeof field === 'string' && item.msg) out[field] = item.msg.replace(/^Value error, /, '');
  }
  return out;
}

/** A conflict (someone else answered, or the version is stale): the screen should reload. */
export function isConflict(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 409 || error.status === 412) && error.type !== 'consent_required';
}
