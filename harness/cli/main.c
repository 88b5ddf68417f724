/* ctxbench: long-context benchmarking harness. Commands live in harness/cmd_*.c. */
#include "cli.h"

int main(int argc, char **argv) { return cb_cli_main(argc, argv); }
