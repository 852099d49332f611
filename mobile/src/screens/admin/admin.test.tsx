import { fireEvent, screen, waitFor } from '@testing-library/react-native';

import type { Schemas } from '../../api/client-types';
import { CLINIC_ID, consentDocument, mockApi, patient, PATIENT_ID, renderApp, user } from '../../test/api';

const admin = user('admin');

function event(seq: number, extra: Partial<Schemas['AuditEventOut']> = {}): Schemas['AuditEventOut'] {
  return {
    seq,
    id: `0000000${seq}-aaaa-4bbb-8ccc-dddddddddddd`,
    occurred_at: '2026-11-20T10:10:00Z',
    actor_id: user('clinician').id,
    actor_role: 'clinician',
    action: 'case.create',
    resource_type: 'case',
    resource_id: 'c1',
    patient_id: PATIENT_ID,
    outcome: 'allowed',
    client_address: '127.0.0.1',
    request_id: `req-${seq}`,
    reason: null,
    detail: '{}',
    ...extra,
  };
}

describe('AdminHome', () => {
  it('shows the audit trail’s verify result', async () => {
    mockApi({ 'GET /users/me': { body: admin }, 'GET /audit/verify': { body: { ok: true, events: 42, findings: [] } } });
    await renderApp('/admin', 'admin');
    expect(await screen.findByTestId('verify-badge')).toHaveTextContent('Intact');
    expect(screen.getByTestId('verify-summary')).toHaveTextContent(/All 42 events check out/);
  });

  it('sends an admin without two-step verification to enrol first, with the password again', async () => {
    const api = mockApi({
      'GET /users/me': { body: user('admin', { totp_enabled: false }) },
      'POST /auth/totp/enrol': (call) =>
        (call.body as { password?: string }).password === 'correct horse battery staple'
          ? { body: { secret: 'JBSWY3DPEHPK3PXP', otpauth_uri: 'otpauth://totp/DermaLink:admin?secret=JBSWY3DPEHPK3PXP', qr_svg_data_uri: 'data:image/svg+xml;base64,PHN2Zy8+' } }
          : { status: 401, body: { type: 'invalid_credentials', detail: 'wrong password' } },
      'POST /auth/totp/confirm': { status: 204 },
    });
    await renderApp('/', 'admin');
    fireEvent.changeText(await screen.findByTestId('totp-password'), 'wrong');
    fireEvent.press(screen.getByTestId('totp-begin'));
    expect(await screen.findByText(/password or authenticator code is not right/)).toBeTruthy();
    expect(screen.queryByTestId('totp-secret')).toBeNull();
    fireEvent.changeText(screen.getByTestId('totp-password'), 'correct horse battery staple');
    fireEvent.press(screen.getByTestId('totp-begin'));
    expect(await screen.findByTestId('totp-secret')).toHaveTextContent('JBSWY3DPEHPK3PXP');
    fireEvent.changeText(screen.getByTestId('totp-confirm-code'), '492039');
    fireEvent.press(screen.getByTestId('totp-confirm'));
    await waitFor(() => expect(api.callsTo('POST', '/auth/totp/confirm')[0]?.body).toEqual({ code: '492039' }));
  });
});

describe('Audit', () => {
  it('filters, pages with the cursor and exports CSV', async () => {
    const api = mockApi({
      'GET /users/me': { body: admin },
      'GET /audit/events': (call) =>
        call.query.get('cursor')
          ? { body: { items: [event(1, { action: 'patient.read' })], next_cursor: null } }
          : { body: { items: [event(3), event(2, { outcome: 'denied', action: 'auth.forbidden' })], next_cursor: 'c-2' } },
      'GET /audit/events.csv': { text: 'seq,occurred_at,action\n3,2026-11-20T10:10:00Z,case.create\n2,2026-11-20T10:09:00Z,auth.forbidden\n' },
    });
    await renderApp('/admin/audit', 'admin');
    expect(await screen.findByTestId('audit-event-3')).toHaveTextContent(/case.create/);
    fireEvent.changeText(screen.getByTestId('audit-patient'), PATIENT_ID);
    fireEvent.press(screen.getByTestId('audit-outcome-denied'));
    fireEvent.changeText(screen.getByTestId('audit-since'), '2026-11-01');
    fireEvent.press(screen.getByTestId('audit-search'));
    await waitFor(() => expect(api.callsTo('GET', '/audit/events')).toHaveLength(2));
    const query = api.callsTo('GET', '/audit/events')[1].query;
    expect(query.get('patient_id')).toBe(PATIENT_ID);
    expect(query.get('outcome')).toBe('denied');
    expect(query.get('since')).toBe('2026-11-01T00:00:00Z');

    fireEvent.press(screen.getByTestId('audit-next'));
    expect(await screen.findByTestId('audit-event-1')).toHaveTextContent(/patient.read/);
    expect(api.callsTo('GET', '/audit/events')[2].query.get('cursor')).toBe('c-2');

    fireEvent.press(screen.getByTestId('audit-export'));
    expect(await screen.findByTestId('audit-notice')).toHaveTextContent('Exported 2 events as CSV.');
    expect(api.callsTo('GET', '/audit/events.csv')[0].query.get('outcome')).toBe('denied');
  });
});

