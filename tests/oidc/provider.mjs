// A real OpenID Provider (panva's `oidc-provider`) for tower-jwt-auth's
// end-to-end tests: the client-credentials grant with a resource indicator
// gives an RFC 9068 `at+jwt` access token, signed with keys generated here at
// start and published at the provider's `jwks_uri` (see its discovery
// document at `/.well-known/openid-configuration`).
//
//   node provider.mjs [port]        (port 0 or none: a free one)
//
// Prints `READY <issuer>` on stdout once it listens on 127.0.0.1; exits when
// stdin closes, on SIGTERM or on SIGINT (from a shell, keep stdin open:
// `sleep infinity | node provider.mjs`). The issuer is
// `http://127.0.0.1:<port>` (plain http: loopback only).
//
// Environment (all optional):
//   OIDC_PORT            port when none is given as argument (default 0)
//   OIDC_CLIENT_ID       client of the client-credentials grant (rs-test)
//   OIDC_CLIENT_SECRET   its secret, client_secret_basic or _post (rs-test-secret)
//   OIDC_AUDIENCE        resource servers (audiences) the provider knows,
//                        comma-separated (urn:tower-jwt-auth:test,urn:tower-jwt-auth:other)
//   OIDC_SCOPE           scopes of every resource server (read write)
//   OIDC_ALG             signing alg of access tokens: ES256 or RS256 (ES256)
//   OIDC_TOKEN_TTL       access token lifetime in seconds (300)
//   OIDC_JWKS_MAX_AGE    if set, the JWKS response carries
//                        `Cache-Control: public, max-age=<value>`
//
// Test-only endpoints on the same port (not part of OpenID Connect):
//   POST /__rotate            new ES256 and RS256 keys, published first and
//                             used for signing from now on; the old keys stay
//                             published. `?retire=1`: the old keys are removed
//                             from the JWKS (tokens they signed stop verifying).
//                             Answers {"kids": [...], "signing_kid": "..."}.
//   GET  /__stats             {"jwks_fetches", "discovery_fetches", "tokens", "rotations"}
//   POST /__sign              {"header": {...}, "payload": {...}, "secret"?: "..."}:
//                             a compact JWS of exactly that payload, signed by
//                             `jose` (an independent JWT library) with the
//                             provider's current signing key (its alg and kid
//                             set in the header), or HS256 with `secret`.
//                             Answers {"token": "..."}. For logout tokens and
//                             access tokens with claims the grant never gives.
//   POST /__jwks_status?code=500
//                             the JWKS endpoint answers this status (with a
//                             non-JSON body) until `?code=200` (an outage).

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import { CompactSign, importJWK } from 'jose';
import Provider, { errors } from 'oidc-provider';

const env = process.env;
const port = Number(process.argv[2] ?? env.OIDC_PORT ?? 0);
const clientId = env.OIDC_CLIENT_ID || 'rs-test';
const clientSecret = env.OIDC_CLIENT_SECRET || 'rs-test-secret';
const audiences = (env.OIDC_AUDIENCE || 'urn:tower-jwt-auth:test,urn:tower-jwt-auth:other')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const scope = env.OIDC_SCOPE || 'read write';
const alg = env.OIDC_ALG || 'ES256';
const ttl = Number(env.OIDC_TOKEN_TTL || 300);
const jwksMaxAge = env.OIDC_JWKS_MAX_AGE;

if (!['ES256', 'RS256'].includes(alg)) {
  console.error(`OIDC_ALG must be ES256 or RS256, not ${alg}`);
  process.exit(2);
}
if (!Number.isInteger(ttl) || ttl <= 0) {
  console.error(`OIDC_TOKEN_TTL must be a positive integer, not ${env.OIDC_TOKEN_TTL}`);
  process.exit(2);
}

// --- keys -------------------------------------------------------------------

let generation = 0;

/** One new ES256 and one new RS256 private JWK, with fresh kids. */
function newKeys() {
  generation += 1;
  const tag = `${generation}-${crypto.randomBytes(4).toString('hex')}`;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  return [
    { ...ec.export({ format: 'jwk' }), kid: `es256-${tag}`, alg: 'ES256', use: 'sig' },
    { ...rsa.export({ format: 'jwk' }), kid: `rs256-${tag}`, alg: 'RS256', use: 'sig' },
  ];
}

