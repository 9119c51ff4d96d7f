// farm matrix: every host kernel x guest kernel cell once, a table of verdicts (issue 11). Runs
// as farm bisect does (locally, or on --coordinator); the job is a BisectSpec with a MatrixSpec.
#include "cli/commands.h"
#include "common/spec/spec.h"

namespace farm {

CLI::App* AddMatrixCommand(CLI::App& app, BisectCommand& cmd, ClientFlags& client) {
  cmd.flags.matrix = true;
  CLI::App* matrix = app.add_subcommand(
      "matrix",
      "test every host kernel x guest kernel pair once and print the table of verdicts (on this "
      "machine, or on --coordinator)");
  AddHostGuestFlags(matrix, cmd.flags);
  AddKernelFlags(matrix, cmd.flags.kernel);
  BisectFlags& f = cmd.flags;
  matrix->add_option("--timeout", f.timeout, "seconds per build and per test (default 3600)")
      ->check(CLI::Range(1, 7 * 86400));
  matrix->add_option("--max-parallel", f.max_parallel, "at most this many tasks at once")
      ->check(CLI::Range(0, 100000));
  matrix->add_option("--description", f.description, "free text shown in listings");
  matrix->add_flag("--no-reuse", f.no_reuse,
                   "retest cells whose host and guest images were already tested with the same "
                   "test");
  matrix->add_option("--require", f.require, "KEY=VALUE an agent must have (e.g. kexec=1)");
  matrix->add_option("--agents", f.agents, "local agents to run (default 1)")
      ->check(CLI::Range(1, 256));
  matrix->add_option("--workdir", f.workdir, "state directory: database, worktrees");
  matrix->add_option("--coordinator", client.coordinator,
                     "run on this coordinator instead of locally (env FARM_COORDINATOR)");
  matrix->add_option("command", f.command,
                     "a test command run in each cell's worktree (after --), instead of --test");
  return matrix;
}

}  // namespace farm
