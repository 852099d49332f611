import { analysedCase, mockApi, PATIENT_ID, tokens } from '../test/api';
import { saveTokens } from '../auth/tokenStore';
import { enqueue, flushOutbox, listOutbox, type OutboxItem, type OutboxStorage, platformStorage, setOutboxStorage } from './outbox';

function item(key: string): OutboxItem {
  return {
    idempotencyKey: key,
    ownerId: 'u1',
    patientLabel: 'Maria Santos',
    metadata: { patient_id: PATIENT_ID, lesion_id: null, age: 54, sex: 'male', site: 'back', concern: 'low', wants_specialist: false, notes: null },
    images: [{ base64: '/9j/4AAQ', width: 1600, height: 1200 }],
    queuedAt: '2026-11-30T10:00:00Z',
    attempts: 0,
    lastError: null,
  };
}

describe('outbox', () => {
  let disk: string | null;
  const storage: OutboxStorage = { read: async () => disk, write: async (t) => void (disk = t) };

  beforeEach(() => {
    disk = null;
    setOutboxStorage(storage);
  });
  afterAll(() => setOutboxStorage(platformStorage));

  it('survives a restart and sends each case once, with its own key, keeping refused ones with a reason', async () => {
    await saveTokens(tokens('clinician'));
    await enqueue(item('key-aaaa-1'));
    await enqueue(item('key-aaaa-1')); // a double tap queues it once
    await enqueue(item('key-bbbb-2'));
    setOutboxStorage(storage); // restart: the memory copy is gone, the stored JSON remains
    expect((await listOutbox('u1')).map((i) => i.idempotencyKey)).toEqual(['key-aaaa-1', 'key-bbbb-2']);

    const api = mockApi({
      'POST /cases': (call) =>
        call.headers['Idempotency-Key'] === 'key-aaaa-1'
          ? { status: 201, body: analysedCase() }
          : { status: 409, body: { type: 'consent_required', detail: 'consent withdrawn' } },
    });
    const { sent } = await flushOutbox('u1');
    expect(sent).toHaveLength(1);
    expect(api.callsTo('POST', '/cases').map((c) => c.headers['Idempotency-Key'])).toEqual(['key-aaaa-1', 'key-bbbb-2']);
    const left = await listOutbox('u1');
    expect(left.map((i) => i.idempotencyKey)).toEqual(['key-bbbb-2']);
    expect(left[0].lastError).toMatch(/Record their consent first/);
  });

  it('stops at the first network failure and keeps everything', async () => {
    await saveTokens(tokens('clinician'));
    await enqueue(item('key-cccc-3'));
    await enqueue(item('key-dddd-4'));
    const api = mockApi({ 'POST /cases': 'offline' });
    await flushOutbox('u1');
    expect(api.callsTo('POST', '/cases')).toHaveLength(1);
    expect(await listOutbox('u1')).toHaveLength(2);
  });
});
