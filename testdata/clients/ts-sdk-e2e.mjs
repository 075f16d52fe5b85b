// What a script on the official TypeScript SDK (@modelcontextprotocol/sdk) sees of a guarded
// mcpauth server. cmd/mcpauth/tssdk_e2e_test.go runs it (Node 22 from node_modules/.bin) and
// asserts the output: one JSON object a line, {"step": ..., "ok": true|false, ...}, where a
// failed step carries the error exactly as the SDK raised it (class, status, message) and, when
// the message ends in a JSON body, that body parsed. The script never judges: it exits 0 when
// every step ran, whatever the steps returned.
//
//   node ts-sdk-e2e.mjs <case>     with the case's settings in E2E_* variables:
//   bearer          E2E_URL, E2E_TRANSPORT (http|sse), E2E_TOKEN, E2E_DENIED_TOOL, E2E_DENIED_ARGS
//   bad-tokens      E2E_URL, E2E_TOKENS (JSON [{"label","token"}])
//   expiry          E2E_URL, E2E_EMAIL, E2E_PASSWORD (a server with a short access-token TTL)
//   stdio-login     E2E_BIN, E2E_EMAIL, E2E_PASSWORD (the server's environment is this one's)
//   session-delete  E2E_URL, E2E_TOKEN
//   oauth           E2E_URL, E2E_EMAIL, E2E_PASSWORD (a server whose authorization server is on):
//                   an OAuthClientProvider registers, signs in through the pages (form posts),
//                   steps up on 403 insufficient_scope and refreshes
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const env = process.env;
const timeoutMs = Number(env.E2E_TIMEOUT_MS || 30000);
const clientInfo = { name: 'mcpauth-ts-sdk-e2e', version: '1.0.0' };

function emit(step, fields) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + '\n');
}

// describe is an error as the SDK user gets it, plus the JSON body its message ends with.
function describe(err) {
  const d = { class: err?.constructor?.name ?? typeof err, message: String(err?.message ?? err) };
  if (typeof err?.code === 'number') d.code = err.code; // HTTP status (StreamableHTTPError, SseError) or JSON-RPC code (McpError)
  if (err?.data !== undefined) d.data = err.data;
  const status = /\(HTTP (\d{3})\)/.exec(d.message); // SSEClientTransport: "Error POSTing to endpoint (HTTP 403): <body>"
  if (status) d.http_status = Number(status[1]);
  else if (d.class === 'StreamableHTTPError') d.http_status = d.code;
  const brace = d.message.indexOf('{');
  if (brace >= 0) {
    try {
      d.body = JSON.parse(d.message.slice(brace));
    } catch {
      // not a JSON body
    }
  }
  return d;
}

// step runs fn and emits its outcome; it returns fn's value, or undefined when fn threw.
async function step(name, fn, render = v => v) {
  try {
    const v = await fn();
    emit(name, { ok: true, ...render(v) });
    return v;
  } catch (err) {
    emit(name, { ok: false, error: describe(err) });
    return undefined;
  }
}

// A fetch that sends the bearer token of the moment (a script changes it after a refresh) and
// remembers the JSON-RPC id of the last request it posted.
function bearerFetch(state) {
  return async (url, init = {}) => {
    const headers = new Headers(init.headers);
    if (state.bearer) headers.set('authorization', `Bearer ${state.bearer}`);
    else headers.delete('authorization');
    if (typeof init.body === 'string') {
      try {
        const msg = JSON.parse(init.body);
        if (msg.id !== undefined) state.lastRequestId = msg.id;
      } catch {
        // not JSON
      }
    }
    return fetch(url, { ...init, headers });
  };
}

function httpTransport(kind, state, opts = {}) {
  const f = bearerFetch(state);
  if (kind === 'sse') return new SSEClientTransport(new URL(env.E2E_URL + '/sse'), { fetch: f });
  return new StreamableHTTPClientTransport(new URL(env.E2E_URL + '/mcp'), { fetch: f, ...opts });
}

const toolNames = r => ({ tools: r.tools.map(t => t.name).sort() });
// Tokens in a result are shown as present, never printed.
const redact = v => JSON.parse(JSON.stringify(v ?? null, (k, x) => (/_token$/.test(k) && typeof x === 'string' ? '<redacted>' : x)));
const toolResult = r => ({ isError: r.isError === true, structured: redact(r.structuredContent) });
const requestOpts = { timeout: timeoutMs };

