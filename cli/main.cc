// farm: the user's command. All logic lives in cli/cli.cc (farm_cli).
#include "cli/cli.h"

int main(int argc, char** argv) { return farm::FarmMain(argc, argv); }
