// What a script on the official TypeScript SDK v2 (@modelcontextprotocol/client) sees when it
// signs in through mcpauth's authorization server. cmd/bduf-demo/tssdk2_e2e_test.go runs it
// (Node 22 from node_modules/.bin) and asserts the output: one JSON object a line,
// {"step": ..., "ok": true|false, ...}, a failed step carrying the error as the SDK raised it.
// The script never judges: it exits 0 when every step ran, whatever the steps returned.
//
//   node ts-sdk-v2-e2e.mjs <case>   with the case's settings in E2E_* variables:
//   oauth   E2E_URL, E2E_EMAIL, E2E_PASSWORD: the provider registers (RFC 7591), signs in
//           through the pages (form posts), hands the callback to finishAuth (which checks
//           iss, RFC 9207), refreshes, and steps up on 403 insufficient_scope
//   cimd    the same and E2E_CLIENT_ID_URL: the provider names itself by that client ID
//           metadata document URL instead of registering, signs in and calls a tool
//   E2E_VERSION_NEGOTIATION (either case): the Client's versionNegotiation mode, 'legacy' (the
//   default: initialize, 2025-11-25) or 'auto' (server/discover, 2026-07-28 when offered)
import { Client, IssuerMismatchError, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';

const env = process.env;
const requestOpts = { timeout: Number(env.E2E_TIMEOUT_MS || 30000) };
const clientInfo = { name: 'mcpauth-ts-sdk-v2-e2e', version: '1.0.0' };
const newClient = () => new Client(clientInfo, { capabilities: {}, versionNegotiation: { mode: env.E2E_VERSION_NEGOTIATION || 'legacy' } });

function emit(step, fields) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + '\n');
}

// step runs fn and emits its outcome; it returns fn's value, or undefined when fn threw.
async function step(name, fn, render = v => v) {
  try {
    const v = await fn();
    emit(name, { ok: true, ...render(v) });
    return v;
  } catch (err) {
    const error = { class: err?.constructor?.name ?? typeof err, message: String(err?.message ?? err) };
    for (const k of ['code', 'kind', 'data']) if (err?.[k] !== undefined) error[k] = err[k];
    emit(name, { ok: false, error });
    return undefined;
  }
}

// formLogin goes through the authorization server's pages as a browser that runs no script:
// the login form, then the consent form (Allow), keeping the browser cookie by hand; it returns
// the redirect back to the client without following it.
async function formLogin(authUrl) {
  const jar = new Map();
  const keep = r => {
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  };
  let r = await fetch(authUrl, { redirect: 'manual' });
  keep(r);
  for (let i = 0; i < 4; i++) {
    if (r.status === 302 || r.status === 303) return new URL(r.headers.get('location'), authUrl);
    const page = await r.text();
    const action = /action="([^"]*)"/.exec(page)?.[1];
    const sealed = /name="request" value="([^"]*)"/.exec(page)?.[1];
    if (!action || !sealed) throw new Error(`${new URL(r.url || authUrl).pathname} answered ${r.status} without a form`);
    const form = new URLSearchParams({ request: sealed });
    if (action.endsWith('/login')) {
      form.set('identifier', env.E2E_EMAIL);
      form.set('password', env.E2E_PASSWORD);
    } else if (action.endsWith('/consent')) {
      form.set('decision', 'allow');
    } else {
      throw new Error(`unexpected page ${action}`);
    }
    r = await fetch(new URL(action, authUrl), {
      method: 'POST', redirect: 'manual', body: form,
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') }
    });
    keep(r);
  }
  throw new Error('the pages did not end in a redirect');
}