async function connect(name, client, transport) {
  return step(name, async () => {
    await client.connect(transport, requestOpts);
    return { protocol_version: transport.protocolVersion ?? null, session_id: transport.sessionId ?? null };
  });
}

function call(client, state, tool, args = {}) {
  return async () => {
    try {
      return await client.callTool({ name: tool, arguments: args }, undefined, requestOpts);
    } finally {
      state.called = state.lastRequestId;
    }
  };
}

// callStep is a tools/call step; a failed one also names the id the request went out with.
async function callStep(name, client, state, tool, args) {
  const r = await step(name, call(client, state, tool, args), toolResult);
  if (r === undefined) emit(name + ':request', { request_id: state.called ?? null });
  return r;
}

// formLogin goes through the authorization server's pages as a browser that runs no script:
// the login form, then the consent form (Allow), keeping the browser cookie by hand; it returns
// the redirect back to the client without following it.
async function formLogin(authUrl, identifier, password) {
  const jar = new Map(); // name -> value, as a browser keeps them
  const keep = r => {
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  };
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
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
      form.set('identifier', identifier);
      form.set('password', password);
    } else if (action.endsWith('/consent')) {
      form.set('decision', 'allow');
    } else {
      throw new Error(`unexpected page ${action}`);
    }
    r = await fetch(new URL(action, authUrl), {
      method: 'POST', redirect: 'manual', body: form,
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader() }
    });
    keep(r);
  }
  throw new Error('the pages did not end in a redirect');
}

