/**
 * The signed-in person: who they are (GET /users/me), their role, and the session's life cycle.
 * A session lost mid-work (refresh refused) returns to sign-in; the outbox keeps any unsent case.
 */
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react';

import { exchangeSsoCode, login, logout, me, type User } from '../api/auth';
import { onSessionLost } from '../api/client';
import { loadTokens } from './tokenStore';

type Status = 'loading' | 'signedOut' | 'signedIn';

type SessionValue = {
  status: Status;
  user: User | null;
  /** True after the API ended the session (expired or revoked), until the next sign-in. */
  lost: boolean;
  signIn: (email: string, password: string, totpCode?: string) => Promise<User>;
  /** Finish a single sign-on: exchange the one-time code (plus the TOTP code when asked). */
  signInWithSso: (code: string, totpCode?: string) => Promise<User>;
  signOut: () => Promise<void>;
  reloadUser: () => Promise<void>;
};

const SessionContext = createContext<SessionValue | null>(null);

export function SessionProvider({ children, initialUser = null }: { children: ReactNode; initialUser?: User | null }) {
  const [user, setUser] = useState<User | null>(initialUser);
  const [status, setStatus] = useState<Status>(initialUser ? 'signedIn' : 'loading');
  const [lost, setLost] = useState(false);

  useEffect(() => {
    if (initialUser) return;
    let cancelled = false;
    (async () => {
      const tokens = await loadTokens();
      if (!tokens) {
        if (!cancelled) setStatus('signedOut');
        return;
      }
      try {
        const who = await me();
        if (!cancelled) {
          setUser(who);
          setStatus('signedIn');
        }
      } catch {
        if (!cancelled) setStatus('signedOut');
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [initialUser]);

  useEffect(
    () =>
      onSessionLost(() => {
        setUser(null);
        setLost(true);
        setStatus('signedOut');
      }),
    [],
  );

  const signedIn = useCallback(async () => {
    const who = await me();
    setUser(who);
    setLost(false);
    setStatus('signedIn');
    return who;
  }, []);

  const signIn = useCallback(
    async (email: string, password: string, totpCode?: string) => {
      await login(email, password, totpCode);
      return signedIn();
    },
    [signedIn],
  );

  const signInWithSso = useCallback(
    async (code: string, totpCode?: string) => {
      await exchangeSsoCode(code, totpCode);
      return signedIn();
    },
    [signedIn],
  );

  const signOut = useCallback(async () => {
    try {
      await logout();
    } catch {
      // signed out locally whatever the server says
    }
    setUser(null);
    setLost(false);
    setStatus('signedOut');
  }, []);

  const reloadUser = useCallback(async () => {
    setUser(await me());
  }, []);

  const value = useMemo(
    () => ({ status, user, lost, signIn, signInWithSso, signOut, reloadUser }),
    [status, user, lost, signIn, signInWithSso, signOut, reloadUser],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionValue {
  const value = useContext(SessionContext);
  if (!value) throw new Error('useSession outside SessionProvider');
  return value;
}

export function homeFor(user: User): string {
  if (user.role === 'admin') return user.totp_enabled ? '/admin' : '/admin/totp';
  return user.role === 'dermatologist' ? '/dermatologist' : '/clinician';
}
