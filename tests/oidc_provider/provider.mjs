// Test harness only: a real OpenID provider (npm `oidc-provider`) on 127.0.0.1 for the OCIS
// relying-party tests. Never deploy this: it has unauthenticated admin endpoints under /__test/
// that swap keys, change claims and make the next ID token bad on purpose.
//
// Configuration: a JSON file named by `--config PATH`, or the JSON text in the environment
// variable OIDC_TEST_PROVIDER_CONFIG. Keys (all optional except jwks):
//   port             0 = pick a free port. The first stdout line is `LISTENING http://127.0.0.1:PORT`.
//   flavour          "generic" | "google" | "microsoft" | "linkedin"
//   issuer_path      path of the issuer below the origin (default "", LinkedIn "/oauth")
//   issuer           full issuer string, overrides issuer_path (not for microsoft)
//   tenants          microsoft: tenant ids; each gets the issuer ORIGIN/{tid}/v2.0, and
//                    /common/v2.0, /organizations/v2.0 and /consumers/v2.0 are served too
//   pkce_required    default true (LinkedIn-like may set false); only S256 is supported
//   clients          [{client_id, client_secret, redirect_uris, token_endpoint_auth_method, ...}]
//   accounts         [{id, claims: {...}}]  (id is the `sub`; a claim set to null is left out)
//   extra_claims     claim names to allow besides the ones the accounts have at start
//   jwks             {keys: [private RSA JWK with kid]} - the first key signs
//   attacker         {jwk: private RSA JWK with kid, cert_pem: self-signed cert of that key}
//   id_token_ttl     seconds (default 3600)
//   max_lifetime_s   the process exits this long after listening, whatever happens (default 3600)
//   watch_stdin      exit when stdin closes (the Python harness keeps a pipe open)
//   strict_client_auth  a client must authenticate with its registered method (default true)
//   iss_in_authorization_response  RFC 9207 `iss` on the redirect back (default: generic only)

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

// oidc-provider prints notices with console.info (stdout); stdout is ours: the LISTENING line.
console.info = (...args) => console.error(...args);

const CONSUMERS_TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad';
const STANDARD_SCOPE_CLAIMS = {
  email: ['email', 'email_verified'],
  profile: [
    'name', 'given_name', 'family_name', 'middle_name', 'nickname', 'preferred_username',
    'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at',
  ],
  phone: ['phone_number', 'phone_number_verified'],
  address: ['address'],
};
const SCOPED = new Set(Object.values(STANDARD_SCOPE_CLAIMS).flat());
const FLAVOUR_OPENID_CLAIMS = {
  microsoft: ['tid', 'xms_edov', 'oid', 'ver'],
};
const SABOTAGE_MODES = new Set([
  'wrong_nonce', 'missing_nonce', 'aud_other', 'aud_list_without_us', 'azp_other', 'wrong_iss',
  'iss_without_scheme', 'ms_iss_tid_mismatch', 'ms_tenantid_literal', 'ms_v1_issuer', 'alg_none',
  'hs256_public_pem', 'hs256_public_der', 'forged_signature', 'embedded_jwk', 'jku_header',
  'x5u_header', 'crit_unknown', 'expired', 'oversized', 'unknown_kid', 'override_claims',
]);

function loadConfig() {
  const at = process.argv.indexOf('--config');
  if (at !== -1 && process.argv[at + 1]) {
    return JSON.parse(fs.readFileSync(process.argv[at + 1], 'utf8'));
  }
  if (process.env.OIDC_TEST_PROVIDER_CONFIG) {
    return JSON.parse(process.env.OIDC_TEST_PROVIDER_CONFIG);
  }
  throw new Error('no configuration: pass --config PATH or set OIDC_TEST_PROVIDER_CONFIG');
}

const config = loadConfig();
const flavour = config.flavour ?? 'generic';
if (!['generic', 'google', 'microsoft', 'linkedin'].includes(flavour)) {
  throw new Error(`unknown flavour ${flavour}`);
}
if (!config.jwks?.keys?.length) {
  throw new Error('config.jwks.keys must hold at least one private RSA JWK');
}
const tenants = flavour === 'microsoft'
  ? (config.tenants?.length ? [...config.tenants] : [crypto.randomUUID()])
  : [];