// Newest first: the provider signs with the first key of the alg.
let keys = newKeys();
const signingKid = () => keys.find((k) => k.alg === alg).kid;

// --- counters and switches --------------------------------------------------

const stats = {
  jwks_fetches: 0, discovery_fetches: 0, tokens: 0, rotations: 0,
};
let jwksStatus = 200;

// --- the provider -----------------------------------------------------------

/**
 * A provider for these keys. A rotation builds a new one: oidc-provider reads
 * its key set once. Access tokens are JWTs and the client is static, so
 * nothing is lost between instances.
 */
function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope,
    }],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    scopes: scope.split(' '),
    jwks: { keys: structuredClone(keys) },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    features: {
      clientCredentials: { enabled: true },
      // RFC 9449: a token request with a DPoP proof gets a bound token
      // (cnf.jkt); without one, a bearer token as before.
      dPoP: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // A client-credentials request must name its resource.
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, resourceIndicator) {
          if (!audiences.includes(resourceIndicator)) {
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return {
            audience: resourceIndicator,
            scope,
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg, kid: signingKid() } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: ttl,
      AccessToken: ttl,
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

// --- the HTTP server --------------------------------------------------------

let callback;

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** The `POST /__sign` answer: see the header comment. */
async function signWithJose(req, res) {
  let text = '';
  for await (const chunk of req) text += chunk;
  const { header = {}, payload, secret } = JSON.parse(text);
  let key;
  let protectedHeader;
  if (secret !== undefined) {
    key = new TextEncoder().encode(secret);
    protectedHeader = { ...header, alg: 'HS256' };
  } else {
    const jwk = keys.find((k) => k.alg === alg);
    key = await importJWK(jwk, jwk.alg);
    protectedHeader = { ...header, alg: jwk.alg, kid: jwk.kid };
  }
  const token = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(protectedHeader)
    .sign(key);
  json(res, 200, { token });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  switch (`${req.method} ${url.pathname}`) {
    case 'POST /__rotate': {
      const retire = url.searchParams.get('retire') === '1';
      const fresh = newKeys();
      keys = retire ? fresh : [...fresh, ...keys];
      callback = buildProvider(issuerUrl).callback();
      stats.rotations += 1;
      json(res, 200, { kids: keys.map((k) => k.kid), signing_kid: signingKid() });
      return;
    }
    case 'POST /__sign':
      signWithJose(req, res).catch((err) => json(res, 400, { error: String(err) }));
      return;
    case 'GET /__stats':
      json(res, 200, stats);
      return;
    case 'POST /__jwks_status': {
      const code = Number(url.searchParams.get('code'));
      if (!Number.isInteger(code) || code < 200 || code > 599) {
        json(res, 400, { error: 'code must be an HTTP status' });
        return;
      }
      jwksStatus = code;
      json(res, 200, { jwks_status: jwksStatus });
      return;
    }
    case 'GET /jwks':
      stats.jwks_fetches += 1;
      if (jwksStatus !== 200) {
        res.writeHead(jwksStatus, { 'content-type': 'text/plain' });
        res.end('jwks unavailable (test switch)');
        return;
      }
      if (jwksMaxAge !== undefined) {
        const { writeHead } = res;
        res.writeHead = function cacheControl(...args) {
          res.setHeader('cache-control', `public, max-age=${jwksMaxAge}`);
          return writeHead.apply(this, args);
        };
      }
      break;
    case 'GET /.well-known/oauth-authorization-server':
      // The RFC 8414 form of the same metadata.
      req.url = '/.well-known/openid-configuration';
    // falls through
    case 'GET /.well-known/openid-configuration':
      stats.discovery_fetches += 1;
      break;
    case 'POST /token':
      res.on('finish', () => {
        if (res.statusCode === 200) stats.tokens += 1;
      });
      break;
    default:
  }
  callback(req, res);
});

let issuerUrl;

server.listen(port, '127.0.0.1', () => {
  issuerUrl = `http://127.0.0.1:${server.address().port}`;
  callback = buildProvider(issuerUrl).callback();
  process.stdout.write(`READY ${issuerUrl}\n`);
});

function shutdown() {
  server.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.resume();
