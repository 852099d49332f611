import { fireEvent, screen, waitFor } from '@testing-library/react-native';

import { type Draft, newDraft, saveDraft } from '../../components/drafts';
import type { PreparedImage } from '../../images/prepare';
import { listOutbox, resetOutboxCache } from '../../offline/outbox';
import {
  analysedCase,
  CASE_ID,
  consentDocument,
  consentStatus,
  lesion,
  LESION_ID,
  measuredChange,
  mockApi,
  patient,
  PATIENT_ID,
  renderApp,
  user,
} from '../../test/api';

const clinician = user('clinician');

function photo(ok = true): PreparedImage {
  return {
    uri: 'file:///data/user/0/org.dermalink.app/cache/ImageManipulator/lesion.jpg',
    base64: '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQH/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACv/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==',
    width: 1600,
    height: 1200,
    quality: ok
      ? { ok: true, problems: [], sharpness: 38.2, darkFraction: 0.01, brightFraction: 0.02, shortSide: 3024 }
      : { ok: false, problems: ['blurred'], sharpness: 1.9, darkFraction: 0.01, brightFraction: 0.02, shortSide: 3024 },
  };
}

function seedDraft(change: Partial<Draft> = {}): Draft {
  const draft = { ...newDraft(), images: [photo()], ...change };
  saveDraft(PATIENT_ID, draft);
  return draft;
}

/** A multipart field as sent (React Native's FormData keeps parts; the standard one has get()). */
function formField(body: unknown, name: string): unknown {
  const form = body as { getParts?: () => { fieldName: string; string?: string }[]; get?: (n: string) => unknown };
  if (form.getParts) {
    const part = form.getParts().find((p) => p.fieldName === name);
    return part?.string ?? part;
  }
  return form.get?.(name);
}

describe('Patients', () => {
  it('searches by MRN and registers a new patient', async () => {
    const api = mockApi({
      'GET /users/me': { body: clinician },
      'GET /patients': { body: [] },
      'POST /patients': { status: 201, body: patient },
      'GET /patients/{id}': { body: patient },
      'GET /patients/{id}/consents': { body: consentStatus([]) },
    });
    await renderApp('/clinician', 'clinician');
    fireEvent.changeText(await screen.findByTestId('patient-search-mrn'), 'MRN-20431');
    fireEvent.press(screen.getByTestId('patient-search-submit'));
    expect(await screen.findByText(/No patient in your clinic has this record number/)).toBeTruthy();
    expect(api.callsTo('GET', '/patients')[0].query.get('mrn')).toBe('MRN-20431');

    fireEvent.changeText(screen.getByTestId('register-name'), 'Maria Santos');
    fireEvent.changeText(screen.getByTestId('register-dob'), '1961-04-12');
    fireEvent.changeText(screen.getByTestId('register-mrn'), 'MRN-20431');
    fireEvent.press(screen.getByTestId('register-submit'));
    expect(await screen.findByTestId('patient-screen')).toBeTruthy();
    expect(api.callsTo('POST', '/patients')[0].body).toEqual({
      full_name: 'Maria Santos',
      date_of_birth: '1961-04-12',
      medical_record_number: 'MRN-20431',
      contact: null,
    });
  });

  it('shows the API validation message beside the field', async () => {
    mockApi({
      'GET /users/me': { body: clinician },
      'POST /patients': {
        status: 422,
        body: { type: 'validation_error', detail: [{ loc: ['body', 'date_of_birth'], msg: 'Input should be a valid date', type: 'date_from_datetime_parsing' }] },
      },
    });
    await renderApp('/clinician', 'clinician');
    fireEvent.changeText(await screen.findByTestId('register-name'), 'Maria Santos');
    fireEvent.changeText(screen.getByTestId('register-dob'), '12/04/1961');
    fireEvent.changeText(screen.getByTestId('register-mrn'), 'MRN-1');
    fireEvent.press(screen.getByTestId('register-submit'));
    expect(await screen.findByText('Input should be a valid date')).toBeTruthy();
    expect(screen.getByTestId('register-error')).toHaveTextContent(/Some of the details are missing or not valid/);
  });
});

