// A real, certified OpenID Provider (panva/oidc-provider) on loopback for DermaLink's SSO tests.
//
// Configuration comes from one JSON argument:
//   {"port": 0, "clients": [{client_id, client_secret, redirect_uris}], "users": {"alice": {...claims}}}
// It prints "READY <issuer>" once it listens.
//
// Login is scriptable (no HTML forms): the provider sends the browser to /interaction/<uid>, and
// GET /interaction/<uid>?user=alice&amr=pwd,otp finishes the login as that user with those
// authentication methods (consent is granted automatically for the registered clients, as a hospital's
// provider does for its first-party apps).
//
// To test how DermaLink treats a provider that misbehaves (or a token an attacker altered), the test
// can set a tamper mode with POST /__test/mode?set=<mode> (audience | expired | signature | none): the
// ID token in the next token responses is then re-signed with a wrong audience, already expired, or
// with a second key that claims the provider's key id.
import { generateKeyPairSync } from 'node:crypto';

import { SignJWT, decodeJwt, decodeProtectedHeader, importJWK } from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2] || '{}');
const users = config.users || {};

function rsaJwk(kid) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

const signingKey = rsaJwk('test-key-1');
const rogueKey = rsaJwk('test-key-1'); // same kid, different key: a forged signature
let mode = 'none';

const provider = new Provider(`http://127.0.0.1:${config.port}`, {
  clients: config.clients,
  jwks: { keys: [signingKey] },
  claims: {
    openid: ['sub', 'amr', 'acr'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups', 'clinic'],
  },
  conformIdTokenClaims: false, // put the scopes' claims in the ID token (as Keycloak and Entra ID can)
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!users[id]) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...users[id] }) };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile groups');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'groups', 'clinic']);
    await grant.save();
    return grant;
  },
  cookies: { keys: ['dermalink-test-cookie-key'] },
  ttl: { IdToken: 300, AccessToken: 300, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600 },
});

async function tamper(idToken) {
  const claims = decodeJwt(idToken);
  const header = decodeProtectedHeader(idToken);
  const now = Math.floor(Date.now() / 1000);
  let key = signingKey;
  if (mode === 'audience') claims.aud = 'another-application';
  if (mode === 'expired') Object.assign(claims, { iat: now - 3600, exp: now - 1800 });
  if (mode === 'signature') key = rogueKey;
  return new SignJWT(claims).setProtectedHeader(header).sign(await importJWK(key, 'RS256'));
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/mode' && ctx.method === 'POST') {
    mode = ctx.query.set || 'none';
    ctx.status = 204;
    return;
  }
  const interaction = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (interaction && ctx.method === 'GET') {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const user = ctx.query.user;
    if (!user || !users[user]) {
      ctx.status = 400;
      ctx.body = `unknown user; add ?user=<one of ${Object.keys(users).join(', ')}> (prompt ${details.prompt.name})`;
      return;
    }
    const amr = (ctx.query.amr || 'pwd').split(',');
    await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: user, amr } }, {
      mergeWithLastSubmission: false,
    });
    ctx.respond = false;
    return;
  }
  await next();
  if (ctx.path === '/token' && mode !== 'none' && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: await tamper(ctx.body.id_token) };
  }
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`READY http://127.0.0.1:${server.address().port}`);
});