// TestProvider is an OAuthClientProvider as an app writes one, with the browser replaced by
// formLogin: the code the redirect carries waits in `back` for finishAuth.
class TestProvider {
  constructor(grantTypes = ['authorization_code', 'refresh_token']) {
    this.authorizations = [];
    this.grantTypes = grantTypes;
  }
  get redirectUrl() {
    return 'http://127.0.0.1:47124/callback';
  }
  get clientMetadata() {
    return {
      client_name: 'TypeScript SDK e2e', redirect_uris: [this.redirectUrl], response_types: ['code'],
      grant_types: this.grantTypes, token_endpoint_auth_method: 'none'
    };
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
  async redirectToAuthorization(url) {
    this.authorizations.push(url.toString());
    this.back = await formLogin(url.toString(), env.E2E_EMAIL, env.E2E_PASSWORD);
  }
  code() {
    return this.back?.searchParams.get('code');
  }
}

const cases = {
  async oauth() {
    const provider = new TestProvider();
    const transport = () => new StreamableHTTPClientTransport(new URL(env.E2E_URL + '/mcp'), { authProvider: provider });
    const first = transport();
    await step('connect_unauthorized', async () => {
      try {
        await new Client(clientInfo, { capabilities: {} }).connect(first, requestOpts);
        return { connected: true };
      } catch (err) {
        if (!(err instanceof UnauthorizedError)) throw err;
        return { connected: false, authorizations: provider.authorizations.length, iss: provider.back?.searchParams.get('iss') ?? null };
      }
    });
    await step('finish_auth', async () => {
      await first.finishAuth(provider.code());
      return { scope: provider.saved?.scope ?? null, has_refresh: Boolean(provider.saved?.refresh_token) };
    });
    const client = new Client(clientInfo, { capabilities: {} });
    const t = transport();
    if (!(await connect('connect', client, t))) return;
    await step('list_tools', () => client.listTools(undefined, requestOpts), toolNames);
    await step('call_read', () => client.callTool({ name: 'projects_list', arguments: {} }, undefined, requestOpts), toolResult);
    // An access token the server refuses: the SDK refreshes with the refresh token, no new login.
    await step('refresh', async () => {
      const old = provider.saved.refresh_token;
      provider.saved = { ...provider.saved, access_token: 'not-a-valid-token' };
      const r = await client.callTool({ name: 'projects_list', arguments: {} }, undefined, requestOpts);
      return { ...toolResult(r), rotated: provider.saved.refresh_token !== old, authorizations: provider.authorizations.length };
    });
    await client.close();

    // Step-up. Holding a refresh token, SDK v1 answers a 403 insufficient_scope by refreshing,
    // which never widens a grant, and then gives up ("403 after trying upscoping"); without one
    // it asks again, as v2 always does. So the step-up client registers without refresh_token.
    const up = new TestProvider(['authorization_code']);
    const upFirst = new StreamableHTTPClientTransport(new URL(env.E2E_URL + '/mcp'), { authProvider: up });
    await step('stepup_connect_unauthorized', async () => {
      try {
        await new Client(clientInfo, { capabilities: {} }).connect(upFirst, requestOpts);
        return { connected: true };
      } catch (err) {
        if (!(err instanceof UnauthorizedError)) throw err;
        await upFirst.finishAuth(up.code());
        return { connected: false, authorizations: up.authorizations.length, has_refresh: Boolean(up.saved?.refresh_token) };
      }
    });
    const upClient = new Client(clientInfo, { capabilities: {} });
    const t2 = new StreamableHTTPClientTransport(new URL(env.E2E_URL + '/mcp'), { authProvider: up });
    if (!(await connect('stepup_connect', upClient, t2))) return;
    // A write beyond the granted scopes: 403 insufficient_scope, the SDK asks again (a second
    // authorization), the app finishes it and calls again.
    await step('call_write', async () => {
      const write = () => upClient.callTool({ name: 'projects_create', arguments: { name: 'from TypeScript' } }, undefined, requestOpts);
      try {
        return await write();
      } catch (err) {
        if (!(err instanceof UnauthorizedError)) throw err;
        await t2.finishAuth(up.code());
        return await write();
      }
    }, r => ({ ...toolResult(r), authorizations: up.authorizations.length, scope: up.saved?.scope ?? null }));
    await upClient.close();
  },

  // A bearer token: list and call; a call outside the token's scopes is refused; the same
  // connection goes on working.
  async bearer() {
    const state = { bearer: env.E2E_TOKEN };
    const client = new Client(clientInfo, { capabilities: {} });
    if (!(await connect('connect', client, httpTransport(env.E2E_TRANSPORT, state)))) return;
    await step('list_tools', () => client.listTools(undefined, requestOpts), toolNames);
    await callStep('whoami', client, state, 'auth_whoami');
    await callStep('denied', client, state, env.E2E_DENIED_TOOL, JSON.parse(env.E2E_DENIED_ARGS || '{}'));
    await callStep('whoami_after_denied', client, state, 'auth_whoami');
    await step('list_tools_after_denied', () => client.listTools(undefined, requestOpts), toolNames);
    await client.close();
  },

  // Tokens that are not valid: connecting with one is refused, and so is listing or calling
  // with one on a connection opened without a token.
  async 'bad-tokens'() {
    for (const { label, token } of JSON.parse(env.E2E_TOKENS)) {
      const bad = new Client(clientInfo, { capabilities: {} });
      if (await connect(`${label}:connect`, bad, httpTransport('http', { bearer: token }))) await bad.close();

      const state = { bearer: '' };
      const client = new Client(clientInfo, { capabilities: {} });
      if (!(await connect(`${label}:connect_anonymous`, client, httpTransport('http', state)))) continue;
      state.bearer = token;
      await step(`${label}:list_tools`, () => client.listTools(undefined, requestOpts), toolNames);
      await callStep(`${label}:whoami`, client, state, 'auth_whoami');
      await client.close();
    }
  },

  // A script logs in, works until its access token expires, and refreshes on the same
  // connection.
  async expiry() {
    const state = { bearer: '' };
    const client = new Client(clientInfo, { capabilities: {} });
    if (!(await connect('connect', client, httpTransport('http', state)))) return;
    const login = await callStep('login', client, state, 'auth_login', { email: env.E2E_EMAIL, password: env.E2E_PASSWORD });
    const tokens = login?.structuredContent;
    if (!tokens?.access_token) return;
    state.bearer = tokens.access_token;
    await step('list_tools', () => client.listTools(undefined, requestOpts), toolNames);
    // Work until the token expires: the first refused call is what the user sees.
    const deadline = Date.now() + timeoutMs;
    let calls = 0;
    for (;;) {
      calls++;
      try {
        await client.callTool({ name: 'auth_whoami', arguments: {} }, undefined, requestOpts);
      } catch (err) {
        emit('whoami_expired', { ok: false, calls, error: describe(err) });
        break;
      }
      if (Date.now() > deadline) {
        emit('whoami_expired', { ok: true, calls, note: 'the token never expired' });
        return;
      }
      await new Promise(r => setTimeout(r, 100));
    }
    await step('list_tools_expired', () => client.listTools(undefined, requestOpts), toolNames);
    const fresh = new Client(clientInfo, { capabilities: {} });
    if (await connect('connect_expired', fresh, httpTransport('http', { bearer: state.bearer }))) await fresh.close();
    const refreshed = await callStep('refresh', client, state, 'auth_refresh', { refresh_token: tokens.refresh_token });
    const next = refreshed?.structuredContent?.access_token;
    if (!next) return;
    state.bearer = next;
    await callStep('whoami_refreshed', client, state, 'auth_whoami');
    await step('list_tools_refreshed', () => client.listTools(undefined, requestOpts), toolNames);
    await client.close();
  },

  // stdio: after auth_login the server says the tool list changed and the SDK lists it again.
  async 'stdio-login'() {
    let changed;
    const listChanged = new Promise(resolve => (changed = resolve));
    const client = new Client(clientInfo, {
      capabilities: {},
      listChanged: { tools: { autoRefresh: true, debounceMs: 0, onChanged: (err, tools) => changed({ err, tools }) } }
    });
    const transport = new StdioClientTransport({
      command: env.E2E_BIN,
      args: ['serve', '--transport', 'stdio'],
      env: { ...process.env },
      stderr: 'inherit'
    });
    const state = {};
    if (!(await connect('connect', client, transport))) return;
    emit('capabilities', { ok: true, capabilities: client.getServerCapabilities() ?? null });
    await step('list_tools_before', () => client.listTools(undefined, requestOpts), toolNames);
    const login = await callStep('login', client, state, 'auth_login', { email: env.E2E_EMAIL, password: env.E2E_PASSWORD });
    if (login && !login.isError) {
      await step('tools_list_changed', async () => {
        let timer;
        const timeout = new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no notifications/tools/list_changed within ${timeoutMs} ms`)), timeoutMs);
        });
        try {
          const { err, tools } = await Promise.race([listChanged, timeout]);
          if (err) throw err;
          return { tools: tools.map(t => t.name).sort() };
        } finally {
          clearTimeout(timer);
        }
      });
      await step('list_tools_after', () => client.listTools(undefined, requestOpts), toolNames);
    }
    await client.close();
  },

  // DELETE /mcp ends the session; a request in it afterwards gets 404, and the script opens a
  // new one.
  async 'session-delete'() {
    const state = { bearer: env.E2E_TOKEN };
    const client = new Client(clientInfo, { capabilities: {} });
    const transport = httpTransport('http', state);
    const opened = await connect('connect', client, transport);
    if (!opened) return;
    await step('list_tools', () => client.listTools(undefined, requestOpts), toolNames);
    await step('terminate', async () => {
      await transport.terminateSession();
      return { session_id_after: transport.sessionId ?? null };
    });
    await client.close();

    const stale = new Client(clientInfo, { capabilities: {} });
    const staleTransport = httpTransport('http', state, { sessionId: opened.session_id });
    if (await connect('reconnect_deleted', stale, staleTransport)) {
      await step('list_tools_deleted', () => stale.listTools(undefined, requestOpts), toolNames);
      await stale.close();
    }

    const again = new Client(clientInfo, { capabilities: {} });
    const reopened = await connect('connect_new', again, httpTransport('http', state));
    if (!reopened) return;
    emit('new_session', { ok: true, differs: reopened.session_id !== opened.session_id && reopened.session_id !== null });
    await step('list_tools_new', () => again.listTools(undefined, requestOpts), toolNames);
    await again.close();
  }
};

const name = process.argv[2];
if (!cases[name]) {
  console.error(`usage: node ts-sdk-e2e.mjs ${Object.keys(cases).join('|')}`);
  process.exit(2);
}
await cases[name]();
