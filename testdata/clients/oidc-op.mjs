// A real OpenID Provider for the SSO tests: node-oidc-provider (OpenID Certified), on a free
// loopback port, configured from the environment. Its development interactions are on: a login
// form that takes the account id as "login" (any password) and a consent form; the tests fill
// them in with HTTP form posts, as they do mcpauth's own pages.
//
//   OP_CONFIG  JSON {"clients": [oidc-provider client metadata...],
//                    "accounts": {"<login>": {claims...}}, or "accounts_file": a path to
//                    that object, read at each sign-in (a test changes a person's groups)}
// It prints "LISTENING <issuer>" once it serves.
import fs from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const cfg = JSON.parse(process.env.OP_CONFIG || '{}');
const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: cfg.clients || [],
    findAccount: async (ctx, id) => {
      const accounts = cfg.accounts_file ? JSON.parse(fs.readFileSync(cfg.accounts_file, 'utf8')) : cfg.accounts || {};
      const claims = accounts[id];
      if (!claims) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['mcpauth-test-only'] },
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  console.log(`LISTENING ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
