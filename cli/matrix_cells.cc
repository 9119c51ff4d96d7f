#include "cli/matrix_cells.h"

#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/kernel_flags.h"
#include "common/status_macros.h"

namespace farm {

namespace fs = std::filesystem;

absl::StatusOr<std::string> FileSha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read '", path, "'"));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppendFormat(&hex, "%02x", md[i]);
  return hex;
}

namespace {

absl::Status CheckFiles(const std::string& flag, const std::vector<std::string>& files) {
  for (const std::string& f : files) {
    if (!fs::is_regular_file(f)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": '", f, "' is not a file: give prebuilt kernel images"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<farm::v1::HostKernel>> PrebuiltHostKernels(
    const std::vector<std::string>& hosts) {
  FARM_RETURN_IF_ERROR(CheckFiles("--host-kernels", hosts));
  std::vector<farm::v1::HostKernel> kernels;
  for (const std::string& h : hosts) {
    FARM_ASSIGN_OR_RETURN(std::string key, FileSha256(h));
    farm::v1::HostKernel& k = kernels.emplace_back();
    k.set_image(fs::absolute(h).lexically_normal().string());
    k.set_key(key);
    k.set_label(fs::path(h).filename().string());
  }
  return kernels;
}

absl::StatusOr<MatrixCells> MakeMatrixCells(const std::vector<std::string>& hosts,
                                            const std::vector<std::string>& guests,
                                            const std::string& dir) {
  FARM_ASSIGN_OR_RETURN(std::vector<farm::v1::HostKernel> kernels, PrebuiltHostKernels(hosts));
  return MakeMatrixCells(kernels, guests, dir);
}

absl::StatusOr<MatrixCells> MakeMatrixCells(const std::vector<farm::v1::HostKernel>& hosts,
                                            const std::vector<std::string>& guests,
                                            const std::string& dir) {
  FARM_RETURN_IF_ERROR(CheckFiles("--guest-kernels", guests));
  MatrixCells out;
  std::vector<std::string> host_keys;
  for (const farm::v1::HostKernel& k : hosts) {
    *out.matrix.add_hosts() = k;
    host_keys.push_back(k.key());
  }
  for (const std::string& g : guests) out.matrix.add_guests(fs::path(g).filename().string());
  std::vector<ChainCommit> commits;
  commits.push_back({{}, "matrix root: the cells follow\n"});
  for (size_t h = 0; h < hosts.size(); ++h) {
    const farm::v1::HostKernel& host = out.matrix.hosts(static_cast<int>(h));
    ChainFile host_file{"host-kernel", "", absl::StrCat(host_keys[h], "\n")};
    if (guests.empty()) {
      commits.push_back({{host_file}, absl::StrCat("host ", host.label(), "\n")});
      continue;
    }
    for (size_t g = 0; g < guests.size(); ++g) {
      std::string guest = fs::absolute(guests[g]).string();
      commits.push_back({{host_file, {"bzImage", guest, ""}},
                         absl::StrCat("host ", host.label(), " x guest ",
                                      out.matrix.guests(static_cast<int>(g)), "\n")});
    }
  }
  FARM_ASSIGN_OR_RETURN(std::vector<std::string> ids, WriteCommitChain(dir, commits));
  out.path = dir;
  out.root = ids.front();
  out.last = ids.back();
  for (size_t i = 1; i < ids.size(); ++i) out.matrix.add_cells(ids[i]);
  return out;
}

}  // namespace farm
