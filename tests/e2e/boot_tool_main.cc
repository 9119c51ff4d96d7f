// farm-boot-tool: `farm boot` as a standalone program, for the e2e tests and bench/ (the same code
// as the `farm boot` subcommand: cli/boot_cmd.cc).
#include "CLI/CLI.hpp"
#include "cli/boot_cmd.h"

int main(int argc, char** argv) {
  CLI::App app{
      "farm-boot-tool: boot a kernel once with a test as its payload and print the verdict"};
  farm::BootFlags flags;
  farm::AddBootFlags(&app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return farm::RunBoot(flags);
}
