/**
 * The outbox: cases submitted without a connection (or while the session had ended), kept with their
 * photos in the app's private storage (a file in the document directory on phones, localStorage on the
 * web build) and sent later with the same Idempotency-Key, so a retry can never create a second case.
 */
import * as FileSystem from 'expo-file-system/legacy';
import { Platform } from 'react-native';

import { ApiError, NetworkError } from '../api/client';
import { type Case, type CaseMetadata, submitCase, type UploadImage } from '../api/cases';
import { describeError } from '../api/errors';

export type OutboxItem = {
  idempotencyKey: string;
  ownerId: string;
  patientLabel: string;
  metadata: CaseMetadata;
  images: { base64: string; width: number; height: number }[];
  queuedAt: string;
  attempts: number;
  lastError: string | null;
};

const KEY = 'dermalink.outbox.v1';
let memory: OutboxItem[] | null = null;
const listeners = new Set<(items: OutboxItem[]) => void>();

function fileUri(): string | null {
  return Platform.OS !== 'web' && FileSystem.documentDirectory ? `${FileSystem.documentDirectory}outbox.json` : null;
}

/** Where the outbox's JSON lives; replaceable so tests can simulate an app restart. */
export type OutboxStorage = { read: () => Promise<string | null>; write: (text: string) => Promise<void> };

const memoryText = { value: null as string | null };

export const platformStorage: OutboxStorage = {
  async read() {
    if (Platform.OS === 'web' && typeof localStorage !== 'undefined') return localStorage.getItem(KEY);
    const uri = fileUri();
    if (!uri) return memoryText.value;
    try {
      return await FileSystem.readAsStringAsync(uri);
    } catch {
      return null; // nothing stored yet
    }
  },
  async write(text) {
    if (Platform.OS === 'web' && typeof localStorage !== 'undefined') localStorage.setItem(KEY, text);
    else if (fileUri()) await FileSystem.writeAsStringAsync(fileUri()!, text);
    else memoryText.value = text;
  },
};

let storage: OutboxStorage = platformStorage;

export function setOutboxStorage(next: OutboxStorage): void {
  storage = next;
  memory = null;
}

async function read(): Promise<OutboxItem[]> {
  if (memory) return memory;
  const text = await storage.read();
  memory = text ? (JSON.parse(text) as OutboxItem[]) : [];
  return memory;
}

async function write(items: OutboxItem[]): Promise<void> {
  memory = items;
  await storage.write(JSON.stringify(items));
  listeners.forEach((l) => l(items));
}

export async function listOutbox(ownerId?: string): Promise<OutboxItem[]> {
  const items = await read();
  return ownerId ? items.filter((i) => i.ownerId === ownerId) : items;
}

export function subscribeOutbox(listener: (items: OutboxItem[]) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export async function enqueue(item: OutboxItem): Promise<void> {
  const items = await read();
  if (items.some((i) => i.idempotencyKey === item.idempotencyKey)) return;
  await write([...items, item]);
}

export async function discard(idempotencyKey: string): Promise<void> {
  await write((await read()).filter((i) => i.idempotencyKey !== idempotencyKey));
}

/** Forget the in-memory copy so the next read comes from storage (as after a restart). */
export function resetOutboxCache(): void {
  memory = null;
}

async function uploadImages(item: OutboxItem): Promise<UploadImage[]> {
  const out: UploadImage[] = [];
  for (const [i, image] of item.images.entries()) {
    let uri = '';
    if (Platform.OS !== 'web' && FileSystem.cacheDirectory) {
      uri = `${FileSystem.cacheDirectory}outbox-${item.idempotencyKey}-${i}.jpg`;
      await FileSystem.writeAsStringAsync(uri, image.base64, { encoding: FileSystem.EncodingType.Base64 });
    }
    out.push({ ...image, uri });
  }
  return out;
}

export type SendOutcome = { status: 'sent'; case: Case } | { status: 'queued'; reason: 'offline' | 'signed_out' };

/** Send a case now; without a connection (or a session) keep it in the outbox instead. */
export async function sendOrQueue(item: OutboxItem, images: UploadImage[]): Promise<SendOutcome> {
  try {
    return { status: 'sent', case: await submitCase(item.metadata, images, item.idempotencyKey) };
  } catch (error) {
    if (error instanceof NetworkError) {
      await enqueue(item);
      return { status: 'queued', reason: 'offline' };
    }
    if (error instanceof ApiError && error.status === 401) {
      await enqueue(item);
      return { status: 'queued', reason: 'signed_out' };
    }
    throw error;
  }
}

let flushing: Promise<{ sent: Case[] }> | null = null;

/**
 * Send what waits in the outbox for this user, oldest first. Stops at the first network failure (still
 * offline); a refusal by the API (e.g. consent withdrawn) stays in the outbox with its reason shown.
 */
export function flushOutbox(ownerId: string): Promise<{ sent: Case[] }> {
  flushing ??= (async () => {
    const sent: Case[] = [];
    try {
      for (const item of await listOutbox(ownerId)) {
        try {
          const created = await submitCase(item.metadata, await uploadImages(item), item.idempotencyKey);
          sent.push(created);
          await discard(item.idempotencyKey);
        } catch (error) {
          if (error instanceof NetworkError || (error instanceof ApiError && error.status === 401)) break;
          const items = await read();
          await write(
            items.map((i) =>
              i.idempotencyKey === item.idempotencyKey ? { ...i, attempts: i.attempts + 1, lastError: describeError(error) } : i,
            ),
          );
        }
      }
    } finally {
      flushing = null;
    }
    return { sent };
  })();
  return flushing;
}
