import { clearTokens } from './src/auth/tokenStore';
import { resetOutboxCache } from './src/offline/outbox';

afterEach(async () => {
  await clearTokens();
  resetOutboxCache();
});
