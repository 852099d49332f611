/**
 * Where the session's tokens live: expo-secure-store (the OS keychain/keystore) on phones, and only in
 * memory on the web build, where any persistent browser storage would be readable by injected script.
 */
import * as SecureStore from 'expo-secure-store';
import { Platform } from 'react-native';

import type { Schemas } from '../api/client-types';

export type Tokens = Schemas['TokenPair'];

const KEY = 'dermalink.session';
let memory: Tokens | null = null;

export function currentTokens(): Tokens | null {
  return memory;
}

export async function saveTokens(tokens: Tokens): Promise<void> {
  memory = tokens;
  if (Platform.OS !== 'web') {
    try {
      await SecureStore.setItemAsync(KEY, JSON.stringify(tokens));
    } catch {
      // The keystore can be unavailable (e.g. a locked device); the session then lasts until the app closes.
    }
  }
}

export async function loadTokens(): Promise<Tokens | null> {
  if (memory || Platform.OS === 'web') return memory;
  try {
    const stored = await SecureStore.getItemAsync(KEY);
    memory = stored ? (JSON.parse(stored) as Tokens) : null;
  } catch {
    memory = null;
  }
  return memory;
}

export async function clearTokens(): Promise<void> {
  memory = null;
  if (Platform.OS !== 'web') {
    try {
      await SecureStore.deleteItemAsync(KEY);
    } catch {
      // nothing stored
    }
  }
}
