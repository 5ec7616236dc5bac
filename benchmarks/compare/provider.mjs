// panva's oidc-provider with a configuration equivalent to the benchmark's stepup-idp instance:
// one confidential client (client_secret_basic, code + refresh_token), PKCE S256 required,
// RS256 ID tokens, refresh tokens issued on every code exchange and rotated on every use,
// first-party (no consent page), and a form login of our own (devInteractions disabled) with a
// CSRF token bound to the interaction.
//
// Run by benchmarks/compare/oidc_provider.py, which copies this file into benchmarks/.node/ so
// that `import "oidc-provider"` resolves there. Configuration: a JSON file named by OP_CONFIG:
//   {port, issuer, client_id, client_secret, redirect_uri, password, users: [names]}
import { createHmac, createHash, generateKeyPairSync, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.env.OP_CONFIG, "utf8"));
const users = new Set(config.users);
const passwordDigest = createHash("sha256").update(config.password).digest();
const csrfKey = randomBytes(32);

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: "bench-rs256", alg: "RS256", use: "sig" };

const day = 24 * 60 * 60;
const provider = new Provider(config.issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: [config.redirect_uri],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
    id_token_signed_response_alg: "RS256",
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString("base64url")] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username"],
    email: ["email", "email_verified"],
  },
  async findAccount(ctx, sub) {
    if (!users.has(sub)) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: sub, preferred_username: sub, email: `${sub}@bench.test`, email_verified: true };
      },
    };
  },
  // First-party client: consent is implied (the documented "skip consent" recipe).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid profile email");
    await grant.save();
    return grant;
  },
  // Like stepup-idp: a refresh token with every code exchange for a client allowed the grant
  // (no offline_access scope needed), rotated on every use.
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed("refresh_token");
  },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 900, AuthorizationCode: 60, IdToken: 3600, RefreshToken: 30 * day,
    Interaction: 3600, Session: 30 * day, Grant: 30 * day,
  },
});
provider.on("server_error", (ctx, err) => console.error("server_error", err));

const csrfFor = (uid) => createHmac("sha256", csrfKey).update(uid).digest("base64url");
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, error) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Sign in</title></head><body>
<main data-page="login"><h1>Sign in</h1>${error ? `<p role="alert">${escape(error)}</p>` : ""}
<form method="post" action="/interaction/${escape(uid)}/login">
  <input type="hidden" name="csrf_token" value="${csrfFor(uid)}">
  <label for="username">Username</label><input id="username" name="username" autocomplete="username">
  <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password">
  <button type="submit">Sign in</button>
</form></main></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error("body too large");
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

function send(res, status, body) {
  res.statusCode = status;
  res.setHeader("Content-Type", "text/html; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  res.end(body);
}

async function interaction(req, res) {
  const url = new URL(req.url, config.issuer);
  const match = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return send(res, 404, "not found");
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== match[1]) return send(res, 400, "interaction mismatch");
  if (req.method === "GET" && !match[2]) return send(res, 200, loginPage(details.uid));
  if (req.method !== "POST" || !match[2]) return send(res, 405, "method not allowed");
  const form = await readForm(req);
  const csrf = Buffer.from(form.get("csrf_token") || "");
  const expected = Buffer.from(csrfFor(details.uid));
  if (csrf.length !== expected.length || !timingSafeEqual(csrf, expected)) return send(res, 400, "bad CSRF token");
  const username = form.get("username") || "";
  const given = createHash("sha256").update(form.get("password") || "").digest();
  if (!users.has(username) || !timingSafeEqual(given, passwordDigest)) {
    return send(res, 401, loginPage(details.uid, "Wrong username or password."));
  }
  return provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
createServer((req, res) => {
  if (req.url.startsWith("/interaction/")) {
    interaction(req, res).catch((err) => {
      console.error("interaction error", err);
      if (!res.headersSent) send(res, 500, "error");
    });
    return;
  }
  callback(req, res);
}).listen(config.port, "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${config.issuer}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
