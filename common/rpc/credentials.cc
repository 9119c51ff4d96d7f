#include "common/rpc/credentials.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace farm {
namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// Refuses a passphrase prompt: a key must be readable without a terminal.
int NoPassphrase(char*, int, int, void*) { return -1; }

absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& what) {
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

// A PEM file that must hold certificates (a CA or one's own certificate chain). Checked here, with
// OpenSSL, because gRPC would take anything and fail later, deep in a handshake, with a dump of
// its internals and "the coordinator is unreachable" for the user.
absl::StatusOr<std::string> ReadCertificates(const std::string& path, const std::string& what) {
  FARM_ASSIGN_OR_RETURN(std::string pem, ReadPem(path, what));
  BioPtr bio = MemoryBio(pem);
  X509Ptr first(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr), &X509_free);
  ERR_clear_error();
  if (first != nullptr) return pem;
  if (absl::StrContains(pem, "PRIVATE KEY-----")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", what, " file '", path, "' holds a private key, not a certificate: give the ",
        "certificate (the file with -----BEGIN CERTIFICATE-----, e.g. ca.pem, not ca.key)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the ", what, " file '", path,
                   "' holds no readable certificate (expected -----BEGIN CERTIFICATE-----)"));
}

absl::StatusOr<std::string> ReadPrivateKey(const std::string& path, const std::string& what) {
  FARM_ASSIGN_OR_RETURN(std::string pem, ReadPem(path, what));
  BioPtr bio = MemoryBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr), &EVP_PKEY_free);
  ERR_clear_error();
  if (key != nullptr) return pem;
  if (absl::StrContains(pem, "ENCRYPTED")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", what, " file '", path, "' is encrypted: give an unencrypted key (`openssl pkey ",
        "-in KEY -out PLAIN.key`, readable only by the farm's user)"));
  }
  if (!absl::StrContains(pem, "PRIVATE KEY-----")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", what, " file '", path, "' holds no private key",
        absl::StrContains(pem, "CERTIFICATE-----") ? " but a certificate: give the key file" : "",
        " (expected -----BEGIN PRIVATE KEY-----)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the ", what, " file '", path, "' holds a private key OpenSSL cannot read"));
}

// Certificate and key read (and checked) as a pair: the key must be the certificate's own.
struct KeyPair {
  std::string cert;
  std::string key;
};
absl::StatusOr<KeyPair> ReadKeyPair(const TlsFiles& tls) {
  KeyPair pair;
  FARM_ASSIGN_OR_RETURN(pair.cert, ReadCertificates(tls.cert, "certificate (--tls-cert)"));
  FARM_ASSIGN_OR_RETURN(pair.key, ReadPrivateKey(tls.key, "private key (--tls-key)"));
  BioPtr cert_bio = MemoryBio(pair.cert);
  BioPtr key_bio = MemoryBio(pair.key);
  X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, NoPassphrase, nullptr), &X509_free);
  KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr),
             &EVP_PKEY_free);
  const bool match =
      cert != nullptr && key != nullptr && X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!match) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the private key '", tls.key, "' (--tls-key) does not belong to the certificate '",
        tls.cert,
        "' (--tls-cert): their public keys differ; give the key that was made with "
        "this certificate (`openssl x509 -noout -pubkey -in CERT` and `openssl pkey -pubout -in "
        "KEY` print the same key when they match)"));
  }
  return pair;
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
  grpc::SslServerCredentialsOptions opts(tls.ca.empty()
                                             ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                             : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  FARM_ASSIGN_OR_RETURN(KeyPair pair, ReadKeyPair(tls));
  opts.pem_key_cert_pairs.push_back({pair.key, pair.cert});
  if (!tls.ca.empty()) {
    FARM_ASSIGN_OR_RETURN(opts.pem_root_certs,
                          ReadCertificates(tls.ca, "client CA (--tls-client-ca)"));
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
    FARM_ASSIGN_OR_RETURN(opts.pem_root_certs, ReadCertificates(tls.ca, "CA (--tls-ca)"));
  }
  if (!tls.cert.empty() || !tls.key.empty()) {
    if (tls.cert.empty() || tls.key.empty()) {
      return absl::InvalidArgumentError("a client certificate needs both --tls-cert and --tls-key");
    }
    FARM_ASSIGN_OR_RETURN(KeyPair pair, ReadKeyPair(tls));
    opts.pem_cert_chain = std::move(pair.cert);
    opts.pem_private_key = std::move(pair.key);
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(opts);
  if (!token.empty()) {
    creds = grpc::CompositeChannelCredentials(creds, grpc::AccessTokenCredentials(token));
  }
  return creds;
}

absl::StatusOr<TokenTable> ReadTokens(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::InvalidArgumentError(absl::StrCat("cannot read tokens file '", path, "'"));
  TokenTable tokens;
  std::string line;
  int line_no = 0;
  while (std::getline(f, line)) {
    ++line_no;
    std::string t(absl::StripAsciiWhitespace(line));
    if (t.empty() || t[0] == '#') continue;
    std::vector<std::string> words = absl::StrSplit(t, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat("tokens file '", path, "', line ", line_no, ": ");
    const std::string& token = words[0];
    if (token.size() < 16) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "a token (fingerprint ", Fingerprint(token),
                       ") is shorter than 16 characters; use e.g. `openssl rand -hex 32`"));
    }
    if (words.size() > 3 || (words.size() == 3 && words[2] != "admin")) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "expected `TOKEN USER [admin]`; the third word may only be \"admin\""));
    }
    CallerIdentity who;
    if (words.size() == 1) {
      who = {absl::StrCat("token-", tokens.size() + 1), true};
    } else {
      who = {words[1], words.size() == 3};
    }
    if (!tokens.emplace(token, who).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, "the token (fingerprint ",
                                                     Fingerprint(token),
                                                     ") appears twice; give each user their own"));
    }
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tokens file '", path, "' has no token"));
  }
  return tokens;
}

absl::StatusOr<CallerIdentity> IdentifyBearer(const TokenTable& tokens,
                                              absl::string_view authorization) {
  constexpr absl::string_view kBearer = "Bearer ";
  if (absl::ConsumePrefix(&authorization, kBearer) && !authorization.empty()) {
    auto it = tokens.find(std::string(authorization));
    if (it != tokens.end()) return it->second;
  }
  return absl::UnauthenticatedError(
      "a valid token is required: give --token-file FILE or set FARM_TOKEN (ask the farm's "
      "admin for one)");
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::InvalidArgumentError(absl::StrCat("cannot read token file '", path, "'"));
  std::stringstream ss;
  ss << f.rdbuf();
  std::string t(absl::StripAsciiWhitespace(ss.str()));
  if (t.empty())
    return absl::InvalidArgumentError(absl::StrCat("token file '", path, "' is empty"));
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
