#include "common/rpc/credentials.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace farm {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream f(path);
  if (!f) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the ", what, " file '", path, "'"));
  }
  std::stringstream ss;
  ss << f.rdbuf();
  if (ss.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " file '", path, "' is not PEM (no -----BEGIN line)"));
  }
  return ss.str();
}

// FNV-1a, only to tell tokens apart in logs without revealing them.
uint64_t Fnv(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

std::string Fingerprint(const std::string& secret) {
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(Fnv(secret)));
  return std::string(buf, 8);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  if (tls.cert.empty() || tls.key.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  grpc::SslServerCredentialsOptions opts(
      tls.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                     : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  absl::StatusOr<std::string> cert = ReadPem(tls.cert, "certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(tls.key, "private key");
  if (!key.ok()) return key.status();
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  if (!tls.ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(tls.ca, "client CA");
    if (!ca.ok()) return ca.status();
    opts.pem_root_certs = *ca;
  }
  return grpc::SslServerCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& tls, const std::string& token) {
  if (!tls.enabled()) {
    if (!token.empty()) {
      return absl::InvalidArgumentError(
          "a token is only sent over TLS: give --tls-ca (the CA that signed the coordinator)");
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions opts;
  if (!tls.ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(tls.ca, "CA");
    if (!ca.ok()) return ca.status();
    opts.pem_root_certs = *ca;
  }
  if (!tls.cert.empty() || !tls.key.empty()) {
    if (tls.cert.empty() || tls.key.empty()) {
      return absl::InvalidArgumentError("a client certificate needs both --tls-cert and --tls-key");
    }
    absl::StatusOr<std::string> cert = ReadPem(tls.cert, "certificate");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(tls.key, "private key");
    if (!key.ok()) return key.status();
    opts.pem_cert_chain = *cert;
    opts.pem_private_key = *key;
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(opts);
  if (!token.empty()) {
    creds = grpc::CompositeChannelCredentials(creds, grpc::AccessTokenCredentials(token));
  }
  return creds;
}

absl::StatusOr<std::set<std::string>> ReadTokens(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::InvalidArgumentError(absl::StrCat("cannot read tokens file '", path, "'"));
  std::set<std::string> tokens;
  std::string line;
  while (std::getline(f, line)) {
    std::string t(absl::StripAsciiWhitespace(line));
    if (t.empty() || t[0] == '#') continue;
    if (t.size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokens file '", path, "': a token (fingerprint ", Fingerprint(t),
          ") is shorter than 16 characters; use e.g. `openssl rand -hex 32`"));
    }
    tokens.insert(t);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tokens file '", path, "' has no token"));
  }
  return tokens;
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::InvalidArgumentError(absl::StrCat("cannot read token file '", path, "'"));
  std::stringstream ss;
  ss << f.rdbuf();
  std::string t(absl::StripAsciiWhitespace(ss.str()));
  if (t.empty()) return absl::InvalidArgumentError(absl::StrCat("token file '", path, "' is empty"));
  return t;
}

std::string PermissionWarning(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || (st.st_mode & 077) == 0) return "";
  return absl::StrFormat(
      "%s is accessible by others (mode %04o): it holds a secret; run `chmod 600 %s`", path,
      st.st_mode & 07777, path);
}

}  // namespace farm
