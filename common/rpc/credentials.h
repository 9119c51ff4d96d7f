// TLS, mutual TLS and bearer tokens for every connection, when configured.
//
// Agents authenticate with a client certificate signed by the coordinator's client CA (mTLS);
// users authenticate with a bearer token ("authorization: Bearer <token>"). Token values are
// never logged: only a short SHA-256 fingerprint appears in messages.
#ifndef FARM_COMMON_RPC_CREDENTIALS_H_
#define FARM_COMMON_RPC_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm {

// Paths of PEM files. All empty: plaintext.
struct TlsFiles {
  std::string ca;    // client: CA that signed the server; server: CA that signs client certs
  std::string cert;  // own certificate
  std::string key;   // own private key
  bool enabled() const { return !ca.empty() || !cert.empty() || !key.empty(); }
};

// Server credentials: plaintext without cert/key; TLS with them; and with `ca` also the client's
// certificate is requested and verified when presented (agents must present one, users need not).
// Errors (INVALID_ARGUMENT, naming the file and its flag): a file cannot be read; cert given
// without key; a certificate or CA file holds no certificate (e.g. a private key); a key file holds
// no unencrypted private key; the key is not the certificate's own. All checked with OpenSSL here,
// before gRPC sees them.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsFiles& tls);

// Channel credentials for an agent or a client: plaintext without `ca`; TLS verifying the server
// against `ca` (and presenting cert/key when given); plus the bearer token when non-empty (a
// token needs TLS: INVALID_ARGUMENT otherwise, so that it never crosses the network in clear).
// The files are checked as MakeServerCredentials checks them, with the same errors.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& tls, const std::string& token);

// Who makes a call: the user a token belongs to, and whether that user may act on everyone's
// jobs and agents. Shared by the gRPC services and the dashboard's logins.
struct CallerIdentity {
  std::string user;
  bool admin = false;
};

// Tokens of a tokens file, each with the identity it stands for.
using TokenTable = std::map<std::string, CallerIdentity>;

// Reads a tokens file: `TOKEN USER [admin]` per line; blank lines and lines starting with '#'
// are ignored. A line holding only a token (the older format) stands for user "token-N", N its
// 1-based position among the tokens of the file, and is an admin (as every token was before
// users existed). Errors (INVALID_ARGUMENT, naming the line): the file cannot be read, a token is
// shorter than 16 characters or appears twice, a third word is not "admin", or there is no token.
absl::StatusOr<TokenTable> ReadTokens(const std::string& path);

// Maps the value of an "authorization" header ("Bearer <token>") to its identity.
// UNAUTHENTICATED, saying how to get a token, when the header is missing or malformed or the
// token is not in `tokens`. Thread-safe (reads only).
absl::StatusOr<CallerIdentity> IdentifyBearer(const TokenTable& tokens,
                                              absl::string_view authorization);

// Reads a file holding one token (surrounding white space removed).
absl::StatusOr<std::string> ReadToken(const std::string& path);

// What ssh says of a private key that others may read: a warning when users other than the owner
// of the file at `path` (a token or tokens file) may read or write it, naming its mode and the
// chmod that fixes it; empty when they may not, or when the file cannot be examined.
std::string PermissionWarning(const std::string& path);

// A short fingerprint of a secret, safe to log.
std::string Fingerprint(const std::string& secret);

}  // namespace farm

#endif  // FARM_COMMON_RPC_CREDENTIALS_H_
