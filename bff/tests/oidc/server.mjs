// A third-party OpenID Connect provider (oauth2-mock-server) for the BFF's external-issuer test.
//
// Listens on 127.0.0.1 on a free port with a freshly generated RS256 key, prints one JSON line
// {issuer, jwks_uri, token_endpoint} on stdout once it accepts connections, and exits when stdin
// closes (so it never outlives the test that spawned it).
//
// The token endpoint's client_credentials grant copies the request parameters `sub`, `email`,
// `email_verified` ("true" or "false") and `aud` into the access token, so a test chooses the
// identity it signs in as.

import oauth2MockServer from 'oauth2-mock-server';

const { OAuth2Server } = oauth2MockServer;

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');

server.service.on('beforeTokenSigning', (token, req) => {
  const params = req.body ?? {};
  for (const claim of ['sub', 'email', 'aud']) {
    if (typeof params[claim] === 'string') {
      token.payload[claim] = params[claim];
    }
  }
  if (typeof params.email_verified === 'string') {
    token.payload.email_verified = params.email_verified === 'true';
  }
});

await server.start(0, '127.0.0.1');
// The library names a loopback listener `localhost`; the issuer is the address actually bound,
// which is what the verifier is configured with and what `iss` must equal.
const { port } = server.address();
server.issuer.url = `http://127.0.0.1:${port}`;

const discovery = await fetch(`${server.issuer.url}/.well-known/openid-configuration`);
if (!discovery.ok) {
  throw new Error(`discovery document answered ${discovery.status}`);
}
const { issuer, jwks_uri, token_endpoint } = await discovery.json();
process.stdout.write(`${JSON.stringify({ issuer, jwks_uri, token_endpoint })}\n`);

process.stdin.resume();
process.stdin.on('end', () => {
  server.stop().finally(() => process.exit(0));
});