const pkceRequired = config.pkce_required ?? true;
const strictClientAuth = config.strict_client_auth ?? true;
const issInAuthorizationResponse = config.iss_in_authorization_response ?? flavour === 'generic';
const idTokenTtl = config.id_token_ttl ?? 3600;
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];
const cookiePrefix = `_oidctest_${crypto.randomBytes(4).toString('hex')}`;
const clone = (value) => structuredClone(value);
const htmlEscape = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const state = {
  origin: '',
  accounts: new Map(),
  keys: [],
  sabotage: null,
  applied: [],
  stats: new Map(),
  mounts: [],
  declaredClaims: new Set(config.extra_claims ?? []),
};
const initial = {
  accounts: (config.accounts ?? []).map((account) => [String(account.id), clone(account.claims ?? {})]),
  keys: clone(config.jwks.keys),
};

function resetState() {
  state.accounts = new Map(clone(initial.accounts));
  state.keys = clone(initial.keys);
  state.sabotage = null;
  state.applied = [];
  state.stats = new Map();
}

// ---------------------------------------------------------------------------- claims

// The claims an account presents, with the flavour's additions; null-valued claims are left out.
function effectiveClaims(id) {
  const claims = { ...state.accounts.get(id) };
  const has = (name) => Object.hasOwn(claims, name);
  if (flavour === 'google' || flavour === 'linkedin') {
    if (claims.email && !has('email_verified')) claims.email_verified = true;
  }
  if (flavour === 'microsoft') {
    if (!has('tid')) claims.tid = tenants[0];
    if (claims.email && !has('xms_edov')) claims.xms_edov = true;
    if (!has('ver')) claims.ver = '2.0';
    if (claims.email && !has('preferred_username')) claims.preferred_username = claims.email;
  }
  for (const [name, value] of Object.entries(claims)) {
    if (value === null || value === undefined) delete claims[name];
  }
  delete claims.sub;
  return { ...claims, sub: id };
}

function claimsConfiguration() {
  const openid = new Set(['sub', ...(FLAVOUR_OPENID_CLAIMS[flavour] ?? [])]);
  const names = new Set(state.declaredClaims);
  for (const claims of state.accounts.values()) Object.keys(claims).forEach((n) => names.add(n));
  for (const name of names) {
    if (!SCOPED.has(name) && name !== 'sub') openid.add(name);
  }
  return { openid: [...openid], ...clone(STANDARD_SCOPE_CLAIMS) };
}

function knownClaimNames() {
  return new Set(Object.values(claimsConfiguration()).flat());
}

// ---------------------------------------------------------------------------- mounts

function tenantOf(id) {
  return effectiveClaims(id).tid;
}

function planMounts() {
  if (flavour !== 'microsoft') {
    const prefix = (config.issuer_path ?? (flavour === 'linkedin' ? '/oauth' : '')).replace(/\/$/, '');
    return [{
      kind: 'issuer', prefix, issuer: config.issuer ?? `${state.origin}${prefix}`, accepts: () => true,
    }];
  }
  const mounts = tenants.map((tid) => ({
    kind: 'tenant',
    tenant: tid,
    prefix: `/${tid}/v2.0`,
    issuer: `${state.origin}/${tid}/v2.0`,
    accepts: (id) => tenantOf(id) === tid,
  }));
  const template = `${state.origin}/{tenantid}/v2.0`;
  mounts.push(
    { kind: 'alias', tenant: 'common', prefix: '/common/v2.0', discoveryIssuer: template, accepts: () => true },
    {
      kind: 'alias', tenant: 'organizations', prefix: '/organizations/v2.0', discoveryIssuer: template,
      accepts: (id) => tenantOf(id) !== CONSUMERS_TENANT,
    },
    {
      kind: 'alias', tenant: 'consumers', prefix: '/consumers/v2.0',
      discoveryIssuer: `${state.origin}/${CONSUMERS_TENANT}/v2.0`,
      accepts: (id) => tenantOf(id) === CONSUMERS_TENANT,
    },
  );
  for (const mount of mounts) {
    // oidc-provider needs a real issuer per instance; the alias's published one is rewritten.
    mount.issuer ??= `${state.origin}${mount.prefix}`;
  }
  return mounts;
}

function clientMetadata(client) {
  const {
    client_id: clientId, client_secret: clientSecret, redirect_uris: redirectUris,
    token_endpoint_auth_method: authMethod, grant_types: grantTypes, response_types: responseTypes,
    ...rest
  } = client;
  return {
    ...rest,
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    token_endpoint_auth_method: authMethod ?? 'client_secret_basic',
    grant_types: grantTypes ?? ['authorization_code', 'refresh_token'],
    response_types: responseTypes ?? ['code'],
    id_token_signed_response_alg: 'RS256',
  };
}

