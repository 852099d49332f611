import { fireEvent, screen, waitFor, within } from '@testing-library/react-native';

import type { Schemas } from '../../api/client-types';
import { analysedCase, CASE_ID, LESION_ID, measuredChange, mockApi, renderApp, user } from '../../test/api';

const dermatologist = user('dermatologist');
const OTHER_CASE = '3a9c1b7e-2d4f-4e6a-8b1c-9d0e1f2a3b4c';

const queue: Schemas['Page_QueueItem_'] = {
  items: [
    {
      case_id: CASE_ID,
      triage_level: 'urgent',
      triage_rule: 'malignant_probability',
      waiting_since: '2026-11-20T10:10:05Z',
      age: 63,
      sex: 'female',
      site: 'back',
      concern: 'medium',
      ai_top_label: 'mel',
      ai_top_probability: 0.61,
      image_count: 1,
      disclaimer: 'The AI result supports, and does not replace, a clinician’s diagnosis.',
    },
    {
      case_id: OTHER_CASE,
      triage_level: 'review',
      triage_rule: 'low_confidence',
      waiting_since: '2026-11-19T15:00:00Z',
      age: 41,
      sex: 'male',
      site: 'face',
      concern: 'low',
      ai_top_label: 'bkl',
      ai_top_probability: 0.38,
      image_count: 2,
      disclaimer: 'The AI result supports, and does not replace, a clinician’s diagnosis.',
    },
  ],
  next_cursor: null,
};

const claimed = analysedCase({ claimed_by: dermatologist.id, claim_expires_at: '2026-11-20T11:10:00Z' });
const image = { text: 'jpeg-bytes', headers: { 'Content-Type': 'image/jpeg' } };

describe('Queue', () => {
  it('lists cases in the API’s order and claims one for review', async () => {
    const api = mockApi({
      'GET /users/me': { body: dermatologist },
      'GET /queue': { body: queue },
      'GET /cases': { body: { items: [], next_cursor: null } },
      'POST /queue/{id}/claim': { body: claimed },
      'GET /cases/{id}': { body: claimed, headers: { ETag: '"3"' } },
      'GET /cases/{id}/images/{image}': image,
    });
    await renderApp('/dermatologist', 'dermatologist');
    const first = await screen.findByTestId('queue-item-0');
    expect(within(first).getByText('Urgent')).toBeTruthy();
    expect(within(screen.getByTestId('queue-item-1')).getByText('Review')).toBeTruthy();
    expect(within(first).getByText(/Melanoma \(61%\)/)).toBeTruthy();

    fireEvent.press(screen.getByTestId(`claim-${CASE_ID}`));
    expect(await screen.findByTestId('review-screen')).toBeTruthy();
    expect(api.callsTo('POST', `/queue/${CASE_ID}/claim`)).toHaveLength(1);
  });

  it('explains when another dermatologist claimed the case first', async () => {
    mockApi({
      'GET /users/me': { body: dermatologist },
      'GET /queue': { body: queue },
      'GET /cases': { body: { items: [], next_cursor: null } },
      'POST /queue/{id}/claim': { status: 409, body: { type: 'conflict', detail: 'case is claimed by another dermatologist' } },
    });
    await renderApp('/dermatologist', 'dermatologist');
    fireEvent.press(await screen.findByTestId(`claim-${CASE_ID}`));
    expect(await screen.findByTestId('queue-error')).toHaveTextContent(/Another dermatologist has just claimed this case/);
  });
});