describe('Users', () => {
  it('creates a clinician in a clinic and disables an account', async () => {
    const clinician = user('clinician');
    const api = mockApi({
      'GET /users/me': { body: admin },
      'GET /users': { body: { items: [admin, clinician], next_cursor: null } },
      'GET /clinics': { body: [{ id: CLINIC_ID, name: 'Riverside Health Centre', created_at: '2026-11-01T09:00:00Z' }] },
      'POST /users': { status: 201, body: user('clinician', { email: 'new@clinic.org', full_name: 'Dr New' }) },
      'PATCH /users/{id}': { body: { ...clinician, is_active: false } },
    });
    await renderApp('/admin/users', 'admin');
    fireEvent.changeText(await screen.findByTestId('user-name'), 'Dr New');
    fireEvent.changeText(screen.getByTestId('user-email'), 'new@clinic.org');
    fireEvent.changeText(screen.getByTestId('user-password'), 'a long initial passphrase');
    fireEvent.press(await screen.findByTestId(`user-clinic-${CLINIC_ID}`));
    fireEvent.press(screen.getByTestId('user-create'));
    expect(await screen.findByTestId('users-notice')).toHaveTextContent(/Account created for Dr New/);
    expect(api.callsTo('POST', '/users')[0].body).toEqual({
      email: 'new@clinic.org',
      full_name: 'Dr New',
      role: 'clinician',
      password: 'a long initial passphrase',
      clinic_id: CLINIC_ID,
    });

    fireEvent.press(screen.getByTestId(`toggle-${clinician.email}`));
    await waitFor(() => expect(api.callsTo('PATCH', `/users/${clinician.id}`)[0]?.body).toEqual({ is_active: false }));
  });
});

describe('Clinics', () => {
  it('adds a clinic', async () => {
    const clinic = { id: CLINIC_ID, name: 'Riverside Health Centre', created_at: '2026-11-01T09:00:00Z' };
    let created = false;
    mockApi({
      'GET /users/me': { body: admin },
      'GET /clinics': () => ({ body: created ? [clinic] : [] }),
      'POST /clinics': () => {
        created = true;
        return { status: 201, body: clinic };
      },
    });
    await renderApp('/admin/clinics', 'admin');
    fireEvent.changeText(await screen.findByTestId('clinic-name'), 'Riverside Health Centre');
    fireEvent.press(screen.getByTestId('clinic-create'));
    expect(await screen.findByTestId('clinic-Riverside Health Centre')).toBeTruthy();
  });
});

describe('ConsentDocuments', () => {
  it('publishes a new version after a confirmation', async () => {
    const api = mockApi({
      'GET /users/me': { body: admin },
      'GET /consent-documents': { body: [consentDocument] },
      'POST /consent-documents': { status: 201, body: { ...consentDocument, id: 'd2', version: '2.0' } },
    });
    await renderApp('/admin/consent', 'admin');
    expect(await screen.findByTestId('doc-1.0-demo')).toBeTruthy();
    fireEvent.changeText(screen.getByTestId('doc-version'), '2.0');
    fireEvent.changeText(screen.getByTestId('doc-title'), 'Teledermatology consent');
    fireEvent.changeText(screen.getByTestId('doc-text'), 'I agree that photos of my skin are analysed and shared with a dermatologist.');
    fireEvent.press(screen.getByTestId('doc-reconsent-yes'));
    fireEvent.press(screen.getByTestId('doc-publish'));
    fireEvent.press(screen.getByTestId('doc-publish-confirm'));
    expect(await screen.findByTestId('consent-documents-notice')).toHaveTextContent(/Version 2.0 is published/);
    expect(api.callsTo('POST', '/consent-documents')[0].body).toEqual({
      version: '2.0',
      language: 'en',
      title: 'Teledermatology consent',
      text: 'I agree that photos of my skin are analysed and shared with a dermatologist.',
      scopes: ['ai_analysis', 'specialist_sharing'],
      requires_reconsent: true,
    });
  });
});

describe('PatientAccess', () => {
  it('needs a reason and a confirmation for break-glass, and a typed ERASE for erasure', async () => {
    const api = mockApi({
      'GET /users/me': { body: admin },
      'POST /patients/{id}/break-glass': { body: patient },
      'POST /patients/{id}/erase': { body: { patient_id: PATIENT_ID, erased_at: '2026-11-30T12:00:00Z', blobs_deleted: 3 } },
    });
    await renderApp('/admin/patients', 'admin');
    fireEvent.changeText(await screen.findByTestId('access-patient-id'), PATIENT_ID);
    fireEvent.changeText(screen.getByTestId('access-reason'), 'short');
    expect(screen.getByTestId('break-glass')).toBeDisabled();
    fireEvent.changeText(screen.getByTestId('access-reason'), 'INC-4711: patient unconscious in A&E');
    fireEvent.press(screen.getByTestId('break-glass'));
    fireEvent.press(screen.getByTestId('break-glass-confirm'));
    expect(await screen.findByTestId('access-patient-name')).toHaveTextContent('Maria Santos');
    expect(api.callsTo('POST', `/patients/${PATIENT_ID}/break-glass`)[0].body).toEqual({ reason: 'INC-4711: patient unconscious in A&E' });

    fireEvent.press(screen.getByTestId('erase'));
    expect(screen.getByTestId('erase-confirm')).toBeDisabled();
    fireEvent.changeText(screen.getByTestId('erase-typed'), 'ERASE');
    fireEvent.press(screen.getByTestId('erase-confirm'));
    expect(await screen.findByTestId('patient-access-notice')).toHaveTextContent(/3 stored files deleted/);
    expect(api.callsTo('POST', `/patients/${PATIENT_ID}/erase`)[0].body).toEqual({
      reason: 'INC-4711: patient unconscious in A&E',
      basis: 'patient_request',
    });
  });
});