describe('Follow-ups due', () => {
  it('lists the lesions due within 14 days on the home screen and opens the patient', async () => {
    const api = mockApi({
      'GET /users/me': { body: clinician },
      'GET /lesions/due': { body: [{ ...lesion(), overdue_days: 3 }, { ...lesion({ id: 'b2', site: 'face', label: '' }), overdue_days: -5 }] },
      'GET /patients/{id}': { body: patient },
      'GET /patients/{id}/consents': { body: consentStatus(['ai_analysis']) },
    });
    await renderApp('/clinician', 'clinician');
    const row = await screen.findByTestId(`due-${LESION_ID}`);
    expect(row).toHaveTextContent(/Back, left shoulder, upper/);
    expect(row).toHaveTextContent(/3 days overdue/);
    expect(screen.getByTestId('due-b2')).toHaveTextContent(/Face.*due in 5 days/);
    expect(api.callsTo('GET', '/lesions/due')[0].query.get('within_days')).toBe('14');
    fireEvent.press(row);
    expect(await screen.findByTestId('patient-name')).toHaveTextContent('Maria Santos');
  });
});

describe('PatientDetail', () => {
  it('shows identity and consent, and allows a new case only with AI consent', async () => {
    mockApi({
      'GET /users/me': { body: clinician },
      'GET /patients/{id}': { body: patient },
      'GET /patients/{id}/consents': { body: consentStatus(['ai_analysis']) },
    });
    await renderApp(`/clinician/patients/${PATIENT_ID}`, 'clinician');
    expect(await screen.findByTestId('patient-name')).toHaveTextContent('Maria Santos');
    expect(screen.getByTestId('scope-ai_analysis')).toHaveTextContent(/given/);
    expect(screen.getByTestId('scope-specialist_sharing')).toHaveTextContent(/not given/);
    expect(screen.getByTestId('nav-new-case')).toBeEnabled();
  });
});

describe('Consent', () => {
  it('records verbal consent with a witness and withdraws a scope', async () => {
    const api = mockApi({
      'GET /users/me': { body: clinician },
      'GET /consent-documents': { body: [consentDocument] },
      'GET /patients/{id}/consents': { body: consentStatus([]) },
      'POST /patients/{id}/consents': { status: 201, body: consentStatus(['ai_analysis', 'specialist_sharing']) },
      'POST /patients/{id}/consents/withdraw': { body: consentStatus(['ai_analysis']) },
    });
    await renderApp(`/clinician/patients/${PATIENT_ID}/consent`, 'clinician');
    expect(await screen.findByTestId('consent-text')).toHaveTextContent(/TEMPLATE/);
    fireEvent.press(screen.getByTestId('consent-scopes-research')); // untick research
    fireEvent.press(screen.getByTestId('consent-method-verbal'));
    fireEvent.changeText(screen.getByTestId('consent-witness'), 'Nurse Kim Lee');
    fireEvent.press(screen.getByTestId('consent-submit'));
    expect(await screen.findByTestId('consent-notice')).toHaveTextContent('Consent recorded.');
    expect(api.callsTo('POST', `/patients/${PATIENT_ID}/consents`)[0].body).toEqual({
      document_id: consentDocument.id,
      scopes: ['ai_analysis', 'specialist_sharing'],
      method: 'verbal',
      witness_name: 'Nurse Kim Lee',
      signature_png_base64: null,
    });

    fireEvent.press(screen.getByTestId('withdraw-specialist_sharing'));
    fireEvent.changeText(screen.getByTestId('withdraw-reason'), 'Patient changed their mind');
    fireEvent.press(screen.getByTestId('withdraw-confirm'));
    await waitFor(() => expect(screen.queryByTestId('active-specialist_sharing')).toBeNull());
    expect(api.callsTo('POST', `/patients/${PATIENT_ID}/consents/withdraw`)[0].body).toEqual({
      scopes: ['specialist_sharing'],
      reason: 'Patient changed their mind',
    });
  });
});

