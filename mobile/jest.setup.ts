import { clearTokens } from './src/auth/tokenStore';
import { platformStorage, resetOutboxCache } from './src/offline/outbox';

afterEach(async () => {
  await clearTokens();
  await platformStorage.write('[]');
  resetOutboxCache();
});