function buildProvider(mount, index) {
  const provider = new Provider(mount.issuer, {
    clients: (config.clients ?? []).map(clientMetadata),
    jwks: { keys: clone(state.keys) },
    async findAccount(ctx, id) {
      if (!state.accounts.has(id) || !mount.accepts(id)) return undefined;
      return { accountId: id, claims: async () => effectiveClaims(id) };
    },
    claims: claimsConfiguration(),
    scopes: ['openid', 'offline_access'],
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => pkceRequired },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    cookies: {
      names: {
        session: `${cookiePrefix}_${index}_session`,
        interaction: `${cookiePrefix}_${index}_interaction`,
        resume: `${cookiePrefix}_${index}_resume`,
      },
      keys: cookieKeys,
    },
    features: { devInteractions: { enabled: true } },
    async renderError(ctx, out, error) {
      console.error(`oidc test provider: error page ${JSON.stringify(out)}`, error?.stack ?? '');
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><title>error</title></head><body><pre>${htmlEscape(JSON.stringify(out))}</pre></body></html>`;
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 600,
      ClientCredentials: 600,
      Grant: 3600,
      IdToken: idTokenTtl,
      Interaction: 600,
      RefreshToken: 86400,
      Session: 3600,
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    const route = ctx.oidc?.route;
    if (route === 'discovery' && ctx.body && typeof ctx.body === 'object') {
      const body = { ...ctx.body };
      if (mount.discoveryIssuer) body.issuer = mount.discoveryIssuer;
      if (!issInAuthorizationResponse) delete body.authorization_response_iss_parameter_supported;
      ctx.body = body;
    }
    if (!issInAuthorizationResponse && ctx.status >= 300 && ctx.status < 400) {
      // Google, Microsoft and LinkedIn do not send RFC 9207's `iss` back to the redirect_uri.
      const location = ctx.response.get('location');
      const url = location ? new URL(location, state.origin) : undefined;
      if (url && url.origin !== state.origin && url.searchParams.has('iss')) {
        url.searchParams.delete('iss');
        ctx.redirect(url.href);
      }
    }
    if (route === 'token' && ctx.status === 200 && typeof ctx.body?.id_token === 'string') {
      let idToken = ctx.body.id_token;
      if (mount.kind === 'alias') idToken = await reissueForTenant(idToken);
      if (state.sabotage) {
        const sabotage = state.sabotage;
        state.sabotage = null;
        const original = idToken;
        idToken = await applySabotage(idToken, sabotage, ctx.oidc.client.clientId);
        state.applied.push({
          mode: sabotage.mode, mount: mount.prefix || '/', original_id_token: original, id_token: idToken,
        });
      }
      ctx.body = { ...ctx.body, id_token: idToken };
    }
  });
  return provider;
}

function rebuild() {
  state.mounts = planMounts().map((mount, index) => {
    const built = { ...mount };
    built.provider = buildProvider(built, index);
    built.handler = built.provider.callback();
    return built;
  });
}

// ---------------------------------------------------------------------------- JWTs

const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const unb64json = (text) => JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
const encoder = new TextEncoder();

function decodeJwt(token) {
  const [header, payload, signature] = token.split('.');
  return {
    header: unb64json(header), payload: unb64json(payload), parts: [header, payload, signature],
  };
}

function privateKeyObject(jwk) {
  return crypto.createPrivateKey({ key: jwk, format: 'jwk' });
}

function publicJwk(jwk) {
  const { d, p, q, dp, dq, qi, oth, ...pub } = jwk;
  return pub;
}

function signingKeyFor(kid) {
  return state.keys.find((key) => key.kid === kid) ?? state.keys[0];
}

async function sign(header, payload, key, options) {
  return new jose.CompactSign(encoder.encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(key, options);
}

async function resignGenuine(header, payload) {
  const jwk = signingKeyFor(header.kid);
  return sign({ ...header, kid: jwk.kid }, payload, privateKeyObject(jwk));
}

async function reissueForTenant(idToken) {
  const { header, payload } = decodeJwt(idToken);
  return resignGenuine(header, { ...payload, iss: `${state.origin}/${payload.tid}/v2.0` });
}

function applyOverrides(payload, overrides = {}) {
  const result = { ...payload };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === null) delete result[name];
    else result[name] = value;
  }
  return result;
}

function otherClientId(ourClientId, params) {
  if (params.aud) return params.aud;
  const other = (config.clients ?? []).find((client) => client.client_id !== ourClientId);
  return other ? other.client_id : 'another-client';
}

function attackerKey() {
  if (!config.attacker?.jwk) throw new Error('config.attacker.jwk is needed for this mode');
  return config.attacker.jwk;
}

async function applySabotage(idToken, sabotage, clientId) {
  const { mode, params = {} } = sabotage;
  const { header, payload, parts } = decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  const genuine = (changed) => resignGenuine(header, changed);
  switch (mode) {
    case 'wrong_nonce':
      return genuine({ ...payload, nonce: params.nonce ?? crypto.randomBytes(16).toString('base64url') });
    case 'missing_nonce': {
      const { nonce, ...rest } = payload;
      return genuine(rest);
    }
    case 'aud_other': {
      const { azp, ...rest } = payload;
      return genuine({ ...rest, aud: otherClientId(clientId, params) });
    }
    case 'aud_list_without_us':
      return genuine({ ...payload, aud: [otherClientId(clientId, params)], azp: clientId });
    case 'azp_other': {
      const other = otherClientId(clientId, params);
      return genuine({ ...payload, aud: [clientId, other], azp: other });
    }
    case 'wrong_iss':
      return genuine({ ...payload, iss: params.iss ?? `${state.origin}/other-issuer` });
    case 'iss_without_scheme':
      return genuine({ ...payload, iss: payload.iss.replace(/^https?:\/\//, '') });
    case 'ms_iss_tid_mismatch': {
      const other = params.tenant ?? tenants.find((tid) => tid !== payload.tid) ?? crypto.randomUUID();
      return genuine({ ...payload, iss: `${state.origin}/${other}/v2.0` });
    }
    case 'ms_tenantid_literal':
      return genuine({ ...payload, iss: `${state.origin}/{tenantid}/v2.0` });
    case 'ms_v1_issuer':
      return genuine({ ...payload, iss: `https://sts.windows.net/${payload.tid ?? tenants[0]}/` });
    case 'alg_none':
      return `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(payload)}.`;
    case 'hs256_public_pem':
    case 'hs256_public_der': {
      const jwk = signingKeyFor(header.kid);
      const publicKey = crypto.createPublicKey({ key: publicJwk(jwk), format: 'jwk' });
      const secret = mode === 'hs256_public_pem'
        ? Buffer.from(publicKey.export({ type: params.pem_type ?? 'spki', format: 'pem' }))
        : publicKey.export({ type: 'spki', format: 'der' });
      return sign({ alg: 'HS256', typ: 'JWT', kid: jwk.kid }, payload, new Uint8Array(secret));
    }
    case 'forged_signature': {
      const changes = params.claims
        ?? (payload.email ? { email: 'forged@attacker.example' } : { sub: `${payload.sub}-forged` });
      return `${parts[0]}.${b64json(applyOverrides(payload, changes))}.${parts[2]}`;
    }
    case 'embedded_jwk': {
      const jwk = attackerKey();
      return sign(
        { ...header, kid: params.kid ?? header.kid, jwk: publicJwk(jwk) },
        payload,
        privateKeyObject(jwk),
      );
    }
    case 'jku_header': {
      const jwk = attackerKey();
      return sign(
        { ...header, kid: jwk.kid, jku: params.jku ?? `${state.origin}/__test/attacker/jwks.json` },
        payload,
        privateKeyObject(jwk),
      );
    }
    case 'x5u_header': {
      const jwk = attackerKey();
      return sign(
        { ...header, kid: jwk.kid, x5u: params.x5u ?? `${state.origin}/__test/attacker/cert.pem` },
        payload,
        privateKeyObject(jwk),
      );
    }
    case 'crit_unknown': {
      const name = params.crit ?? 'urn:ocis:test:unknown';
      const jwk = signingKeyFor(header.kid);
      return sign(
        { ...header, crit: [name], [name]: true },
        payload,
        privateKeyObject(jwk),
        { crit: { [name]: true } },
      );
    }
    case 'expired': {
      const ago = params.seconds_ago ?? 3600;
      return genuine({
        ...payload, exp: now - ago, iat: now - ago - idTokenTtl, auth_time: now - ago - idTokenTtl,
      });
    }
    case 'oversized':
      return genuine({ ...payload, x_padding: 'A'.repeat(params.size ?? 65536) });
    case 'unknown_kid': {
      const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
      const kid = params.kid ?? `unpublished-${crypto.randomBytes(8).toString('hex')}`;
      return sign({ ...header, kid }, payload, privateKey);
    }
    case 'override_claims':
      return genuine(applyOverrides(payload, params.claims));
    default:
      throw new Error(`unknown sabotage mode ${mode}`);
  }
}

// ---------------------------------------------------------------------------- admin API

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 1_000_000) throw new Error('admin body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function send(res, status, body, type = 'application/json') {
  const payload = type === 'application/json' ? JSON.stringify(body) : body;
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(payload);
}

