import { useCallback, useEffect, useState } from 'react';
import { Platform } from 'react-native';

import { flushOutbox, listOutbox, type OutboxItem, subscribeOutbox } from './outbox';

const RETRY_EVERY_MS = 20_000;

/** The signed-in clinician's outbox, kept current; `flush` sends what waits. */
export function useOutbox(ownerId: string | undefined) {
  const [items, setItems] = useState<OutboxItem[]>([]);
  const [sending, setSending] = useState(false);

  useEffect(() => {
    if (!ownerId) return;
    let alive = true;
    listOutbox(ownerId).then((list) => alive && setItems(list));
    const unsubscribe = subscribeOutbox((all) => alive && setItems(all.filter((i) => i.ownerId === ownerId)));
    return () => {
      alive = false;
      unsubscribe();
    };
  }, [ownerId]);

  const flush = useCallback(async () => {
    if (!ownerId) return;
    setSending(true);
    try {
      await flushOutbox(ownerId);
    } finally {
      setSending(false);
    }
  }, [ownerId]);

  return { items, sending, flush };
}

/**
 * Sends the outbox when the clinician signs in, when the browser reports the network is back, and every
 * 20 s while something waits. Renders nothing.
 */
export function OutboxSync({ ownerId }: { ownerId: string }) {
  const { items, flush } = useOutbox(ownerId);
  const waiting = items.length > 0;

  useEffect(() => {
    flush();
  }, [flush]);

  useEffect(() => {
    if (Platform.OS !== 'web' || typeof window === 'undefined' || !window.addEventListener) return;
    const online = () => flush();
    window.addEventListener('online', online);
    return () => window.removeEventListener('online', online);
  }, [flush]);

  useEffect(() => {
    if (!waiting) return;
    const timer = setInterval(flush, RETRY_EVERY_MS);
    return () => clearInterval(timer);
  }, [waiting, flush]);

  return null;
}
