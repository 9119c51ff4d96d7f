// TLS, mutual TLS and bearer tokens for every connection, when configured.
//
// Agents authenticate with a client certificate signed by the coordinator's client CA (mTLS);
// users authenticate with a bearer token ("authorization: Bearer <token>"). Token values are
// never logged: only a short SHA-256 fingerprint appears in messages.
#ifndef FARM_COMMON_RPC_CREDENTIALS_H_
#define FARM_COMMON_RPC_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"

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

// Reads a tokens file: one token per line; blank lines and lines starting with '#' are ignored.
absl::StatusOr<std::set<std::string>> ReadTokens(const std::string& path);

// Reads a file holding one token (surrounding white space removed).
absl::StatusOr<std::string> ReadToken(const std::string& path);

// A short fingerprint of a secret, safe to log.
std::string Fingerprint(const std::string& secret);

}  // namespace farm

#endif  // FARM_COMMON_RPC_CREDENTIALS_H_