function info() {
  return {
    origin: state.origin,
    flavour,
    pkce_required: pkceRequired,
    tenants,
    consumers_tenant: flavour === 'microsoft' ? CONSUMERS_TENANT : null,
    signing_kid: state.keys[0].kid,
    published_kids: state.keys.map((key) => key.kid),
    mounts: state.mounts.map((mount) => ({
      kind: mount.kind,
      tenant: mount.tenant ?? null,
      prefix: mount.prefix,
      issuer: mount.discoveryIssuer ?? mount.issuer,
      discovery_url: `${state.origin}${mount.prefix}/.well-known/openid-configuration`,
    })),
  };
}

async function admin(req, res, pathname) {
  const method = req.method ?? 'GET';
  const route = `${method} ${pathname}`;
  switch (route) {
    case 'GET /__test/info':
      return send(res, 200, info());
    case 'GET /__test/stats':
      return send(res, 200, { requests: Object.fromEntries(state.stats) });
    case 'POST /__test/stats/reset':
      state.stats = new Map();
      return send(res, 200, { ok: true });
    case 'GET /__test/sabotage':
      return send(res, 200, { pending: state.sabotage?.mode ?? null, applied: state.applied });
    case 'POST /__test/sabotage': {
      const body = await readJson(req);
      if (body.mode === null) {
        state.sabotage = null;
        return send(res, 200, { ok: true, pending: null });
      }
      if (!SABOTAGE_MODES.has(body.mode)) {
        return send(res, 400, { error: `unknown sabotage mode ${body.mode}`, modes: [...SABOTAGE_MODES] });
      }
      state.sabotage = { mode: body.mode, params: body.params ?? {} };
      return send(res, 200, { ok: true, pending: body.mode });
    }
    case 'POST /__test/claims': {
      const body = await readJson(req);
      const id = String(body.account_id ?? '');
      if (!id || typeof body.claims !== 'object' || body.claims === null) {
        return send(res, 400, { error: 'account_id and claims are required' });
      }
      const before = knownClaimNames();
      const current = body.replace ? {} : (state.accounts.get(id) ?? {});
      state.accounts.set(id, { ...current, ...body.claims });
      const added = Object.keys(body.claims).filter((name) => name !== 'sub' && !before.has(name));
      if (added.length) {
        added.forEach((name) => state.declaredClaims.add(name));
        rebuild();
      }
      return send(res, 200, { account_id: id, claims: effectiveClaims(id) });
    }
    case 'POST /__test/rotate': {
      const body = await readJson(req);
      let jwk = body.jwk;
      if (!jwk) {
        const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
        jwk = { ...(await jose.exportJWK(privateKey)), kid: `k-${crypto.randomBytes(8).toString('hex')}` };
      }
      jwk = { ...jwk, alg: 'RS256', use: 'sig' };
      if (state.keys.some((key) => key.kid === jwk.kid)) {
        return send(res, 400, { error: `kid ${jwk.kid} is already published` });
      }
      state.keys = body.keep_old === false ? [jwk] : [jwk, ...state.keys];
      rebuild();
      return send(res, 200, { signing_kid: jwk.kid, published_kids: state.keys.map((key) => key.kid) });
    }
    case 'POST /__test/reset':
      resetState();
      rebuild();
      return send(res, 200, { ok: true });
    case 'GET /__test/attacker/jwks.json':
      if (!config.attacker?.jwk) return send(res, 404, { error: 'no attacker key configured' });
      return send(res, 200, { keys: [publicJwk(config.attacker.jwk)] });
    case 'GET /__test/attacker/cert.pem':
      if (!config.attacker?.cert_pem) return send(res, 404, { error: 'no attacker cert configured' });
      return send(res, 200, config.attacker.cert_pem, 'application/x-pem-file');
    case 'POST /__test/shutdown':
      send(res, 200, { ok: true });
      setImmediate(() => shutdown(0));
      return undefined;
    default:
      return send(res, 404, { error: `no admin route ${route}` });
  }
}

