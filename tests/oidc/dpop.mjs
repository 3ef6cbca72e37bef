// DPoP proofs minted by an independent JWT library (panva's `jose`, the
// one oidc-provider uses) for tower-jwt-auth's DPoP tests.
//
// One JSON request per line on stdin, one JSON answer per line on stdout:
//   {"op":"key","alg":"ES256"}           -> {"key":0,"jkt":"...","jwk":{...}}
//   {"op":"proof","key":0,"htm":"GET","htu":"http://h/me","token":"...",
//    "iat":123, "jti":"...", "typ":"dpop+jwt", "private_jwk":true,
//    "jwk_of":1, "omit":["ath"], "claims":{...}}  -> {"proof":"..."}
// "token" gives "ath" (base64url SHA-256, computed here with node's crypto);
// "jwk_of" puts another key's public jwk into the header (signed with "key");
// "private_jwk" puts the private jwk into the header.
import { createHash, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';

const keys = [];

async function handle(req) {
  if (req.op === 'key') {
    const alg = req.alg;
    const options = { extractable: true };
    if (alg.startsWith('RS') || alg.startsWith('PS')) options.modulusLength = req.bits ?? 2048;
    const { publicKey, privateKey } = await generateKeyPair(alg, options);
    const jwk = await exportJWK(publicKey);
    const privateJwk = await exportJWK(privateKey);
    const jkt = await calculateJwkThumbprint(jwk, 'sha256');
    keys.push({ alg, privateKey, jwk, privateJwk, jkt });
    return { key: keys.length - 1, jkt, jwk };
  }
  if (req.op === 'proof') {
    const key = keys[req.key];
    const header = {
      alg: key.alg,
      typ: req.typ === undefined ? 'dpop+jwt' : req.typ,
      jwk: req.private_jwk ? key.privateJwk : keys[req.jwk_of ?? req.key].jwk,
    };
    if (header.typ === null) delete header.typ;
    const claims = {
      jti: req.jti ?? randomUUID(),
      htm: req.htm,
      htu: req.htu,
      iat: req.iat ?? Math.floor(Date.now() / 1000),
      ...(req.claims ?? {}),
    };
    if (req.token !== undefined) {
      claims.ath = createHash('sha256').update(req.token, 'ascii').digest('base64url');
    }
    for (const name of req.omit ?? []) delete claims[name];
    const proof = await new SignJWT(claims).setProtectedHeader(header).sign(key.privateKey);
    return { proof };
  }
  throw new Error(`unknown op ${req.op}`);
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await handle(JSON.parse(line));
  } catch (e) {
    answer = { error: String(e && e.stack || e) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