describe('NewCase', () => {
  const routes = {
    'GET /users/me': { body: clinician },
    'GET /patients/{id}': { body: patient },
    'GET /cases/{id}': { body: analysedCase(), headers: { ETag: '"3"' } },
    'GET /cases/{id}/images/{image}': { text: 'jpeg-bytes', headers: { 'Content-Type': 'image/jpeg' } },
  };

  it('submits photos and context as multipart with an Idempotency-Key and opens the result', async () => {
    const draft = seedDraft();
    const api = mockApi({ ...routes, 'POST /cases': { status: 201, body: analysedCase() } });
    await renderApp(`/clinician/patients/${PATIENT_ID}/new-case`, 'clinician');
    expect(await screen.findByText('For Maria Santos')).toBeTruthy();
    fireEvent.changeText(screen.getByTestId('case-age'), '63');
    fireEvent.press(screen.getByTestId('case-sex-female'));
    fireEvent.press(screen.getByTestId('case-site-back'));
    fireEvent.press(screen.getByTestId('case-history-changed'));
    fireEvent.press(screen.getByTestId('case-concern-medium'));
    fireEvent.press(screen.getByTestId('case-submit'));
    expect(await screen.findByTestId('case-result-screen')).toBeTruthy();

    const [post] = api.callsTo('POST', '/cases');
    expect(post.headers['Idempotency-Key']).toBe(draft.idempotencyKey);
    expect(JSON.parse(String(formField(post.body, 'metadata')))).toEqual({
      patient_id: PATIENT_ID,
      lesion_id: null,
      age: 63,
      sex: 'female',
      site: 'back',
      history: { new: false, changed: true, bleeding: false, itching: false },
      concern: 'medium',
      wants_specialist: false,
      notes: null,
    });
    expect(formField(post.body, 'images')).toBeTruthy();
  });

  it('sends a follow-up photo of a tracked lesion with its lesion_id', async () => {
    seedDraft();
    const api = mockApi({ ...routes, 'GET /patients/{id}/lesions': { body: [lesion()] }, 'POST /cases': { status: 201, body: analysedCase({ lesion_id: LESION_ID }) } });
    await renderApp(`/clinician/patients/${PATIENT_ID}/new-case`, 'clinician');
    expect(await screen.findByTestId('case-lesion-new')).toBeTruthy();
    const followUp = await screen.findByTestId(`case-lesion-${LESION_ID}`);
    expect(followUp).toHaveTextContent(/A follow-up photo of the lesion on the back, left shoulder, upper/);
    fireEvent.press(followUp);
    fireEvent.press(screen.getByTestId('case-submit'));
    expect(await screen.findByTestId('case-result-screen')).toBeTruthy();
    const [post] = api.callsTo('POST', '/cases');
    expect(JSON.parse(String(formField(post.body, 'metadata')))).toMatchObject({ lesion_id: LESION_ID, site: 'back' });
  });

  it('explains a blurred photo in plain words', async () => {
    seedDraft({ images: [photo(false)] });
    mockApi(routes);
    await renderApp(`/clinician/patients/${PATIENT_ID}/new-case`, 'clinician');
    expect(await screen.findByTestId('quality-blurred')).toHaveTextContent(/Hold the phone steady/);
  });

  it('keeps a case made offline in the outbox and sends it later with the same key, once', async () => {
    const draft = seedDraft();
    let online = false;
    const created: string[] = [];
    const api = mockApi({
      ...routes,
      'GET /cases': { body: { items: [], next_cursor: null } },
      'POST /cases': (call) => {
        if (!online) return 'offline';
        created.push(call.headers['Idempotency-Key']);
        return { status: 201, body: analysedCase() };
      },
    });
    await renderApp(`/clinician/patients/${PATIENT_ID}/new-case`, 'clinician');
    fireEvent.press(await screen.findByTestId('case-submit'));
    expect(await screen.findByTestId('case-queued')).toBeTruthy();
    expect(await screen.findByTestId('outbox-banner')).toHaveTextContent(/1 case is waiting to be sent/);

    resetOutboxCache(); // as after an app restart: read back from storage
    expect((await listOutbox(clinician.id)).map((i) => i.idempotencyKey)).toEqual([draft.idempotencyKey]);

    online = true;
    fireEvent.press(screen.getByTestId('outbox-send-now'));
    await waitFor(() => expect(screen.queryByTestId('outbox-banner')).toBeNull());
    expect(created).toEqual([draft.idempotencyKey]);
    expect(api.callsTo('POST', '/cases').every((p) => p.headers['Idempotency-Key'] === draft.idempotencyKey)).toBe(true);
    expect(await listOutbox(clinician.id)).toEqual([]);
  });
});