// ---------------------------------------------------------------------------- server

function mountFor(pathname) {
  let best;
  for (const mount of state.mounts) {
    const matches = mount.prefix === '' || pathname === mount.prefix || pathname.startsWith(`${mount.prefix}/`);
    if (matches && (!best || mount.prefix.length > best.prefix.length)) best = mount;
  }
  return best;
}

const server = http.createServer((req, res) => {
  const pathname = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
  const peer = req.socket.remoteAddress ?? '';
  if (!['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(peer)) {
    return send(res, 403, { error: 'loopback only' });
  }
  if (pathname.startsWith('/__test/')) {
    return admin(req, res, pathname).catch((error) => send(res, 500, { error: String(error?.stack ?? error) }));
  }
  state.stats.set(pathname, (state.stats.get(pathname) ?? 0) + 1);
  const mount = mountFor(pathname);
  if (!mount) return send(res, 404, { error: 'not found' });
  req.originalUrl = req.url;
  req.url = req.url.slice(mount.prefix.length) || '/';
  const route = pathname.slice(mount.prefix.length);
  const fail = (error) => send(res, 500, { error: String(error?.stack ?? error) });
  if (req.method === 'POST' && /^\/interaction\/[^/]+$/.test(route)) {
    return checkLogin(mount, req, res).catch(fail);
  }
  if (req.method === 'POST' && route === '/token' && strictClientAuth) {
    return checkClientAuthMethod(mount, req, res).catch(fail);
  }
  return mount.handler(req, res);
});

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
  req.body = body; // oidc-provider uses an already-read body as it is
  return body;
}

