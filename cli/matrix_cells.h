// The cells repository of a host x guest job (farm matrix, farm bisect --host-kernels): one commit
// per cell, as farm.proto's MatrixSpec describes, so that the coordinator's machinery (tasks,
// reuse by tree, farm log) treats cells as commits.
#ifndef FARM_CLI_MATRIX_CELLS_H_
#define FARM_CLI_MATRIX_CELLS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm {

struct MatrixCells {
  std::string path;             // the bare repository
  std::string root, last;       // the empty root commit (good) and the last cell (bad)
  farm::v1::MatrixSpec matrix;  // hosts (image path, sha256 key, file name), guests, cells
};

// Makes the cells repository in `dir` for prebuilt host images `hosts` and guest images `guests`
// (empty: host-only), host-major. A cell's tree holds `host-kernel` (the host image's sha256) and
// `bzImage` (the guest image), so its tree id stands for the pair of digests. Errors name the
// flag and the file that is not a readable file.
absl::StatusOr<MatrixCells> MakeMatrixCells(const std::vector<std::string>& hosts,
                                            const std::vector<std::string>& guests,
                                            const std::string& dir);
// The same for host kernels already described (each with its key and label: prebuilt images, or
// revisions built from source, cli/host_revisions.h); a cell's `host-kernel` file holds the key.
absl::StatusOr<MatrixCells> MakeMatrixCells(const std::vector<farm::v1::HostKernel>& hosts,
                                            const std::vector<std::string>& guests,
                                            const std::string& dir);

// Host kernels from prebuilt images: the image's absolute path, its sha256 as the key, its file
// name as the label. INVALID_ARGUMENT names a path that is not a readable file.
absl::StatusOr<std::vector<farm::v1::HostKernel>> PrebuiltHostKernels(
    const std::vector<std::string>& hosts);

// The SHA-256 of a file's bytes, as hex.
absl::StatusOr<std::string> FileSha256(const std::string& path);

}  // namespace farm

#endif  // FARM_CLI_MATRIX_CELLS_H_
