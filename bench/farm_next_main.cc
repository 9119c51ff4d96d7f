// farm_next: `farm next` as a stand-alone binary (the same RunNext), so that bench/next_vs_git.sh
// runs before or without the `farm` CLI.
#include "CLI/CLI.hpp"
#include "cli/next_cmd.h"

int main(int argc, char** argv) {
  CLI::App app{"farm next: the commits the farm would test next"};
  farm::NextFlags flags;
  farm::AddNextFlags(&app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return farm::RunNext(flags);
}