describe('Review', () => {
  it('answers with If-Match set to the case’s ETag', async () => {
    const answered = analysedCase({
      state: 'answered',
      version: 4,
      answer: {
        dermatologist_id: dermatologist.id,
        diagnosis: 'nv',
        diagnosis_text: null,
        management: 'monitor',
        follow_up_weeks: 12,
        note: 'Benign pattern; photograph again in 3 months.',
        created_at: '2026-11-20T11:00:00Z',
      },
    });
    const api = mockApi({
      'GET /users/me': { body: dermatologist },
      'GET /cases/{id}': { body: claimed, headers: { ETag: '"3"' } },
      'GET /cases/{id}/images/{image}': image,
      'POST /cases/{id}/answer': { body: answered, headers: { ETag: '"4"' } },
    });
    await renderApp(`/dermatologist/cases/${CASE_ID}`, 'dermatologist');
    expect(await screen.findByTestId('answer-form')).toBeTruthy();
    expect(await screen.findByTestId('case-photo')).toBeTruthy();
    fireEvent.press(screen.getByTestId('answer-diagnosis-nv'));
    fireEvent.press(screen.getByTestId('answer-management-monitor'));
    fireEvent.changeText(screen.getByTestId('answer-weeks'), '12');
    fireEvent.changeText(screen.getByTestId('answer-note'), 'Benign pattern; photograph again in 3 months.');
    fireEvent.press(screen.getByTestId('answer-submit'));
    expect(await screen.findByTestId('answer-card')).toHaveTextContent(/Monitor and review/);

    const [post] = api.callsTo('POST', `/cases/${CASE_ID}/answer`);
    expect(post.headers['If-Match']).toBe('"3"');
    expect(post.body).toEqual({
      diagnosis: 'nv',
      diagnosis_text: null,
      management: 'monitor',
      follow_up_weeks: 12,
      note: 'Benign pattern; photograph again in 3 months.',
    });
  });

  it('explains a stale version and reloads the case', async () => {
    let version = 3;
    const api = mockApi({
      'GET /users/me': { body: dermatologist },
      'GET /cases/{id}': () => ({ body: analysedCase({ ...claimed, version }), headers: { ETag: `"${version}"` } }),
      'GET /cases/{id}/images/{image}': image,
      'POST /cases/{id}/answer': () => {
        version = 5;
        return { status: 412, body: { type: 'precondition_failed', detail: 'the case changed (now version 5); reload it and try again' } };
      },
    });
    await renderApp(`/dermatologist/cases/${CASE_ID}`, 'dermatologist');
    fireEvent.press(await screen.findByTestId('answer-diagnosis-bcc'));
    fireEvent.press(screen.getByTestId('answer-management-excise_or_biopsy'));
    fireEvent.press(screen.getByTestId('answer-submit'));
    expect(await screen.findByTestId('review-conflict')).toHaveTextContent(/changed since you opened it/);
    await waitFor(() => expect(api.callsTo('GET', `/cases/${CASE_ID}`).length).toBeGreaterThanOrEqual(2));
    expect(screen.queryByText(/precondition_failed/)).toBeNull();
  });

  it('releases the case back to the queue', async () => {
    const api = mockApi({
      'GET /users/me': { body: dermatologist },
      'GET /cases/{id}': { body: claimed, headers: { ETag: '"3"' } },
      'GET /cases/{id}/images/{image}': image,
      'POST /queue/{id}/release': { body: analysedCase() },
      'GET /queue': { body: queue },
      'GET /cases': { body: { items: [], next_cursor: null } },
    });
    await renderApp(`/dermatologist/cases/${CASE_ID}`, 'dermatologist');
    fireEvent.press(await screen.findByTestId('release'));
    expect(await screen.findByTestId('queue-screen')).toBeTruthy();
    expect(api.callsTo('POST', `/queue/${CASE_ID}/release`)).toHaveLength(1);
  });
});

describe('Review of a follow-up', () => {
  it('shows the change since the last photo beside the answer form', async () => {
    mockApi({
      'GET /users/me': { body: dermatologist },
      'GET /cases/{id}': { body: { ...claimed, lesion_id: LESION_ID, lesion_change: measuredChange({ measurements: { area_ratio: 0.97, diameter_change: -0.01, colour_delta_e: 1.2, significant: [] } }) }, headers: { ETag: '"3"' } },
      'GET /cases/{id}/images/{image}': image,
      'GET /lesions/{id}/changes/{case}/image': { text: 'png-bytes', headers: { 'Content-Type': 'image/png' } },
    });
    await renderApp(`/dermatologist/cases/${CASE_ID}`, 'dermatologist');
    expect(await screen.findByTestId('answer-form')).toBeTruthy();
    expect(screen.getByTestId('lesion-change-status')).toHaveTextContent('No significant change');
    expect(screen.getByTestId('lesion-change')).toHaveTextContent(/Area: 97% of the last photo \(-3%, smaller\)/);
    expect(screen.getByTestId('lesion-change-significant')).toHaveTextContent('No measure changed by more than the set amount.');
    expect(await screen.findByTestId('change-image')).toBeTruthy();
  });
});