// Provider is a v2 OAuthClientProvider as an app writes one, the browser replaced by formLogin:
// the redirect back (code, state, iss) waits in `back` for finishAuth. It keeps the discovery
// state with the code verifier, as v2 asks, so finishAuth can bind the code to the issuer.
class Provider {
  constructor(clientMetadataUrl) {
    this.authorizations = []; // the authorization URLs, in order
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
  }
  get redirectUrl() {
    return 'http://127.0.0.1:47125/callback';
  }
  get clientMetadata() {
    // grant_types left to v2's default (authorization_code and refresh_token, SEP-2207).
    return { client_name: 'TypeScript SDK v2 e2e', redirect_uris: [this.redirectUrl], token_endpoint_auth_method: 'none' };
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(c) {
    this.client = c;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(t) {
    this.saved = t;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
  saveDiscoveryState(s) {
    this.discovery = s;
  }
  discoveryState() {
    return this.discovery;
  }
  async redirectToAuthorization(url) {
    this.authorizations.push(url);
    this.back = await formLogin(url.toString());
  }
}

// A fetch for the transport (the SDK makes its OAuth requests with it too) that records what
// it asked of the server: "POST /register", "POST /token", ...
function recordingFetch(log) {
  return (url, init) => {
    log.push(`${init?.method ?? 'GET'} ${new URL(url).pathname}`);
    return fetch(url, init);
  };
}

// What an access token says (JWT claims), never the token itself.
function claims(tok) {
  const c = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url'));
  return { client_id: c.client_id, scope: c.scope, iss: c.iss, aud: c.aud };
}

const count = (log, request) => log.filter(r => r === request).length;
const toolResult = r => ({ isError: r.isError === true, structured: r.structuredContent ?? null });

// signIn connects without a token: the 401 makes the SDK discover, register (or not) and send
// the person to the pages; the app hands the callback to finishAuth. Then a connected client.
async function signIn(provider, log) {
  const transport = () => new StreamableHTTPClientTransport(new URL(env.E2E_URL + '/mcp'), { authProvider: provider, fetch: recordingFetch(log) });
  const first = transport();
  await step('connect_unauthorized', async () => {
    try {
      await newClient().connect(first, requestOpts);
      return { connected: true };
    } catch (err) {
      if (!(err instanceof UnauthorizedError)) throw err;
      const q = provider.authorizations[0]?.searchParams;
      return {
        connected: false, authorizations: provider.authorizations.length, registrations: count(log, 'POST /register'),
        client_id: provider.client?.client_id ?? null, iss: provider.back?.searchParams.get('iss') ?? null,
        request: { client_id: q?.get('client_id'), scope: q?.get('scope'), resource: q?.get('resource'), code_challenge_method: q?.get('code_challenge_method') }
      };
    }
  });
  if (!provider.back) return {};
  // The callback as a mix-up attacker would change it: a wrong iss, no iss. v2 must refuse both
  // before it redeems the code (which the real callback below then still redeems).
  const tampered = change => async () => {
    const p = new URLSearchParams(provider.back.searchParams);
    change(p);
    try {
      await first.finishAuth(p);
      return { accepted: true };
    } catch (err) {
      if (!(err instanceof IssuerMismatchError)) throw err;
      return { accepted: false, kind: err.kind, expected: err.expected ?? null };
    }
  };
  await step('finish_auth_wrong_iss', tampered(p => p.set('iss', p.get('iss') + '/other')));
  await step('finish_auth_without_iss', tampered(p => p.delete('iss')));
  const tokensBefore = count(log, 'POST /token');
  await step('finish_auth', async () => {
    await first.finishAuth(provider.back.searchParams);
    return {
      token_requests: count(log, 'POST /token') - tokensBefore, scope: provider.saved?.scope ?? null,
      has_refresh: Boolean(provider.saved?.refresh_token), claims: claims(provider.saved.access_token)
    };
  });
  const client = newClient();
  const t = transport();
  const ok = await step('connect', async () => {
    await client.connect(t, requestOpts);
    return { protocol_version: t.protocolVersion ?? null };
  });
  return ok ? { client, t } : {};
}

const cases = {
  async oauth() {
    const provider = new Provider();
    const log = [];
    const { client, t } = await signIn(provider, log);
    if (!client) return;
    await step('list_tools', () => client.listTools(undefined, requestOpts), r => ({ tools: r.tools.map(x => x.name).sort() }));
    await step('call_read', () => client.callTool({ name: 'projects_list', arguments: {} }, requestOpts), toolResult);
    // An access token the server refuses: the SDK refreshes with the refresh token, no new login.
    await step('refresh', async () => {
      const old = provider.saved.refresh_token;
      provider.saved = { ...provider.saved, access_token: 'not-a-valid-token' };
      const r = await client.callTool({ name: 'projects_list', arguments: {} }, requestOpts);
      return { ...toolResult(r), rotated: Boolean(provider.saved.refresh_token) && provider.saved.refresh_token !== old, authorizations: provider.authorizations.length };
    });
    // A write beyond the granted scopes: 403 insufficient_scope. v2 asks again though it holds a
    // refresh token (a refresh cannot widen the grant), for the scopes it had and the one
    // challenged; the app finishes the authorization and calls again.
    await step('call_write', async () => {
      const write = () => client.callTool({ name: 'projects_create', arguments: { name: 'from TypeScript v2' } }, requestOpts);
      let asked = false;
      let r;
      try {
        r = await write();
      } catch (err) {
        if (!(err instanceof UnauthorizedError)) throw err;
        asked = true;
        await t.finishAuth(provider.back.searchParams);
        r = await write();
      }
      const q = provider.authorizations.at(-1).searchParams;
      return {
        ...toolResult(r), asked, authorizations: provider.authorizations.length, registrations: count(log, 'POST /register'),
        requested_scope: q.get('scope'), scope: provider.saved?.scope ?? null, claims: claims(provider.saved.access_token)
      };
    });
    await client.close();
    emit('requests', { ok: true, registrations: count(log, 'POST /register'), token_requests: count(log, 'POST /token') });
  },

  async cimd() {
    const provider = new Provider(env.E2E_CLIENT_ID_URL);
    const log = [];
    const { client } = await signIn(provider, log);
    if (!client) return;
    await step('call_read', () => client.callTool({ name: 'projects_list', arguments: {} }, requestOpts), toolResult);
    await client.close();
    emit('requests', { ok: true, registrations: count(log, 'POST /register'), token_requests: count(log, 'POST /token') });
  }
};

const name = process.argv[2];
if (!cases[name]) {
  console.error(`usage: node ts-sdk-v2-e2e.mjs ${Object.keys(cases).join('|')}`);
  process.exit(2);
}
await cases[name]();