// oidc-provider takes client_secret_basic and client_secret_post as interchangeable; real
// providers do not (LinkedIn wants the secret in the body), so a client must use its own.
async function checkClientAuthMethod(mount, req, res) {
  const body = await readForm(req);
  const header = req.headers.authorization ?? '';
  let clientId;
  let used;
  if (/^basic /i.test(header)) {
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    clientId = decodeURIComponent(decoded.slice(0, Math.max(decoded.indexOf(':'), 0)).replace(/\+/g, '%20'));
    used = 'client_secret_basic';
  } else if (body.client_secret !== undefined) {
    clientId = body.client_id;
    used = 'client_secret_post';
  }
  const client = (config.clients ?? []).find((c) => c.client_id === clientId);
  const registered = client ? (client.token_endpoint_auth_method ?? 'client_secret_basic') : undefined;
  if (used && registered && used !== registered) {
    return send(res, 401, {
      error: 'invalid_client',
      error_description: `client authentication failed: this client is registered for ${registered}, not ${used}`,
    });
  }
  return mount.handler(req, res);
}

// The dev login form accepts any login; an account this issuer does not have (or, for a
// Microsoft tenant, one of another tenant) ends the interaction with access_denied instead.
async function checkLogin(mount, req, res) {
  const body = await readForm(req);
  if (body.prompt === 'login' && !(state.accounts.has(body.login) && mount.accepts(body.login))) {
    return mount.provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'this issuer has no such account',
    }, { mergeWithLastSubmission: false });
  }
  return mount.handler(req, res);
}

let stopping = false;
function shutdown(code) {
  if (stopping) return;
  stopping = true;
  server.close();
  server.closeAllConnections?.();
  setTimeout(() => process.exit(code), 50).unref();
  process.exitCode = code;
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
if (config.watch_stdin) {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}

server.listen(config.port ?? 0, '127.0.0.1', async () => {
  state.origin = `http://127.0.0.1:${server.address().port}`;
  resetState();
  rebuild();
  try {
    // oidc-provider checks client metadata lazily; a bad client should fail the start instead.
    for (const client of config.clients ?? []) {
      await state.mounts[0].provider.Client.find(client.client_id);
    }
  } catch (error) {
    console.error(`oidc test provider: invalid client ${error?.error_description ?? error?.message}`);
    process.exit(1);
  }
  process.stdout.write(`LISTENING ${state.origin}\n`);
  setTimeout(() => {
    console.error('oidc test provider: max_lifetime_s reached, exiting');
    shutdown(3);
  }, (config.max_lifetime_s ?? 3600) * 1000).unref();
});
