// oauth2-mock-server (npm) on a free port of 127.0.0.1, for api/tests/oauth.rs and api/tests/dashboard.rs.
// Prints one JSON line per event on stdout: first {"event":"listening","url":...}, then one line
// per token or revocation request with the fields the test checks.
import { OAuth2Server } from "oauth2-mock-server";

const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");
server.service.on("beforeResponse", (_response, req) => {
  print({
    event: "token",
    grant_type: req.body.grant_type,
    refresh_token: req.body.refresh_token ?? null,
    code_verifier: req.body.code_verifier ?? null,
    authorization: req.headers.authorization ?? null,
  });
});
// The mock does not read a revocation request's body; the unread stream is still there.
server.service.on("beforeRevoke", (_response, req) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const form = new URLSearchParams(body);
    print({
      event: "revoke",
      token: form.get("token"),
      token_type_hint: form.get("token_type_hint"),
      authorization: req.headers.authorization ?? null,
    });
  });
});
await server.start(0, "127.0.0.1");
const url = `http://127.0.0.1:${server.address().port}`;
// The issuer defaults to http://localhost:PORT; the tests discover the metadata of the
// address they were given, and RFC 8414 wants the document's issuer to be exactly that.
server.issuer.url = url;
print({ event: "listening", url });
process.stdin.on("end", () => server.stop().then(() => process.exit(0)));
process.stdin.resume();