describe('Cases', () => {
  it('lists the clinician’s cases with their status', async () => {
    mockApi({
      'GET /users/me': { body: clinician },
      'GET /cases': {
        body: {
          items: [
            { id: CASE_ID, patient_id: PATIENT_ID, state: 'answered', triage_level: 'urgent', created_at: '2026-11-20T10:10:00Z', updated_at: '2026-11-21T08:00:00Z' },
          ],
          next_cursor: null,
        },
      },
    });
    await renderApp('/clinician/cases', 'clinician');
    expect(await screen.findByText('Answered')).toBeTruthy();
    expect(screen.getByText('Urgent')).toBeTruthy();
  });
});

describe('CaseResult', () => {
  it('shows probabilities, triage rule, model, disclaimer and the dermatologist’s answer', async () => {
    const answered = analysedCase({
      state: 'answered',
      answer: {
        dermatologist_id: user('dermatologist').id,
        diagnosis: 'mel',
        diagnosis_text: null,
        management: 'urgent_referral',
        follow_up_weeks: null,
        note: 'Refer to the pigmented lesion clinic this week.',
        created_at: '2026-11-21T08:00:00Z',
      },
    });
    mockApi({
      'GET /users/me': { body: clinician },
      'GET /cases/{id}': { body: answered, headers: { ETag: '"4"' } },
      'GET /cases/{id}/images/{image}': { text: 'jpeg-bytes', headers: { 'Content-Type': 'image/jpeg' } },
    });
    await renderApp(`/clinician/cases/${CASE_ID}`, 'clinician');
    expect(await screen.findByTestId('ai-top-label')).toHaveTextContent('Most likely: Melanoma (61%)');
    expect(screen.getByTestId('triage-level')).toHaveTextContent('Urgent');
    expect(screen.getByTestId('triage-rule')).toHaveTextContent(/malignant lesion/);
    expect(screen.getByTestId('ai-model')).toHaveTextContent('dermalink_mobilenetv2 version 3');
    expect(screen.getByTestId('ai-disclaimer')).toHaveTextContent(/does not replace, a clinician's diagnosis/);
    expect(screen.getByTestId('answer-management')).toHaveTextContent('Urgent referral');
    expect(screen.getByTestId('answer-note')).toHaveTextContent(/pigmented lesion clinic/);
  });
});

describe('CaseResult heatmap', () => {
  function withHeatmap() {
    const kase = analysedCase();
    const [result] = kase.analysis.results;
    const url = `/api/v1/cases/${CASE_ID}/images/${result.image_id}/heatmap`;
    return analysedCase({ analysis: { ...kase.analysis, results: [{ ...result, heatmap_url: url }] } });
  }

  it('shows the heatmap next to the photo behind a toggle, labelled as no diagnosis', async () => {
    const api = mockApi({
      'GET /users/me': { body: clinician },
      'GET /cases/{id}': { body: withHeatmap(), headers: { ETag: '"3"' } },
      'GET /cases/{id}/images/{image}': { text: 'jpeg-bytes', headers: { 'Content-Type': 'image/jpeg' } },
      'GET /cases/{id}/images/{image}/heatmap': { text: 'png-bytes', headers: { 'Content-Type': 'image/png' } },
    });
    await renderApp(`/clinician/cases/${CASE_ID}`, 'clinician');
    expect(await screen.findByTestId('heatmap-label')).toHaveTextContent('Where the model looked, not a diagnosis');
    expect(screen.queryByTestId('heatmap-image')).toBeNull();
    const heatmapCalls = () => api.calls.filter((c) => c.path.endsWith('/heatmap'));
    expect(heatmapCalls()).toHaveLength(0); // fetched only when asked for
    fireEvent.press(screen.getByTestId('heatmap-toggle'));
    const image = await screen.findByTestId('heatmap-image');
    expect(image.props.source.uri).toMatch(/^data:image\/png;base64,/);
    expect(image.props.accessibilityLabel).toBe('Where the model looked, not a diagnosis');
    expect(heatmapCalls()).toHaveLength(1);
    expect(screen.getByTestId('heatmap-toggle')).toHaveTextContent('Hide heatmap');
    fireEvent.press(screen.getByTestId('heatmap-toggle'));
    await waitFor(() => expect(screen.queryByTestId('heatmap-image')).toBeNull());
  });

  it('shows no heatmap control when the analysis has none', async () => {
    mockApi({
      'GET /users/me': { body: clinician },
      'GET /cases/{id}': { body: analysedCase(), headers: { ETag: '"3"' } },
      'GET /cases/{id}/images/{image}': { text: 'jpeg-bytes', headers: { 'Content-Type': 'image/jpeg' } },
    });
    await renderApp(`/clinician/cases/${CASE_ID}`, 'clinician');
    expect(await screen.findByTestId('ai-top-label')).toBeTruthy();
    expect(screen.queryByTestId('heatmap-toggle')).toBeNull();
  });
});

describe('Change since the last photo', () => {
  const base = {
    'GET /users/me': { body: clinician },
    'GET /cases/{id}/images/{image}': { text: 'jpeg-bytes', headers: { 'Content-Type': 'image/jpeg' } },
    'GET /lesions/{id}/changes/{case}/image': { text: 'png-bytes', headers: { 'Content-Type': 'image/png' } },
  };

  it('gives the measurements in plain words, the significant measures, the aligned pair and the disclaimer', async () => {
    const api = mockApi({ ...base, 'GET /cases/{id}': { body: analysedCase({ lesion_id: LESION_ID, lesion_change: measuredChange() }), headers: { ETag: '"3"' } } });
    await renderApp(`/clinician/cases/${CASE_ID}`, 'clinician');
    const card = await screen.findByTestId('lesion-change');
    expect(screen.getByTestId('lesion-change-status')).toHaveTextContent('Significant change');
    const lines = screen.getAllByTestId('lesion-change-measure').map((n) => n.props.children);
    expect(lines).toEqual([
      'Area: 144% of the last photo (+44%, larger).',
      'Largest diameter: +20%.',
      'Colour difference: ΔE 4.4 (a visible but small difference).',
    ]);
    expect(screen.getByTestId('lesion-change-significant')).toHaveTextContent('Changed by more than the set amount: size (area), largest diameter.');
    expect(screen.getByTestId('lesion-change-disclaimer')).toHaveTextContent(/not a diagnosis/);
    expect(card).toBeTruthy();
    const image = await screen.findByTestId('change-image');
    expect(image.props.source).toEqual({ uri: `data:image/png;base64,${btoa('png-bytes')}` });
    const [call] = api.callsTo('GET', `/lesions/${LESION_ID}/changes/${CASE_ID}/image`);
    expect(call.headers.Authorization).toBe('Bearer access-clinician');
  });

  it('gives the reason and no number when the photos could not be compared', async () => {
    const change = measuredChange({ status: 'not_comparable', reason: 'the photos differ too much in distance (scale 0.41)', measurements: {} });
    const api = mockApi({ ...base, 'GET /cases/{id}': { body: analysedCase({ lesion_id: LESION_ID, lesion_change: change }), headers: { ETag: '"3"' } } });
    await renderApp(`/clinician/cases/${CASE_ID}`, 'clinician');
    expect(await screen.findByTestId('lesion-change-reason')).toHaveTextContent(
      'The two photos could not be compared: the photos differ too much in distance. Compare them by eye, or retake the photo in the same way as the last one.',
    );
    expect(screen.getByTestId('lesion-change')).not.toHaveTextContent(/\d/);
    expect(screen.queryByTestId('change-image')).toBeNull();
    expect(api.callsTo('GET', `/lesions/${LESION_ID}/changes/${CASE_ID}/image`)).toHaveLength(0);
  });

  it('is absent for a case that is not a follow-up', async () => {
    mockApi({ ...base, 'GET /cases/{id}': { body: analysedCase(), headers: { ETag: '"3"' } } });
    await renderApp(`/clinician/cases/${CASE_ID}`, 'clinician');
    expect(await screen.findByTestId('ai-top-label')).toBeTruthy();
    expect(screen.queryByTestId('lesion-change')).toBeNull();
  });
});
